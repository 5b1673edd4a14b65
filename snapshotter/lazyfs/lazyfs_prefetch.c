/* Prefetch: one background thread, at low priority, that opens an image's
 * start files the way a first open does (lazyfs_open_content: a changed
 * file is rebuilt into the cache), so that the container's own opens find
 * them there. What it opens: the seeds, then what elfdeps_walk finds they
 * need, resolved inside the image's tree. Bounded per job by a file count
 * and a byte budget (changed files' sizes, what the cache may grow by);
 * a job ends early once its image is removed or lazyfs stops.
 *
 * Priority: nice 10 and the lowest best-effort I/O priority, not
 * SCHED_IDLE nor the idle I/O class: a container's first open of a file
 * the prefetch is rebuilding waits for that rebuild, and on a busy machine
 * an idle-class rebuild could starve while it waits. */
#include "lazyfs-internal.h"
#include "elfdeps.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PREFETCH_NICE      10
#define PREFETCH_IOPRIO    ((2 << 13) | 7) /* IOPRIO_CLASS_BE, level 7 */
#define PREFETCH_DEPTH     8
#define PREFETCH_QUEUE_MAX 64
#define PREFETCH_SEEDS_MAX 256

struct prefetch_job {
	struct lazyfs_image *img; /* one reference */
	char **seeds;
	size_t nseeds;
	struct prefetch_job *next;
};

struct lazyfs_prefetch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	int started, stop;
	struct prefetch_job *head, **tail;
	unsigned queued;
	unsigned max_files;
	uint64_t max_bytes;
	atomic_uint_fast64_t files, bytes; /* totals, for lazyfs_get_stats */
};

/* One job's walk over its image. */
struct prefetch_run {
	struct lazyfs_prefetch *pf;
	struct lazyfs_image *img;
	uint64_t bytes; /* changed files' sizes so far */
	unsigned changed;
};

static void job_free(struct prefetch_job *j)
{
	for (size_t i = 0; i < j->nseeds; i++)
		free(j->seeds[i]);
	free(j->seeds);
	lazyfs_image_unref(j->img, 1);
	free(j);
}

static int cancelled(struct prefetch_run *pr)
{
	struct lazyfs *fs = pr->img->fs;
	pthread_rwlock_rdlock(&fs->lock);
	int gone = !pr->img->loaded;
	pthread_rwlock_unlock(&fs->lock);
	pthread_mutex_lock(&pr->pf->mu);
	int stop = pr->pf->stop;
	pthread_mutex_unlock(&pr->pf->mu);
	return gone || stop;
}

/* The entry at absolute path (no symlinks in it), or NULL. */
static const struct dimg_entry *entry_at(const struct lazyfs_image *img, const char *path)
{
	ssize_t i = dimg_tree_index(img->tree, path + 1);
	return i < 0 ? NULL : &img->tree->v[img->nodes[i].leader];
}

static int pf_look(void *ctx, const char *path, char *link, size_t cap)
{
	struct prefetch_run *pr = ctx;
	const struct dimg_entry *e = entry_at(pr->img, path);
	if (!e)
		return -ENOENT;
	if (e->type == DIMG_TYPE_SYMLINK) {
		if (strlen(e->link) >= cap)
			return -ENAMETOOLONG;
		memcpy(link, e->link, strlen(e->link) + 1);
		return ELFDEPS_LNK;
	}
	return e->type == DIMG_TYPE_DIR   ? ELFDEPS_DIR
	       : e->type == DIMG_TYPE_REG ? ELFDEPS_REG
	                                  : ELFDEPS_OTHER;
}

static int pf_open(void *ctx, const char *path, int *fd)
{
	struct prefetch_run *pr = ctx;
	const struct dimg_entry *e = entry_at(pr->img, path);
	struct lazyfs_cached *ce;
	if (cancelled(pr))
		return -ECANCELED;
	if (!e || e->type != DIMG_TYPE_REG)
		return -ENOENT;
	int changed = e->payload == DIMG_PAYLOAD_FULL || e->payload == DIMG_PAYLOAD_PATCH;
	if (changed && e->size > pr->pf->max_bytes - pr->bytes)
		return -EFBIG; /* past the byte budget: left to the first open */
	int r = lazyfs_open_content(pr->img, e, fd, &ce);
	lazyfs_cache_put(pr->img->fs->cache, ce); /* the fd stays readable */
	if (r == 0 && changed) {
		pr->bytes += e->size;
		pr->changed++;
	}
	return r;
}

