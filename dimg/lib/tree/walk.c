/* Reading a directory into a dimg_tree: lstat-level metadata, xattrs and
 * hardlink groups in one pass over directory fds, then SHA-256 of every
 * regular file on worker threads. Nothing here ever follows a symlink. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "dimg/tree.h"
#include "dimg/hash.h"
#include "dimg/tree.h"
#include "hashcache-internal.h"
#include "tree-internal.h"

/* A regular file seen by the walk: enough to group hardlinks and to make
 * sure the file later hashed is the inode that was stat'ed. */
struct walk_reg {
	uint64_t dev, ino;
	const char *path;      /* borrowed from the tree entry */
	size_t idx;            /* index in the sorted tree */
	bool linked;           /* st_nlink > 1 */
	bool fresh;            /* hashed, and unchanged from the walk's stat meanwhile */
	struct hcache_key key; /* the walk's stat of it */
};

struct walk {
	struct dimg_tree *t;
	struct walk_reg *regs;
	size_t nregs, capregs;
	char *err_path;
};

static char *path_join(const char *parent, const char *name)
{
	if (!parent[0])
		return strdup(name);
	size_t pl = strlen(parent), nl = strlen(name);
	char *p = malloc(pl + 1 + nl + 1);
	if (!p)
		return NULL;
	memcpy(p, parent, pl);
	p[pl] = '/';
	memcpy(p + pl + 1, name, nl + 1);
	return p;
}

/* Remembers the first failure's path; later failures keep the first. */
static int walk_fail(struct walk *w, const char *parent, const char *name, int r)
{
	if (!w->err_path)
		w->err_path = name ? path_join(parent, name) : strdup(parent);
	return r;
}

/* Reads the NUL-separated name list; fd >= 0 selects flistxattr, else the
 * l* call on lpath (which must not end in a symlink we would follow). */
static ssize_t xattr_list(char **out, int fd, const char *lpath)
{
	*out = NULL;
	for (int tries = 0; tries < 8; tries++) {
		ssize_t n = fd >= 0 ? flistxattr(fd, NULL, 0) : llistxattr(lpath, NULL, 0);
		if (n < 0)
			return (errno == ENOTSUP) ? 0 : -errno;
		if (n == 0)
			return 0;
		char *buf = malloc((size_t)n);
		if (!buf)
			return -ENOMEM;
		ssize_t m =
		    fd >= 0 ? flistxattr(fd, buf, (size_t)n) : llistxattr(lpath, buf, (size_t)n);
		if (m >= 0) {
			*out = buf;
			return m;
		}
		int err = errno;
		free(buf);
		if (err != ERANGE) /* ERANGE: the list grew meanwhile, ask again */
			return -err;
	}
	return -EAGAIN;
}

static int xattr_get(struct dimg_xattr *x, int fd, const char *lpath, const char *name)
{
	for (int tries = 0; tries < 8; tries++) {
		ssize_t n =
		    fd >= 0 ? fgetxattr(fd, name, NULL, 0) : lgetxattr(lpath, name, NULL, 0);
		if (n < 0)
			return -errno;
		if (n > UINT32_MAX)
			return -EOVERFLOW;
		uint8_t *v = malloc(n ? (size_t)n : 1);
		if (!v)
			return -ENOMEM;
		ssize_t m = fd >= 0 ? fgetxattr(fd, name, v, (size_t)n)
		                    : lgetxattr(lpath, name, v, (size_t)n);
		if (m >= 0) {
			x->value = v;
			x->value_len = (uint32_t)m;
			return 0;
		}
		int err = errno;
		free(v);
		if (err != ERANGE)
			return -err;
	}
	return -EAGAIN;
}

static int cmp_str_ptr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Splits a listxattr buffer into sorted name pointers into that buffer. */
static int xattr_names(const char ***out, uint32_t *count, char *buf, size_t len)
{
	uint32_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\0';
	const char **names = calloc(n ? n : 1, sizeof(*names));
	if (!names)
		return -ENOMEM;
	uint32_t k = 0;
	for (size_t i = 0; i < len && k < n; i += strlen(buf + i) + 1)
		if (buf[i])
			names[k++] = buf + i;
	qsort(names, k, sizeof(*names), cmp_str_ptr);
	*out = names;
	*count = k;
	return 0;
}

/* Fills e->xattrs from fd (>= 0) or lpath, sorted by name. An attribute
 * removed between list and get is simply absent. */
