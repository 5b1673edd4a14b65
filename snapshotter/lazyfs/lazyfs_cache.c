/* lazyfs's content-addressed cache of rebuilt files: <dir>/sha256/<xx>/<hex>
 * made through <dir>/tmp/, one build per content however many opens wait
 * for it, disk use tracked and trimmed least recently used first. */
#include "lazyfs-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	int dirfd;
	char *dir;
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

/* "sha256/xx/<64 hex>" */
static void cache_relpath(const uint8_t sha[32], char out[80])
{
	char hex[65];
	dimg_hex32(sha, hex);
	snprintf(out, 80, "sha256/%.2s/%s", hex, hex);
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
	char rel[80];
	struct lazyfs_cached *ce = c->lru_head;
	while (c->max && c->bytes > c->max && ce) {
		struct lazyfs_cached *nx = ce->next;
		if (ce->users == 0) {
			cache_relpath(ce->sha, rel);
			if (unlinkat(c->dirfd, rel, 0) < 0 && errno != ENOENT)
				snap_warn(c->lg, "lazyfs cache: unlink %s/%s: %s", c->dir, rel,
				          strerror(errno));
			forget_ready(c, ce);
			c->evictions++;
			free(ce);
		}
		ce = nx;
	}
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* A cache file's name back to its sha; -1 if it is not one. */
static int parse_name(const char *dir, const char *name, uint8_t sha[32])
{
	if (strlen(name) != 64 || strncmp(name, dir, 2) != 0)
		return -1;
	for (int i = 0; i < 32; i++) {
		int hi = hexval(name[2 * i]), lo = hexval(name[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		sha[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

struct found {
	struct lazyfs_cached *ce;
	struct timespec mtime;
};

struct found_list {
	struct found *v;
	size_t n, cap;
};

static int found_add(struct found_list *fl, const uint8_t sha[32], const struct stat *st)
{
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

/* A directory stream on name under dirfd; NULL with errno set. */
static DIR *open_dir_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d && fd >= 0) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return d;
}

static int scan_subdir(struct lazyfs_cache *c, int sfd, const char *sub, struct found_list *fl)
{
	DIR *d = open_dir_at(sfd, sub);
	if (!d)
		return -errno;
	int r = 0;
	for (struct dirent *de; !r && (de = readdir(d)) != NULL;) {
		uint8_t sha[32];
		struct stat st;
		if (de->d_name[0] == '.')
			continue;
		if (parse_name(sub, de->d_name, sha) < 0 ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode)) {
			snap_warn(c->lg, "lazyfs cache: ignoring %s/sha256/%s/%s", c->dir, sub,
			          de->d_name);
			continue;
		}
		r = found_add(fl, sha, &st);
	}
	closedir(d);
	return r;
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
	struct found_list fl = {0};
	DIR *d = open_dir_at(c->dirfd, "sha256");
	if (!d)
		return -errno;
	int r = 0;
	for (struct dirent *de; !r && (de = readdir(d)) != NULL;) {
		if (strlen(de->d_name) == 2 && hexval(de->d_name[0]) >= 0 &&
		    hexval(de->d_name[1]) >= 0)
			r = scan_subdir(c, dirfd(d), de->d_name, &fl);
	}
	closedir(d);
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

/* Temp files of a build that did not finish (a crash, a kill). */
static int clean_tmp(struct lazyfs_cache *c)
{
	DIR *d = open_dir_at(c->dirfd, "tmp");
	if (!d)
		return -errno;
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    unlinkat(dirfd(d), de->d_name, 0) < 0)
			snap_warn(c->lg, "lazyfs cache: cannot delete %s/tmp/%s: %s", c->dir,
			          de->d_name, strerror(errno));
	}
	closedir(d);
	return 0;
}

static int mkdir_ok(int dirfd, const char *name)
{
	return mkdirat(dirfd, name, 0700) == 0 || errno == EEXIST ? 0 : -errno;
}

int lazyfs_cache_open(struct lazyfs_cache **out, const char *dir, uint64_t max,
                      const struct snap_log *lg, const char **why)
{
	struct lazyfs_cache *c = calloc(1, sizeof(*c));
	int r = -ENOMEM;
	if (!c || !(c->dir = strdup(dir)))
		goto fail;
	c->dirfd = -1;
	c->max = max;
	c->lg = lg;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->built, NULL);
	*why = "cannot create or open the cache directory";
	if ((r = mkdir_ok(AT_FDCWD, dir)) < 0)
		goto fail;
	c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = mkdir_ok(c->dirfd, "sha256")) < 0 || (r = mkdir_ok(c->dirfd, "tmp")) < 0)
		goto fail;
	*why = "cannot read the cache directory";
	if ((r = table_grow(c)) < 0 || (r = clean_tmp(c)) < 0 || (r = scan(c)) < 0)
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
	if (c->dirfd >= 0)
		close(c->dirfd);
	if (c->dir) {
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->built);
	}
	free(c->dir);
	free(c);
}

/* Fills a temp file and renames it into place; *fd stays open on it. */
static int build(struct lazyfs_cache *c, const uint8_t sha[32], lazyfs_fill_fn fill, void *ctx,
                 int *fd, uint64_t *bytes)
{
	char rel[80], tmp[64] = "tmp/XXXXXX";
	size_t dl = strlen(c->dir);
	char *path = malloc(dl + sizeof(tmp) + 1);
	if (!path)
		return -ENOMEM;
	snprintf(path, dl + sizeof(tmp) + 1, "%s/%s", c->dir, tmp);
	int f = mkostemp(path, O_CLOEXEC), r = 0;
	if (f < 0) {
		r = -errno;
		free(path);
		return r;
	}
	snprintf(tmp, sizeof(tmp), "%s", path + dl + 1);
	free(path);
	cache_relpath(sha, rel);
	struct stat st;
	rel[9] = '\0'; /* "sha256/xx" */
	r = fill(ctx, f);
	if (!r && fdatasync(f) < 0)
		r = -errno;
	if (!r)
		r = mkdir_ok(c->dirfd, rel);
	rel[9] = '/';
	if (!r && renameat2(c->dirfd, tmp, c->dirfd, rel, RENAME_NOREPLACE) < 0)
		r = -errno;
	/* Put there by someone else (another process on this cache): the
	 * same verified bytes, so ours is dropped and read from its fd. */
	if (r == -EEXIST) {
		unlinkat(c->dirfd, tmp, 0);
		r = 0;
	}
	if (!r && fstat(f, &st) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(c->dirfd, tmp, 0);
		close(f);
		return r;
	}
	*bytes = (uint64_t)st.st_blocks * 512;
	*fd = f;
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
	char rel[80];
	cache_relpath(ce->sha, rel);
	int f = openat(c->dirfd, rel, O_RDONLY | O_CLOEXEC);
	if (f < 0 && errno == ENOENT && ce->users == 0) {
		snap_warn(c->lg, "lazyfs cache: %s/%s vanished; rebuilding it", c->dir, rel);
		forget_ready(c, ce);
		free(ce);
		return -EAGAIN;
	}
	if (f < 0)
		return -errno;
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
	return fstatvfs(c->dirfd, sv) < 0 ? -errno : 0;
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