static void pf_visit(void *ctx, const char *path, int err, const char *why)
{
	struct prefetch_run *pr = ctx;
	if (err && err != -ECANCELED)
		snap_debug(pr->img->fs->lg, "lazyfs: image %s: prefetch %s: %s", pr->img->name,
		           path, why ? why : strerror(-err));
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static void run_job(struct lazyfs_prefetch *pf, struct prefetch_job *j)
{
	struct prefetch_run pr = {pf, j->img, 0, 0};
	struct elfdeps_fs efs = {pf_look, pf_open, pf_visit, &pr};
	struct elfdeps_limits lim = {pf->max_files, PREFETCH_DEPTH};
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int n = elfdeps_walk(&efs, (const char *const *)j->seeds, j->nseeds, &lim);
	atomic_fetch_add(&pf->files, (uint64_t)(n > 0 ? n : 0));
	atomic_fetch_add(&pf->bytes, pr.bytes);
	if (n < 0)
		snap_info(j->img->fs->lg, "lazyfs: image %s: prefetch stopped: %s", j->img->name,
		          n == -ECANCELED ? "image removed or daemon stopping" : strerror(-n));
	else
		snap_info(
		    j->img->fs->lg,
		    "lazyfs: image %s: prefetched %d files (%u changed, %llu bytes) in %.0f ms",
		    j->img->name, n, pr.changed, (unsigned long long)pr.bytes, ms_since(&t0));
}

static void lower_priority(void)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are main's */
	(void)setpriority(PRIO_PROCESS, (id_t)tid, PREFETCH_NICE);
	(void)syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, tid, PREFETCH_IOPRIO);
}

static void *prefetch_main(void *arg)
{
	struct lazyfs_prefetch *pf = arg;
	lower_priority();
	pthread_mutex_lock(&pf->mu);
	for (;;) {
		while (!pf->stop && !pf->head)
			pthread_cond_wait(&pf->cv, &pf->mu);
		if (pf->stop)
			break;
		struct prefetch_job *j = pf->head;
		pf->head = j->next;
		if (!pf->head)
			pf->tail = &pf->head;
		pf->queued--;
		pthread_mutex_unlock(&pf->mu);
		run_job(pf, j);
		job_free(j);
		pthread_mutex_lock(&pf->mu);
	}
	pthread_mutex_unlock(&pf->mu);
	return NULL;
}

int lazyfs_prefetch_init(struct lazyfs *fs, unsigned max_files, uint64_t max_bytes)
{
	struct lazyfs_prefetch *pf = calloc(1, sizeof(*pf));
	if (!pf)
		return -ENOMEM;
	pthread_mutex_init(&pf->mu, NULL);
	pthread_cond_init(&pf->cv, NULL);
	pf->tail = &pf->head;
	pf->max_files = max_files ? max_files : LAZYFS_PREFETCH_FILES;
	pf->max_bytes = max_bytes ? max_bytes : LAZYFS_PREFETCH_BYTES;
	fs->prefetch = pf;
	return 0;
}

void lazyfs_prefetch_fini(struct lazyfs *fs)
{
	struct lazyfs_prefetch *pf = fs->prefetch;
	if (!pf)
		return;
	pthread_mutex_lock(&pf->mu);
	pf->stop = 1;
	pthread_cond_broadcast(&pf->cv);
	pthread_mutex_unlock(&pf->mu);
	if (pf->started)
		pthread_join(pf->th, NULL);
	while (pf->head) {
		struct prefetch_job *j = pf->head;
		pf->head = j->next;
		job_free(j);
	}
	pthread_mutex_destroy(&pf->mu);
	pthread_cond_destroy(&pf->cv);
	free(pf);
	fs->prefetch = NULL;
}