static int read_xattrs(struct dimg_entry *e, int fd, const char *lpath)
{
	char *buf;
	const char **names = NULL;
	uint32_t n = 0;
	ssize_t len = xattr_list(&buf, fd, lpath);
	if (len <= 0) {
		free(buf); /* the list may have emptied between the two calls */
		return (int)len;
	}
	int r = xattr_names(&names, &n, buf, (size_t)len);
	if (r < 0)
		goto out;
	e->xattrs = calloc(n ? n : 1, sizeof(*e->xattrs));
	r = e->xattrs ? 0 : -ENOMEM;
	for (uint32_t i = 0; i < n && r == 0; i++) {
		struct dimg_xattr *x = &e->xattrs[e->nxattrs];
		r = xattr_get(x, fd, lpath, names[i]);
		if (r == -ENODATA) {
			r = 0;
			continue;
		}
		if (r == 0) {
			x->name = strdup(names[i]);
			e->nxattrs++; /* counted before the check so clear() frees value */
			r = x->name ? 0 : -ENOMEM;
		}
	}
out:
	free(names);
	free(buf);
	return r;
}

static void fill_stat(struct dimg_entry *e, const struct stat *st)
{
	e->mode = st->st_mode & 07777;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->mtime_sec = st->st_mtim.tv_sec;
	e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
}

static int read_symlink(struct dimg_entry *e, int dfd, const char *name, const struct stat *st)
{
	size_t cap = (size_t)st->st_size + 1;
	for (int tries = 0; tries < 8; tries++, cap *= 2) {
		char *buf = malloc(cap);
		if (!buf)
			return -ENOMEM;
		ssize_t n = readlinkat(dfd, name, buf, cap);
		if (n < 0) {
			int r = -errno;
			free(buf);
			return r;
		}
		if ((size_t)n < cap) { /* else truncated: the link changed, retry */
			buf[n] = '\0';
			e->link = buf;
			e->size = (uint64_t)n;
			return 0;
		}
		free(buf);
	}
	return -EAGAIN;
}

