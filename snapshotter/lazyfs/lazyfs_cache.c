/* lazyfs's content-addressed cache of rebuilt files: a content store in
 * libdimg's layout (dimg/cas.h: <dir>/sha256/<xx>/<hex>, made through
 * <dir>/tmp/), one build per content however many opens wait for it, disk
 * use tracked and trimmed least recently used first. */
#include "lazyfs-internal.h"

#include "dimg/cas.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

enum { CACHED_READY, CACHED_BUILDING, CACHED_FAILED };

struct lazyfs_cached {
	uint8_t sha[32];
	int state;
	int err;        /* CACHED_FAILED: why */
	int detached;   /* out of the table: freed by the last put */
	unsigned users; /* open handles, the builder and waiters */
	uint64_t bytes; /* on disk (st_blocks) */
	struct lazyfs_cached *hnext, *prev, *next;
};

struct lazyfs_cache {
	struct dimg_cas *cas;
	const char *dir; /* the store's, for messages */
	uint64_t max;
	const struct snap_log *lg;
	pthread_mutex_t mu;
	pthread_cond_t built;
	struct lazyfs_cached **buckets;
	size_t nbuckets, count;
	struct lazyfs_cached *lru_head, *lru_tail; /* ready files, least recent first */
	uint64_t bytes, files, rebuilds, evictions;
};

static size_t bucket_of(const struct lazyfs_cache *c, const uint8_t sha[32])
{
	uint64_t h;
	memcpy(&h, sha, sizeof(h));
	return (size_t)(h % c->nbuckets);
}

static struct lazyfs_cached *table_find(const struct lazyfs_cache *c, const uint8_t sha[32])
{
	for (struct lazyfs_cached *ce = c->buckets[bucket_of(c, sha)]; ce; ce = ce->hnext)
		if (memcmp(ce->sha, sha, 32) == 0)
			return ce;
	return NULL;
}

static int table_grow(struct lazyfs_cache *c)
{
	size_t n = c->nbuckets ? c->nbuckets * 2 : 1024;
	struct lazyfs_cached **b = calloc(n, sizeof(*b));
	if (!b)
		return -ENOMEM;
	struct lazyfs_cached **old = c->buckets;
	size_t oldn = c->nbuckets;
	c->buckets = b;
	c->nbuckets = n;
	for (size_t i = 0; i < oldn; i++) {
		for (struct lazyfs_cached *ce = old[i], *nx; ce; ce = nx) {
			nx = ce->hnext;
			size_t k = bucket_of(c, ce->sha);
			ce->hnext = b[k];
			b[k] = ce;
		}
	}
	free(old);
	return 0;
}

static int table_add(struct lazyfs_cache *c, struct lazyfs_cached *ce)
{
	if (c->count >= c->nbuckets) {
		int r = table_grow(c);
		if (r < 0)
			return r;
	}
	size_t k = bucket_of(c, ce->sha);
	ce->hnext = c->buckets[k];
	c->buckets[k] = ce;
	c->count++;
	return 0;
}

static void table_del(struct lazyfs_cache *c, struct lazyfs_cached *ce)
{
	for (struct lazyfs_cached **pp = &c->buckets[bucket_of(c, ce->sha)]; *pp;
	     pp = &(*pp)->hnext) {
		if (*pp == ce) {
			*pp = ce->hnext;
			c->count--;
			ce->detached = 1;
			return;
		}
	}
}

static void lru_unlink(struct lazyfs_cache *c, struct lazyfs_cached *ce)
{
	*(ce->prev ? &ce->prev->next : &c->lru_head) = ce->next;
	*(ce->next ? &ce->next->prev : &c->lru_tail) = ce->prev;
	ce->prev = ce->next = NULL;
}

static void lru_append(struct lazyfs_cache *c, struct lazyfs_cached *ce)
{
	ce->prev = c->lru_tail;
	ce->next = NULL;
	*(c->lru_tail ? &c->lru_tail->next : &c->lru_head) = ce;
	c->lru_tail = ce;
}

/* Takes a ready file out of table, list and accounting. */
static void forget_ready(struct lazyfs_cache *c, struct lazyfs_cached *ce)
{
	table_del(c, ce);
	lru_unlink(c, ce);
	c->bytes -= ce->bytes;
	c->files--;
}

/* Deletes unused files, least recently used first, until under the limit.
 * Unlinking under the lock keeps a concurrent rebuild of the same content
 * from being deleted right after it was renamed into place. */
static void evict(struct lazyfs_cache *c)
{
	char rel[DIMG_CAS_NAME_MAX];
	struct lazyfs_cached *ce = c->lru_head;
	while (c->max && c->bytes > c->max && ce) {
		struct lazyfs_cached *nx = ce->next;
		if (ce->users == 0) {
			int r = dimg_cas_remove(c->cas, ce->sha);
			dimg_cas_blob_name(rel, ce->sha);
			if (r < 0 && r != -ENOENT)
				snap_warn(c->lg, "lazyfs cache: unlink %s/%s: %s", c->dir, rel,
				          strerror(-r));
			forget_ready(c, ce);
			c->evictions++;
			free(ce);
		}
		ce = nx;
	}
}

