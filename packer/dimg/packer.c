/* Packer: a pool of encoder threads over the plan's changed files; the main
 * thread writes their blobs in plan order, so output never depends on the
 * thread count. A window bounds how far encoders run ahead (memory). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dimg/fileio.h"
#include "dimg/hash.h"
#include "packdict.h"
#include "packer.h"

void packer_opts_default(struct packer_opts *o)
{
	memset(o, 0, sizeof(*o));
	differ_opts_default(&o->diff);
}

enum slot_state { SLOT_TODO, SLOT_DONE };

#define NO_DUP ((size_t)-1)

/* What failed: reading the new file, reading the base file it is
 * patched against, or encoding. */
enum pack_stage { PACK_NEW = 1, PACK_BASE, PACK_ENCODE };

/* The entry whose file failed (idx SIZE_MAX: none) and how. */
struct pack_fail {
	size_t idx;
	uint8_t stage;
};

struct slot {
	size_t idx;      /* entry in plan */
	size_t dup_of;   /* earlier slot with the same new and old content, or NO_DUP */
	uint8_t key[64]; /* SHA-256 of the new content, then of the patch source */
	int state;
	int rc;
	uint8_t stage; /* enum pack_stage, when rc < 0 */
	uint8_t flags; /* DIMG_ENTRY_* of the blob (ZDICT) */
	struct differ_result res;
};

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct slot *slots;
	size_t nslots, next, written, window;
	int abort;
	const struct dimg_tree *plan;
	const struct dimg_files *base_files, *target_files;
	const struct differ_opts *dopts;
};

/* The file behind an entry, read-only; len 0 gives NULL. Loaded, not
 * mapped: a sparse file of a content store on a full tmpfs would SIGBUS
 * (dimg/fileio.h). */
static int map_entry(const struct dimg_files *f, const struct dimg_entry *e, const uint8_t **p,
                     size_t *len)
{
	int fd, r = f->open(f->ctx, e, &fd);
	*p = NULL;
	*len = 0;
	if (r < 0)
		return r;
	r = dimg_file_load(fd, p, len);
	close(fd);
	return r;
}

static void unmap(const uint8_t *p, size_t len)
{
	dimg_file_unload(p, len);
}

static int encode_one(const struct pool *pl, const struct dimg_entry *e, struct differ_result *res,
                      uint8_t *stage)
{
	const uint8_t *nw = NULL, *old = NULL;
	size_t nlen = 0, olen = 0;
	uint8_t sha[32];
	int r = map_entry(pl->target_files, e, &nw, &nlen);
	*stage = PACK_NEW;
	if (r < 0)
		return r;
	r = dimg_sha256_buf(nw, nlen, sha);
	if (!r && (nlen != e->size || memcmp(sha, e->sha256, 32) != 0))
		r = -ESTALE; /* the file changed after the tree was read */
	if (!r && e->payload == DIMG_PAYLOAD_PATCH) {
		struct dimg_entry s = {0};
		s.path = e->src ? e->src : e->path;
		s.type = DIMG_TYPE_REG;
		*stage = PACK_BASE;
		r = map_entry(pl->base_files, &s, &old, &olen);
	}
	if (!r) {
		*stage = PACK_ENCODE;
		r = differ_encode(old, olen, nw, nlen, pl->dopts, res);
	}
	unmap(old, olen);
	unmap(nw, nlen);
	return r;
}

static void *worker(void *arg)
{
	struct pool *pl = arg;
	pthread_mutex_lock(&pl->mu);
	for (;;) {
		while (!pl->abort && pl->next < pl->nslots && pl->next >= pl->written + pl->window)
			pthread_cond_wait(&pl->cv, &pl->mu);
		if (pl->abort || pl->next >= pl->nslots)
			break;
		struct slot *s = &pl->slots[pl->next++];
		if (s->dup_of != NO_DUP || s->state == SLOT_DONE)
			continue;
		pthread_mutex_unlock(&pl->mu);
		int rc = encode_one(pl, &pl->plan->v[s->idx], &s->res, &s->stage);
		pthread_mutex_lock(&pl->mu);
		s->rc = rc;
		s->state = SLOT_DONE;
		pthread_cond_broadcast(&pl->cv);
	}
	pthread_mutex_unlock(&pl->mu);
	return NULL;
}