static int note_reg(struct walk *w, const struct stat *st, const char *path)
{
	if (w->nregs == w->capregs) {
		size_t cap = w->capregs ? w->capregs * 2 : 256;
		struct walk_reg *v = realloc(w->regs, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		w->regs = v;
		w->capregs = cap;
	}
	w->regs[w->nregs] = (struct walk_reg){
	    .dev = st->st_dev, .ino = st->st_ino, .path = path, .linked = st->st_nlink > 1};
	hcache_key_from_stat(&w->regs[w->nregs++].key, st);
	return 0;
}

/* Type-specific fields of a non-directory; 1 means "skip" (sockets). */
static int fill_nondir(struct dimg_entry *e, int dfd, const char *name, const struct stat *st)
{
	switch (st->st_mode & S_IFMT) {
	case S_IFREG:
		e->type = DIMG_TYPE_REG;
		e->size = (uint64_t)st->st_size;
		return 0;
	case S_IFLNK:
		e->type = DIMG_TYPE_SYMLINK;
		return read_symlink(e, dfd, name, st);
	case S_IFCHR:
	case S_IFBLK:
		e->type = S_ISCHR(st->st_mode) ? DIMG_TYPE_CHR : DIMG_TYPE_BLK;
		e->rdev_major = major(st->st_rdev);
		e->rdev_minor = minor(st->st_rdev);
		return 0;
	case S_IFIFO:
		e->type = DIMG_TYPE_FIFO;
		return 0;
	case S_IFSOCK:
		return 1;
	default:
		return -ENOTSUP;
	}
}

/* Files, symlinks, devices: metadata from fstatat, xattrs through
 * /proc/self/fd/<dfd>/<name> with the l* calls, which resolves the pinned
 * directory and then the single final component without following it. */
static int walk_nondir(struct walk *w, int dfd, const char *parent, const char *name,
                       const struct stat *st)
{
	struct dimg_entry e;
	memset(&e, 0, sizeof(e));
	int r = fill_nondir(&e, dfd, name, st);
	if (r == 1)
		return 0;
	char lpath[64 + NAME_MAX];
	if (r == 0 &&
	    snprintf(lpath, sizeof(lpath), "/proc/self/fd/%d/%s", dfd, name) >= (int)sizeof(lpath))
		r = -ENAMETOOLONG;
	if (r == 0)
		r = read_xattrs(&e, -1, lpath);
	fill_stat(&e, st);
	e.path = path_join(parent, name);
	if (r == 0 && !e.path)
		r = -ENOMEM;
	if (r == 0 && e.type == DIMG_TYPE_REG)
		r = note_reg(w, st, e.path);
	if (r == 0)
		r = dimg_tree_append_move(w->t, &e);
	dimg_entry_clear(&e);
	return r < 0 ? walk_fail(w, parent, name, r) : 0;
}

static int walk_dir(struct walk *w, int dfd, const char *path);

/* A directory entry from its opened fd, appended before its children. */
static int add_dir_entry(struct walk *w, int fd, char *path)
{
	struct dimg_entry e;
	struct stat st;
	memset(&e, 0, sizeof(e));
	e.path = path;
	e.type = DIMG_TYPE_DIR;
	int r = fstat(fd, &st) < 0 ? -errno : 0;
	if (r == 0) {
		fill_stat(&e, &st);
		r = read_xattrs(&e, fd, NULL);
	}
	if (r == 0)
		r = dimg_tree_append_move(w->t, &e);
	dimg_entry_clear(&e);
	return r;
}

/* O_NOFOLLOW|O_DIRECTORY: if the directory was swapped for a symlink since
 * fstatat, the open fails instead of leaving the tree. */
static int walk_subdir(struct walk *w, int dfd, const char *parent, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return walk_fail(w, parent, name, -errno);
	char *path = path_join(parent, name);
	int r = path ? add_dir_entry(w, fd, path) : -ENOMEM;
	if (r < 0) {
		close(fd);
		return walk_fail(w, parent, name, r);
	}
	/* path now belongs to the tree; the string itself never moves. */
	r = walk_dir(w, fd, path);
	close(fd);
	return r;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* All names of a directory except "." and "..", read up front so that only
 * one fd per level stays open while descending. */
static int read_names(char ***out, size_t *count, int dfd)
{
	int fd = dup(dfd);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			r = -errno;
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			char **v = realloc(names, cap * sizeof(*v));
			if (!v) {
				r = -ENOMEM;
				break;
			}
			names = v;
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			r = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (r < 0) {
		free_names(names, n);
		return r;
	}
	*out = names;
	*count = n;
	return 0;
}

static int walk_dir(struct walk *w, int dfd, const char *path)
{
	char **names = NULL;
	size_t n = 0;
	int r = read_names(&names, &n, dfd);
	if (r < 0)
		return walk_fail(w, path, NULL, r);
	for (size_t i = 0; i < n && r == 0; i++) {
		struct stat st;
		if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			r = walk_fail(w, path, names[i], -errno);
		else if (S_ISDIR(st.st_mode))
			r = walk_subdir(w, dfd, path, names[i]);
		else
			r = walk_nondir(w, dfd, path, names[i], &st);
	}
	free_names(names, n);
	return r;
}

/* ---- hardlinks ---- */

static int cmp_reg_inode(const void *a, const void *b)
{
	const struct walk_reg *x = a, *y = b;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int make_hardlink(struct dimg_entry *e, const char *leader)
{
	char *link = strdup(leader);
	if (!link)
		return -ENOMEM;
	char *path = e->path;
	e->path = NULL;
	dimg_entry_clear(e);
	e->path = path;
	e->type = DIMG_TYPE_HARDLINK;
	e->link = link;
	return 0;
}

/* Groups linked files by inode; the lowest path in sorted order leads.
 * Drops non-leaders from w->regs, leaving exactly the files to hash. */
static int resolve_hardlinks(struct walk *w)
{
	for (size_t i = 0; i < w->nregs; i++)
		w->regs[i].idx = (size_t)dimg_tree_index(w->t, w->regs[i].path);
	if (w->nregs) /* regs is NULL in a tree without regular files */
		qsort(w->regs, w->nregs, sizeof(*w->regs), cmp_reg_inode);
	size_t keep = 0;
	for (size_t i = 0; i < w->nregs; i++) {
		struct walk_reg *g = &w->regs[keep - (keep > 0)];
		if (keep && w->regs[i].linked && g->linked && g->dev == w->regs[i].dev &&
		    g->ino == w->regs[i].ino) {
			int r = make_hardlink(&w->t->v[w->regs[i].idx], g->path);
			if (r < 0)
				return r;
			continue;
		}
		w->regs[keep++] = w->regs[i];
	}
	w->nregs = keep;
	return 0;
}

/* ---- hashing ---- */

#define HASH_CHUNK (256u << 10)

struct hasher {
	struct dimg_tree *t;
	struct walk_reg *jobs;
	size_t njobs, next;
	int rootfd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t done;
	unsigned running;
	int err;
	size_t err_job;
};

static void hasher_add_done(struct hasher *h, uint64_t n)
{
	pthread_mutex_lock(&h->mu);
	h->done += n;
	pthread_mutex_unlock(&h->mu);
}

/* Whether what was read is the file the walk saw: the stat taken before
 * reading and one taken after both match the walk's. */
static bool stat_unchanged(int fd, const struct hcache_key *walked, const struct stat *before)
{
	struct hcache_key k;
	struct stat after;
	hcache_key_from_stat(&k, before);
	if (!hcache_key_equal(&k, walked) || fstat(fd, &after) < 0)
		return false;
	hcache_key_from_stat(&k, &after);
	return hcache_key_equal(&k, walked);
}

/* Reads exactly the inode the walk saw (same dev/ino, same size): a file
 * replaced or resized meanwhile would give a size/hash pair that never
 * existed together, so that is -ESTALE rather than a silent mix. */
static int hash_one(struct hasher *h, struct walk_reg *job, uint8_t *buf, struct dimg_sha256 *sha)
{
	struct dimg_entry *e = &h->t->v[job->idx];
	int fd, r = dimg_openat_beneath(h->rootfd, e->path, O_RDONLY | O_NOCTTY | O_NONBLOCK, &fd);
	if (r < 0)
		return r;
	struct stat st;
	uint64_t total = 0;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_dev != job->dev || st.st_ino != job->ino) {
		r = -ESTALE;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, HASH_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		dimg_sha256_update(sha, buf, (size_t)n);
		total += (uint64_t)n;
		hasher_add_done(h, (uint64_t)n);
	}
	dimg_sha256_final(sha, e->sha256);
	r = total == e->size ? 0 : -ESTALE;
	job->fresh = r == 0 && stat_unchanged(fd, &job->key, &st);
out:
	close(fd);
	return r;
}

static void hasher_record_error(struct hasher *h, size_t j, int r)
{
	pthread_mutex_lock(&h->mu);
	if (!h->err || j < h->err_job) {
		h->err = r;
		h->err_job = j;
	}
	h->next = h->njobs; /* nobody starts another file */
	pthread_mutex_unlock(&h->mu);
}

static void *hasher_worker(void *arg)
{
	struct hasher *h = arg;
	struct dimg_sha256 *sha = NULL;
	uint8_t *buf = malloc(HASH_CHUNK);
	int r = buf ? dimg_sha256_new(&sha) : -ENOMEM;
	for (;;) {
		pthread_mutex_lock(&h->mu);
		size_t j = h->next < h->njobs ? h->next++ : SIZE_MAX;
		pthread_mutex_unlock(&h->mu);
		if (j == SIZE_MAX)
			break;
		if (r == 0)
			r = hash_one(h, &h->jobs[j], buf, sha);
		if (r < 0) {
			hasher_record_error(h, j, r);
			break;
		}
	}
	dimg_sha256_free(sha);
	free(buf);
	pthread_mutex_lock(&h->mu);
	h->running--;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* The calling thread only waits and reports progress, so the callback
 * never runs on a worker. */
static void hasher_wait(struct hasher *h, uint64_t total, dimg_progress_fn progress, void *pctx)
{
	pthread_mutex_lock(&h->mu);
	while (h->running > 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 200 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&h->cv, &h->mu, &ts);
		uint64_t done = h->done;
		if (progress && h->running > 0) {
			pthread_mutex_unlock(&h->mu);
			progress(pctx, "hash", done, total);
			pthread_mutex_lock(&h->mu);
		}
	}
	pthread_mutex_unlock(&h->mu);
}

static int hasher_init(struct hasher *h)
{
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca))
		return -ENOMEM;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int r = pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (r)
		return -r;
	r = pthread_mutex_init(&h->mu, NULL);
	if (r) {
		pthread_cond_destroy(&h->cv);
		return -r;
	}
	return 0;
}