struct found {
	struct lazyfs_cached *ce;
	struct timespec mtime;
};

struct found_list {
	struct found *v;
	size_t n, cap;
};

struct scan_ctx {
	struct lazyfs_cache *c;
	struct found_list fl;
};

static int found_add(void *ctx, const uint8_t sha[32], const struct stat *st)
{
	struct found_list *fl = &((struct scan_ctx *)ctx)->fl;
	if (fl->n == fl->cap) {
		size_t cap = fl->cap ? fl->cap * 2 : 256;
		struct found *v = realloc(fl->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		fl->v = v;
		fl->cap = cap;
	}
	struct lazyfs_cached *ce = calloc(1, sizeof(*ce));
	if (!ce)
		return -ENOMEM;
	memcpy(ce->sha, sha, 32);
	ce->bytes = (uint64_t)st->st_blocks * 512;
	fl->v[fl->n].ce = ce;
	fl->v[fl->n++].mtime = st->st_mtim;
	return 0;
}

static void found_odd(void *ctx, const char *name)
{
	struct lazyfs_cache *c = ((struct scan_ctx *)ctx)->c;
	snap_warn(c->lg, "lazyfs cache: ignoring %s/%s", c->dir, name);
}

static int by_mtime(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return 0;
}

/* Indexes what a previous run left, oldest first in LRU order. */
static int scan(struct lazyfs_cache *c)
{
	struct scan_ctx sc = {c, {0}};
	struct found_list fl;
	int r = dimg_cas_scan(c->cas, found_add, found_odd, &sc);
	fl = sc.fl;
	if (fl.n)
		qsort(fl.v, fl.n, sizeof(*fl.v), by_mtime);
	for (size_t i = 0; i < fl.n; i++) {
		if (!r && !(r = table_add(c, fl.v[i].ce))) {
			lru_append(c, fl.v[i].ce);
			c->bytes += fl.v[i].ce->bytes;
			c->files++;
		} else {
			free(fl.v[i].ce);
		}
	}
	free(fl.v);
	return r;
}

int lazyfs_cache_open(struct lazyfs_cache **out, const char *dir, uint64_t max,
                      const struct snap_log *lg, const char **why)
{
	struct lazyfs_cache *c = calloc(1, sizeof(*c));
	int r = -ENOMEM;
	if (!c)
		return r;
	c->max = max;
	c->lg = lg;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->built, NULL);
	*why = "cannot create or open the cache directory";
	if ((r = dimg_cas_open(&c->cas, dir)) < 0)
		goto fail;
	c->dir = dimg_cas_dir(c->cas);
	/* rebuilt files keep no mode of their own (a shadow file among them):
	 * only the owner may enter */
	if (chmod(dir, 0700) < 0) {
		r = -errno;
		goto fail;
	}
	*why = "cannot read the cache directory";
	if ((r = table_grow(c)) < 0 || (r = scan(c)) < 0)
		goto fail;
	evict(c);
	*out = c;
	return 0;
fail:
	lazyfs_cache_close(c);
	return r;
}

void lazyfs_cache_close(struct lazyfs_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nbuckets; i++) {
		for (struct lazyfs_cached *ce = c->buckets[i], *nx; ce; ce = nx) {
			nx = ce->hnext;
			free(ce);
		}
	}
	free(c->buckets);
	dimg_cas_free(c->cas);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->built);
	free(c);
}

/* Fills a temporary (locked while written: a build a kill cuts short is
 * reclaimed when the cache is opened next), flushes it and names it by
 * content; *fd is then open on the cache file, read-only. */
static int build(struct lazyfs_cache *c, const uint8_t sha[32], lazyfs_fill_fn fill, void *ctx,
                 int *fd, uint64_t *bytes)
{
	char *tmp = NULL;
	struct stat st;
	int f, r = dimg_cas_tmp_create(c->cas, &f, &tmp);
	if (r < 0)
		return r;
	r = fill(ctx, f);
	if (!r && fdatasync(f) < 0)
		r = -errno;
	if (!r)
		r = dimg_cas_tmp_install(c->cas, tmp, sha, 1);
	/* Put there by someone else (another process on this cache): the
	 * same verified bytes, so ours is dropped. */
	if (r < 0)
		dimg_cas_tmp_discard(c->cas, tmp);
	if (close(f) < 0 && !r)
		r = -errno;
	free(tmp);
	if (r == -EEXIST)
		r = 0;
	if (!r)
		r = dimg_cas_open_blob(c->cas, sha, fd);
	if (!r && fstat(*fd, &st) < 0) {
		r = -errno;
		close(*fd);
	}
	if (r < 0)
		return r;
	*bytes = (uint64_t)st.st_blocks * 512;
	return 0;
}