static struct prefetch_job *job_new(struct lazyfs_image *img, const char *const *seeds, size_t n)
{
	struct prefetch_job *j = calloc(1, sizeof(*j));
	if (!j || !(j->seeds = calloc(n + 1, sizeof(char *)))) {
		free(j);
		return NULL;
	}
	j->img = img;
	for (; j->nseeds < n; j->nseeds++) {
		if (!(j->seeds[j->nseeds] = strdup(seeds[j->nseeds]))) {
			job_free(j);
			return NULL;
		}
	}
	return j;
}

/* Queues j (the thread started at the first job); takes j. */
static int enqueue(struct lazyfs_prefetch *pf, struct prefetch_job *j)
{
	int r = 0;
	pthread_mutex_lock(&pf->mu);
	if (pf->stop || pf->queued >= PREFETCH_QUEUE_MAX)
		r = -EAGAIN;
	else if (!pf->started && (r = -pthread_create(&pf->th, NULL, prefetch_main, pf)) == 0)
		pf->started = 1;
	if (r == 0) {
		*pf->tail = j;
		pf->tail = &j->next;
		pf->queued++;
		pthread_cond_signal(&pf->cv);
	}
	pthread_mutex_unlock(&pf->mu);
	if (r < 0)
		job_free(j);
	return r;
}

int lazyfs_prefetch(struct lazyfs *fs, const char *name, const char *const *seeds, size_t n)
{
	struct lazyfs_image *img;
	if (!fs->prefetch || n == 0)
		return 0;
	if (lazyfs_image_by_name(&img, fs, name) < 0 || !img)
		return -ENOENT;
	struct prefetch_job *j =
	    job_new(img, seeds, n < PREFETCH_SEEDS_MAX ? n : PREFETCH_SEEDS_MAX);
	if (!j) {
		lazyfs_image_unref(img, 1);
		return -ENOMEM;
	}
	return enqueue(fs->prefetch, j);
}

void lazyfs_prefetch_stats(struct lazyfs *fs, struct lazyfs_stats *st)
{
	if (!fs->prefetch)
		return;
	st->prefetched = atomic_load(&fs->prefetch->files);
	st->prefetch_bytes = atomic_load(&fs->prefetch->bytes);
}

/* ---- the files a run opened, for the next load's seeds */

void lazyfs_opened_note(struct lazyfs_image *img, uint32_t idx)
{
	if (img->nopened == LAZYFS_OPENED_MAX)
		return;
	for (unsigned i = 0; i < img->nopened; i++)
		if (img->opened[i] == idx)
			return;
	img->opened[img->nopened++] = idx;
}

/* The paths of img's opened entries, '\n' after each; hlock held. */
static char *opened_join(const struct lazyfs_image *img)
{
	size_t len = 1;
	for (unsigned i = 0; i < img->nopened; i++)
		len += strlen(img->tree->v[img->opened[i]].path) + 2;
	char *out = img->nopened ? malloc(len) : NULL, *p = out;
	for (unsigned i = 0; out && i < img->nopened; i++) {
		const char *path = img->tree->v[img->opened[i]].path;
		size_t n = strlen(path);
		*p++ = '/';
		memcpy(p, path, n);
		p += n;
		*p++ = '\n';
	}
	if (out)
		*p = '\0';
	return out;
}

char *lazyfs_opened(struct lazyfs *fs, const char *name)
{
	pthread_rwlock_rdlock(&fs->lock);
	struct lazyfs_image *img = NULL;
	for (size_t i = 0; i < fs->nimages && !img; i++)
		if (fs->byid[i]->loaded && strcmp(fs->byid[i]->name, name) == 0)
			img = fs->byid[i];
	pthread_mutex_lock(&fs->hlock);
	char *out = img ? opened_join(img) : NULL;
	pthread_mutex_unlock(&fs->hlock);
	pthread_rwlock_unlock(&fs->lock);
	return out;
}