/* A file whose new and old contents equal an earlier one's gets the same
 * encoding, so both entries point at one blob. */
static void share_blob(struct dimg_entry *e, const struct dimg_entry *first)
{
	e->payload = first->payload;
	e->codec = first->codec;
	e->flags = first->flags;
	e->blob_off = first->blob_off;
	e->blob_len = first->blob_len;
	e->blob_xxh3 = first->blob_xxh3;
}

/* Main thread: waits for slots in order and writes their blobs. */
static int write_blobs(struct pool *pl, struct dimg_writer *w, struct dimg_tree *plan,
                       const struct packer_opts *o, struct packer_stats *st,
                       struct pack_fail *failed)
{
	uint64_t total = 0, done = 0;
	int r = 0;
	for (size_t k = 0; k < pl->nslots; k++)
		total += plan->v[pl->slots[k].idx].size;
	for (size_t k = 0; k < pl->nslots && !r; k++) {
		struct slot *s = &pl->slots[k];
		struct dimg_entry *e = &plan->v[s->idx];
		if (s->dup_of != NO_DUP) {
			share_blob(e, &plan->v[pl->slots[s->dup_of].idx]);
		} else {
			pthread_mutex_lock(&pl->mu);
			while (s->state != SLOT_DONE)
				pthread_cond_wait(&pl->cv, &pl->mu);
			pthread_mutex_unlock(&pl->mu);
			if ((r = s->rc) < 0) {
				*failed = (struct pack_fail){s->idx, s->stage};
				break;
			}
			r = dimg_writer_add_blob(w, s->res.blob.data, s->res.blob.len, &e->blob_off,
			                         &e->blob_xxh3);
			if (r < 0)
				break;
			e->blob_len = s->res.blob.len;
			e->payload = s->res.payload;
			e->codec = s->res.codec;
			e->flags = s->flags;
		}
		if (e->payload == DIMG_PAYLOAD_FULL) {
			free(e->src);
			e->src = NULL;
		}
		dimg_buf_free(&s->res.blob);
		done += e->size;
		st->input_bytes += e->size;
		if (o->progress)
			o->progress(o->pctx, "encoding", done, total);
		pthread_mutex_lock(&pl->mu);
		pl->written = k + 1;
		pthread_cond_broadcast(&pl->cv);
		pthread_mutex_unlock(&pl->mu);
	}
	return r;
}

