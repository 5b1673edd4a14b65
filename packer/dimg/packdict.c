/* The shared dictionary of a delta's small full blobs (docs/FORMAT.md
 * "Dictionary"): trained on all of them, used only when it pays. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "packdict.h"

struct pd_run {
	pthread_mutex_t mu;
	struct packdict_item *it;
	size_t n, next;
	int level, rc;
	const struct dimg_zdict *dict;
	struct dimg_buf *alt; /* per item: the frame with the dictionary */
};

/* Both frames of one item; which is kept is decided once all are known. */
static int pd_encode_item(struct pd_run *run, size_t i)
{
	struct packdict_item *x = &run->it[i];
	int r = dimg_zstd_encode(x->data, x->len, run->level, &x->blob);
	if (!r)
		r = dimg_zstd_encode_dict(run->dict, x->data, x->len, &run->alt[i]);
	return r;
}

static void *pd_worker(void *arg)
{
	struct pd_run *run = arg;
	for (;;) {
		pthread_mutex_lock(&run->mu);
		size_t i = run->next++;
		int stop = run->rc < 0 || i >= run->n;
		pthread_mutex_unlock(&run->mu);
		if (stop)
			break;
		int r = pd_encode_item(run, i);
		if (r < 0) {
			pthread_mutex_lock(&run->mu);
			run->rc = run->rc < 0 ? run->rc : r;
			pthread_mutex_unlock(&run->mu);
		}
	}
	return NULL;
}

static int pd_encode_all(struct pd_run *run, unsigned jobs)
{
	pthread_t *th = calloc(jobs, sizeof(*th));
	unsigned started = 0;
	if (!th)
		return -ENOMEM;
	for (; started < jobs; started++)
		if (pthread_create(&th[started], NULL, pd_worker, run) != 0)
			break;
	if (started == 0)
		pd_worker(run);
	for (unsigned k = 0; k < started; k++)
		pthread_join(th[k], NULL);
	free(th);
	return run->rc;
}

/* Keeps per item the smaller frame (plain on a tie) if the dictionary plus
 * those frames come to less than the plain frames alone; else all plain. */
static int pd_settle(struct pd_run *run, size_t dict_len)
{
	uint64_t plain = 0, best = dict_len;
	for (size_t i = 0; i < run->n; i++) {
		size_t a = run->it[i].blob.len, b = run->alt[i].len;
		plain += a;
		best += b < a ? b : a;
	}
	int use = best < plain;
	for (size_t i = 0; i < run->n; i++) {
		struct packdict_item *x = &run->it[i];
		if (use && run->alt[i].len < x->blob.len) {
			dimg_buf_free(&x->blob);
			x->blob = run->alt[i];
			memset(&run->alt[i], 0, sizeof(run->alt[i]));
			x->flags = DIMG_ENTRY_ZDICT;
		}
		x->done = 1;
	}
	return use;
}

static void pd_reset(struct packdict_item *it, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		dimg_buf_free(&it[i].blob);
		it[i].flags = 0;
		it[i].done = 0;
	}
}

int packdict_encode(struct packdict_item *it, size_t n, const uint8_t *samples, int level,
                    unsigned jobs, struct dimg_zdict **dict)
{
	struct pd_run run = {.mu = PTHREAD_MUTEX_INITIALIZER, .it = it, .n = n, .level = level};
	size_t *sizes = calloc(n ? n : 1, sizeof(*sizes));
	uint64_t total = 0;
	struct dimg_zdict *d = NULL;
	int r = sizes ? 0 : -ENOMEM;
	*dict = NULL;
	for (size_t i = 0; !r && i < n; i++)
		total += sizes[i] = it[i].len;
	if (!r && n >= PACKDICT_MIN_FILES && total / 32 >= PACKDICT_MIN_DICT) {
		size_t cap =
		    total / 32 < PACKDICT_MAX_DICT ? (size_t)(total / 32) : PACKDICT_MAX_DICT;
		r = dimg_zdict_train(&d, samples, sizes, n, cap, level);
		if (r == -ENODATA) /* zstd found nothing to learn: no dictionary */
			r = 0;
	}
	free(sizes);
	if (r < 0 || !d)
		return r;
	run.dict = d;
	run.alt = calloc(n, sizeof(*run.alt));
	r = run.alt ? pd_encode_all(&run, jobs ? jobs : 1) : -ENOMEM;
	const uint8_t *dp;
	size_t dl;
	dimg_zdict_bytes(d, &dp, &dl);
	if (!r && pd_settle(&run, dl))
		*dict = d, d = NULL;
	for (size_t i = 0; run.alt && i < n; i++)
		dimg_buf_free(&run.alt[i]);
	free(run.alt);
	dimg_zdict_free(d);
	if (r < 0)
		pd_reset(it, n);
	return r;
}