static unsigned pick_threads(unsigned nthreads, size_t njobs)
{
	if (nthreads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		nthreads = n > 0 ? (unsigned)n : 1;
	}
	if (nthreads > 256)
		nthreads = 256;
	if (nthreads > njobs)
		nthreads = (unsigned)njobs;
	return nthreads ? nthreads : 1;
}

/* Digests the cache has are filled in (and kept for the next walk); the
 * files left to hash move to the front of w->regs, *n of them. */
static int take_cached(struct walk *w, struct hcache *c, size_t *n, int64_t now_ns,
                       struct dimg_walk_stats *st)
{
	size_t k = 0;
	for (size_t i = 0; i < w->nregs; i++) {
		struct walk_reg *g = &w->regs[i];
		struct dimg_entry *e = &w->t->v[g->idx];
		if (!hcache_lookup(c, &g->key, e->sha256)) {
			w->regs[k++] = *g;
			continue;
		}
		st->files_cached++;
		int r = hcache_keep(c, &g->key, e->sha256, now_ns);
		if (r < 0)
			return r;
	}
	*n = k;
	return 0;
}

/* After hashing: files read whole and unchanged go into the cache. */
static int keep_hashed(struct walk *w, struct hcache *c, size_t n, int64_t now_ns,
                       struct dimg_walk_stats *st)
{
	for (size_t i = 0; i < n; i++) {
		const struct walk_reg *g = &w->regs[i];
		st->files_hashed++;
		st->bytes_hashed += g->key.size;
		int r = g->fresh ? hcache_keep(c, &g->key, w->t->v[g->idx].sha256, now_ns) : 0;
		if (r < 0)
			return r;
	}
	return 0;
}