static void put_locked(struct lazyfs_cache *c, struct lazyfs_cached *ce)
{
	ce->users--;
	if (ce->users == 0 && ce->detached)
		free(ce);
	else if (ce->users == 0)
		evict(c);
}

/* Builds ce (registered as building, one user: us) and publishes it. */
static int build_and_publish(struct lazyfs_cache *c, struct lazyfs_cached *ce, lazyfs_fill_fn fill,
                             void *ctx, int *fd)
{
	uint64_t bytes = 0;
	int r = build(c, ce->sha, fill, ctx, fd, &bytes);
	pthread_mutex_lock(&c->mu);
	if (r < 0) {
		ce->state = CACHED_FAILED;
		ce->err = r;
		table_del(c, ce);
		put_locked(c, ce);
	} else {
		ce->state = CACHED_READY;
		ce->bytes = bytes;
		lru_append(c, ce);
		c->bytes += bytes;
		c->files++;
		c->rebuilds++;
		evict(c);
	}
	pthread_cond_broadcast(&c->built);
	pthread_mutex_unlock(&c->mu);
	return r;
}

/* Waits for another thread's build of ce; the lock is held. */
static int wait_built(struct lazyfs_cache *c, struct lazyfs_cached *ce)
{
	ce->users++;
	while (ce->state == CACHED_BUILDING)
		pthread_cond_wait(&c->built, &c->mu);
	int r = ce->state == CACHED_FAILED ? ce->err : 0;
	if (r < 0)
		put_locked(c, ce);
	else
		ce->users--;
	return r;
}

/* Opens a ready file; one deleted behind our back is forgotten (-EAGAIN:
 * build it again). The lock is held. */
static int open_ready(struct lazyfs_cache *c, struct lazyfs_cached *ce, int *fd)
{
	char rel[DIMG_CAS_NAME_MAX];
	int f, r = dimg_cas_open_blob(c->cas, ce->sha, &f);
	if (r == -ENOENT && ce->users == 0) {
		dimg_cas_blob_name(rel, ce->sha);
		snap_warn(c->lg, "lazyfs cache: %s/%s vanished; rebuilding it", c->dir, rel);
		forget_ready(c, ce);
		free(ce);
		return -EAGAIN;
	}
	if (r < 0)
		return r;
	ce->users++;
	lru_unlink(c, ce);
	lru_append(c, ce);
	*fd = f;
	return 0;
}

/* Starts a build of sha: registered as building, one user (the builder). */
static struct lazyfs_cached *start_build(struct lazyfs_cache *c, const uint8_t sha[32])
{
	struct lazyfs_cached *ce = calloc(1, sizeof(*ce));
	if (!ce)
		return NULL;
	memcpy(ce->sha, sha, 32);
	ce->state = CACHED_BUILDING;
	ce->users = 1;
	if (table_add(c, ce) < 0) {
		free(ce);
		return NULL;
	}
	return ce;
}

int lazyfs_cache_get(struct lazyfs_cache *c, const uint8_t sha[32], lazyfs_fill_fn fill, void *ctx,
                     struct lazyfs_cached **out, int *fd)
{
	struct lazyfs_cached *ce;
	int r = 0;
	*out = NULL;
	pthread_mutex_lock(&c->mu);
	while ((ce = table_find(c, sha)) != NULL) {
		if (ce->state == CACHED_BUILDING && (r = wait_built(c, ce)) < 0)
			break;
		if (ce->state != CACHED_READY)
			continue;
		r = open_ready(c, ce, fd);
		if (r != -EAGAIN)
			break;
		r = 0;
	}
	if (ce || r < 0) {
		pthread_mutex_unlock(&c->mu);
		*out = r < 0 ? NULL : ce;
		return r;
	}
	ce = start_build(c, sha);
	pthread_mutex_unlock(&c->mu);
	if (!ce)
		return -ENOMEM;
	r = build_and_publish(c, ce, fill, ctx, fd);
	*out = r < 0 ? NULL : ce;
	return r;
}

void lazyfs_cache_put(struct lazyfs_cache *c, struct lazyfs_cached *ce)
{
	if (!ce)
		return;
	pthread_mutex_lock(&c->mu);
	put_locked(c, ce);
	pthread_mutex_unlock(&c->mu);
}

int lazyfs_cache_statvfs(struct lazyfs_cache *c, struct statvfs *sv)
{
	return statvfs(c->dir, sv) < 0 ? -errno : 0;
}

void lazyfs_cache_stats(struct lazyfs_cache *c, struct lazyfs_stats *st)
{
	pthread_mutex_lock(&c->mu);
	st->cache_bytes = c->bytes;
	st->cache_files = c->files;
	st->rebuilds = c->rebuilds;
	st->evictions = c->evictions;
	pthread_mutex_unlock(&c->mu);
}