static unsigned job_count(unsigned jobs)
{
	if (jobs)
		return jobs;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

static int run_pool(struct pool *pl, struct dimg_writer *w, struct dimg_tree *plan,
                    const struct packer_opts *o, struct packer_stats *st, struct pack_fail *failed)
{
	unsigned nth = job_count(o->jobs);
	pthread_t *th = calloc(nth, sizeof(*th));
	unsigned started = 0;
	int r = th ? 0 : -ENOMEM;
	for (; !r && started < nth; started++)
		if (pthread_create(&th[started], NULL, worker, pl) != 0)
			r = -EAGAIN;
	if (!r)
		r = write_blobs(pl, w, plan, o, st, failed);
	pthread_mutex_lock(&pl->mu);
	pl->abort = 1;
	pthread_cond_broadcast(&pl->cv);
	pthread_mutex_unlock(&pl->mu);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	for (size_t k = 0; k < pl->nslots; k++)
		dimg_buf_free(&pl->slots[k].res.blob);
	free(th);
	return r;
}

static int cmp_slot_key(const void *a, const void *b, void *arg)
{
	const struct slot *v = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = memcmp(v[x].key, v[y].key, sizeof(v[x].key));
	return c ? c : (x > y) - (x < y);
}

/* Marks each slot whose key an earlier slot has as that slot's duplicate. */
static int find_duplicates(struct pool *pl)
{
	size_t *order = calloc(pl->nslots ? pl->nslots : 1, sizeof(size_t));
	if (!order)
		return -ENOMEM;
	for (size_t k = 0; k < pl->nslots; k++)
		order[k] = k;
	qsort_r(order, pl->nslots, sizeof(size_t), cmp_slot_key, pl->slots);
	for (size_t k = 1; k < pl->nslots; k++) {
		struct slot *prev = &pl->slots[order[k - 1]], *cur = &pl->slots[order[k]];
		if (memcmp(prev->key, cur->key, sizeof(cur->key)) == 0)
			cur->dup_of = prev->dup_of != NO_DUP ? prev->dup_of : order[k - 1];
	}
	free(order);
	return 0;
}

static int collect_slots(struct pool *pl, const struct dimg_tree *base,
                         const struct dimg_tree *plan)
{
	pl->slots = calloc(plan->n ? plan->n : 1, sizeof(*pl->slots));
	if (!pl->slots)
		return -ENOMEM;
	for (size_t i = 0; i < plan->n; i++) {
		const struct dimg_entry *e = &plan->v[i];
		if (e->type != DIMG_TYPE_REG ||
		    (e->payload != DIMG_PAYLOAD_FULL && e->payload != DIMG_PAYLOAD_PATCH))
			continue;
		struct slot *s = &pl->slots[pl->nslots++];
		s->idx = i;
		s->dup_of = NO_DUP;
		memcpy(s->key, e->sha256, 32);
		if (e->payload == DIMG_PAYLOAD_PATCH) {
			const struct dimg_entry *src =
			    dimg_tree_find(base, e->src ? e->src : e->path);
			if (src)
				memcpy(s->key + 32, src->sha256, 32);
		}
	}
	return find_duplicates(pl);
}

/* ".NAME.tmp-<owner>" next to path, locked by the fd returned
 * (dimg/fileio.h); stale ones of writers killed earlier go first. */
int packer_tmpfile(const char *path, char **tmp_out)
{
	char *d = strdup(path), *b = strdup(path), *name = NULL;
	char *dir = d ? dirname(d) : NULL, *base = b ? basename(b) : NULL;
	size_t n = base ? strlen(base) + sizeof("..tmp-") : 0;
	char *prefix = n ? malloc(n) : NULL;
	int fd = -ENOMEM, dfd = -1;
	if (prefix && (dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		fd = -errno;
	if (dfd >= 0) {
		snprintf(prefix, n, ".%s.tmp-", base);
		(void)dimg_temp_reclaim(dfd, prefix);
		int r = dimg_temp_create(dfd, prefix, 0, &name, &fd);
		if (r < 0)
			fd = r;
		else if (asprintf(tmp_out, "%s/%s", dir, name) < 0) {
			(void)unlinkat(dfd, name, 0);
			close(fd);
			fd = -ENOMEM;
		}
		close(dfd);
	}
	if (fd >= 0)
		(void)fchmod(fd, 0644);
	free(name);
	free(prefix);
	free(d);
	free(b);
	return fd;
}

/* tmp renamed to path: over what is there only with PACKER_REPLACE. */
static int publish(const char *tmp, const char *path, unsigned flags)
{
	struct stat st;
	if (flags & PACKER_REPLACE)
		return rename(tmp, path) < 0 ? -errno : 0;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL)
		return -errno;
	/* A filesystem without RENAME_NOREPLACE: a narrow race, best effort. */
	if (lstat(path, &st) == 0)
		return -EEXIST;
	return rename(tmp, path) < 0 ? -errno : 0;
}

/* Renamed before the fd closes, so the lock covers the temporary to the
 * end; once fsync has succeeded, close has nothing left to report. */
int packer_commit_tmpfile(int fd, const char *tmp, const char *path, unsigned flags)
{
	int r = fsync(fd) < 0 ? -errno : 0;
	if (!r)
		r = publish(tmp, path, flags);
	close(fd);
	if (r < 0)
		return r;
	char *d = strdup(path);
	if (d) {
		int dfd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
		free(d);
	}
	return 0;
}

/* Reads a candidate's content into the samples, checked like encode_one. */
static int read_candidate(const struct pool *pl, const struct dimg_entry *e, uint8_t *dst)
{
	const uint8_t *p = NULL;
	size_t len = 0;
	uint8_t sha[32];
	int r = map_entry(pl->target_files, e, &p, &len);
	if (r < 0)
		return r;
	r = dimg_sha256_buf(p, len, sha);
	if (!r && (len != e->size || memcmp(sha, e->sha256, 32) != 0))
		r = -ESTALE;
	if (!r)
		memcpy(dst, p, len);
	unmap(p, len);
	return r;
}

static int dict_candidate(const struct pool *pl, const struct slot *s)
{
	const struct dimg_entry *e = &pl->plan->v[s->idx];
	return s->dup_of == NO_DUP && e->payload == DIMG_PAYLOAD_FULL && e->size > 0 &&
	       e->size <= PACKDICT_MAX_FILE;
}

/* Slots of small FULL files, in plan order, while their sizes fit the
 * sample budget; their contents back to back in *samples. */
static int gather_candidates(struct pool *pl, size_t **ks, struct packdict_item **items, size_t *n,
                             uint8_t **samples, struct pack_fail *failed)
{
	size_t total = 0, cnt = 0;
	for (size_t k = 0; k < pl->nslots; k++) {
		uint64_t sz = pl->plan->v[pl->slots[k].idx].size;
		if (dict_candidate(pl, &pl->slots[k]) && total + sz <= PACKDICT_MAX_SAMPLES)
			total += sz, cnt++;
	}
	*ks = calloc(cnt ? cnt : 1, sizeof(**ks));
	*items = calloc(cnt ? cnt : 1, sizeof(**items));
	*samples = malloc(total ? total : 1);
	if (!*ks || !*items || !*samples)
		return -ENOMEM;
	size_t off = 0;
	for (size_t k = 0; *n < cnt; k++) {
		const struct dimg_entry *e = &pl->plan->v[pl->slots[k].idx];
		if (!dict_candidate(pl, &pl->slots[k]) || off + e->size > PACKDICT_MAX_SAMPLES)
			continue;
		int r = read_candidate(pl, e, *samples + off);
		if (r < 0) {
			*failed = (struct pack_fail){pl->slots[k].idx, PACK_NEW};
			return r;
		}
		(*ks)[*n] = k;
		(*items)[*n].data = *samples + off;
		(*items)[*n].len = e->size;
		off += e->size, (*n)++;
	}
	return 0;
}

/* Encodes the small FULL files up front, with a shared dictionary when it
 * pays; the encoders then skip them. *dict is NULL when there is none. */
static int prepare_dict(struct pool *pl, const struct packer_opts *o, struct dimg_zdict **dict,
                        struct pack_fail *failed)
{
	size_t *ks = NULL, n = 0;
	struct packdict_item *items = NULL;
	uint8_t *samples = NULL;
	int r = gather_candidates(pl, &ks, &items, &n, &samples, failed);
	if (!r)
		r = packdict_encode(items, n, samples, o->diff.level, job_count(o->jobs), dict);
	for (size_t i = 0; !r && i < n; i++) {
		struct slot *s = &pl->slots[ks[i]];
		if (!items[i].done)
			break;
		s->res.payload = DIMG_PAYLOAD_FULL;
		s->res.blob = items[i].blob;
		s->flags = items[i].flags;
		s->state = SLOT_DONE;
		memset(&items[i].blob, 0, sizeof(items[i].blob));
	}
	for (size_t i = 0; i < n; i++)
		dimg_buf_free(&items[i].blob);
	free(items);
	free(ks);
	free(samples);
	return r;
}

static int write_dict(struct dimg_writer *w, const struct dimg_zdict *d, struct packer_stats *st)
{
	const uint8_t *p;
	size_t len;
	if (!d)
		return 0;
	dimg_zdict_bytes(d, &p, &len);
	st->dict_bytes = len;
	return dimg_writer_add_dict(w, p, len);
}

static int pack(int fd, const struct dimg_tree *base, const struct dimg_files *base_files,
                struct dimg_tree *plan, const struct dimg_files *target_files,
                const struct packer_opts *o, struct packer_stats *st, struct pack_fail *failed)
{
	uint8_t bid[32], tid[32];
	struct dimg_writer *w = NULL;
	struct dimg_zdict *dict = NULL;
	struct pool pl = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	pl.plan = plan;
	pl.base_files = base_files;
	pl.target_files = target_files;
	pl.dopts = &o->diff;
	pl.window = 4 * (size_t)job_count(o->jobs);
	int r = dimg_tree_id(base, bid);
	if (!r)
		r = dimg_tree_id(plan, tid);
	if (!r)
		r = collect_slots(&pl, base, plan);
	if (!r && !o->no_dict)
		r = prepare_dict(&pl, o, &dict, failed);
	if (!r)
		r = dimg_writer_new(&w, fd, bid, tid);
	if (!r)
		r = write_dict(w, dict, st);
	if (!r)
		r = run_pool(&pl, w, plan, o, st, failed);
	if (!r)
		r = dimg_writer_finish(w, base, plan);
	if (!r)
		st->output_size = dimg_writer_offset(w);
	dimg_writer_free(w);
	dimg_zdict_free(dict);
	for (size_t k = 0; k < pl.nslots; k++)
		dimg_buf_free(&pl.slots[k].res.blob); /* encoded up front, never written */
	free(pl.slots);
	return r;
}

int packer_write_atomic(const char *path, unsigned flags, int (*fill)(int fd, void *ctx), void *ctx,
                        struct dimg_err *err)
{
	char *tmp = NULL;
	int fd = packer_tmpfile(path, &tmp);
	if (fd < 0)
		return dimg_err_set(err, fd, path, NULL);
	int r = fill(fd, ctx);
	if (!r)
		r = packer_commit_tmpfile(fd, tmp, path, flags);
	else
		close(fd);
	if (r < 0)
		unlink(tmp);
	free(tmp);
	return r < 0 ? dimg_err_set(err, r, path, NULL) : 0; /* unless fill named it */
}

/* Names the file that failed: the new one, or the base file it is patched
 * against. */
static int fail_entry(struct dimg_err *err, int r, const struct dimg_entry *e, uint8_t stage)
{
	if (stage == PACK_BASE)
		return dimg_err_set(err, r, NULL, "base file '%s' (the patch source of '%s'): %s",
		                    e->src ? e->src : e->path, e->path, dimg_strerror(r));
	return dimg_err_set(err, r, NULL, "%s '%s': %s",
	                    stage == PACK_ENCODE ? "encoding new file" : "new file", e->path,
	                    dimg_strerror(r));
}

struct pack_job {
	const struct dimg_tree *base;
	const struct dimg_files *base_files, *target_files;
	struct dimg_tree *plan;
	const struct packer_opts *o;
	struct packer_stats *st;
	struct pack_fail failed;
};

static int pack_fill(int fd, void *ctx)
{
	struct pack_job *j = ctx;
	return pack(fd, j->base, j->base_files, j->plan, j->target_files, j->o, j->st, &j->failed);
}

int packer_write_dimg(const char *out_path, const struct dimg_tree *base,
                      const struct dimg_files *base_files, struct dimg_tree *plan,
                      const struct dimg_files *target_files, const struct packer_opts *o,
                      struct packer_stats *st, struct dimg_err *err)
{
	struct pack_job j = {base, base_files, target_files, plan, o, st, {SIZE_MAX, 0}};
	memset(st, 0, sizeof(*st));
	int r = packer_write_atomic(out_path, o->out_flags, pack_fill, &j, NULL);
	if (r < 0 && j.failed.idx != SIZE_MAX)
		return fail_entry(err, r, &plan->v[j.failed.idx], j.failed.stage);
	return r < 0 ? dimg_err_set(err, r, out_path, NULL) : 0;
}