static int hash_jobs(struct walk *w, size_t njobs, int rootfd, unsigned nthreads,
                     dimg_progress_fn progress, void *pctx)
{
	struct hasher h = {.t = w->t, .jobs = w->regs, .njobs = njobs, .rootfd = rootfd};
	uint64_t total = 0;
	for (size_t i = 0; i < njobs; i++)
		total += w->t->v[w->regs[i].idx].size;
	if (njobs == 0)
		return 0;
	int r = hasher_init(&h);
	if (r < 0)
		return r;
	nthreads = pick_threads(nthreads, njobs);
	pthread_t *tids = calloc(nthreads, sizeof(*tids));
	unsigned started = 0;
	h.running = nthreads;
	for (; tids && started < nthreads; started++)
		if (pthread_create(&tids[started], NULL, hasher_worker, &h) != 0)
			break;
	pthread_mutex_lock(&h.mu);
	h.running -= nthreads - started;
	pthread_mutex_unlock(&h.mu);
	if (started == 0) { /* no threads to be had: hash right here */
		h.running = 1;
		hasher_worker(&h);
	}
	hasher_wait(&h, total, progress, pctx);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	pthread_cond_destroy(&h.cv);
	pthread_mutex_destroy(&h.mu);
	if (h.err < 0)
		return walk_fail(w, w->regs[h.err_job].path, NULL, h.err);
	if (progress)
		progress(pctx, "hash", h.done, total);
	return 0;
}

static int hash_files(struct walk *w, const char *root, int rootfd, const struct dimg_walk_opts *o)
{
	struct dimg_walk_stats st = {0};
	struct hcache *c = NULL;
	struct timespec now;
	size_t n = w->nregs;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t now_ns = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
	int r = o->hash_cache ? hcache_open(&c, o->hash_cache, root, rootfd) : 0;
	if (r == 0 && c)
		r = take_cached(w, c, &n, now_ns, &st);
	if (r == 0)
		r = hash_jobs(w, n, rootfd, o->nthreads, o->progress, o->pctx);
	if (r == 0)
		r = keep_hashed(w, c, n, now_ns, &st);
	if (r == 0)
		hcache_save(c);
	hcache_free(c);
	if (o->stats)
		*o->stats = st;
	return r;
}

/* ---- entry point ---- */

/* The root path itself is the caller's and is resolved normally; only what
 * lies beneath it is untrusted. */
static int walk_root(struct walk *w, int rootfd)
{
	char *path = strdup("");
	int r = path ? add_dir_entry(w, rootfd, path) : -ENOMEM;
	if (r < 0)
		return walk_fail(w, "", NULL, r);
	return walk_dir(w, rootfd, "");
}

int dimg_tree_walk(struct dimg_tree **out, const char *root, unsigned flags, unsigned nthreads,
                   dimg_progress_fn progress, void *pctx, struct dimg_err *err)
{
	struct dimg_walk_opts o = {
	    .flags = flags, .nthreads = nthreads, .progress = progress, .pctx = pctx};
	return dimg_tree_walk_opts(out, root, &o, err);
}

int dimg_tree_walk_opts(struct dimg_tree **out, const char *root, const struct dimg_walk_opts *o,
                        struct dimg_err *err)
{
	struct walk w = {0};
	*out = NULL;
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return dimg_err_set(err, -errno, root, NULL);
	int r = dimg_tree_new(&w.t);
	if (r == 0)
		r = walk_root(&w, rootfd);
	if (r == 0)
		r = dimg_tree_sort(w.t);
	if (r == 0)
		r = resolve_hardlinks(&w);
	if (r == 0 && !(o->flags & DIMG_WALK_NO_HASH))
		r = hash_files(&w, root, rootfd, o);
	close(rootfd);
	free(w.regs);
	if (r < 0) {
		dimg_tree_free(w.t);
		dimg_err_set(err, r, w.err_path ? w.err_path : root, NULL);
		free(w.err_path);
		return r;
	}
	free(w.err_path);
	*out = w.t;
	return 0;
}
