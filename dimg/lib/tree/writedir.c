/* Materialising a tree as a directory: everything is built in a private
 * temporary sibling through directory fds and renamed into place whole. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "dimg/fileio.h"
#include "dimg/tree.h"
#include "dimg/hash.h"
#include "dimg/write.h"
#include "tree-internal.h"

#define PROGRESS_STEP (8u << 20)

struct wdir {
	const struct dimg_tree *t;
	unsigned flags;
	int tmpfd;     /* the temporary root, O_RDONLY */
	int cur_fd;    /* cached parent directory of the last entry */
	char *cur_dir; /* its tree path */
	struct dimg_sha256 *sha;
	dimg_content_fn content;
	void *ctx;
	dimg_progress_fn progress;
	void *pctx;
	uint64_t done, total, reported;
};

static bool name_ok(const char *n)
{
	return n[0] && strcmp(n, ".") && strcmp(n, "..") && !strchr(n, '/');
}

/* Splits a caller's path into parent and final name, both malloc'd; the
 * name must be a real one, so "/", "." or "x/.." are refused. */
static int split_path(char **parent, char **base, const char *path)
{
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--;
	const char *end = path + len, *slash = NULL;
	for (const char *p = path; p < end; p++)
		if (*p == '/')
			slash = p;
	const char *b = slash ? slash + 1 : path;
	*base = strndup(b, (size_t)(end - b));
	if (!slash)
		*parent = strdup(".");
	else
		*parent = strndup(path, slash == path ? 1 : (size_t)(slash - path));
	if (!*parent || !*base) {
		free(*parent);
		free(*base);
		return -ENOMEM;
	}
	if (!name_ok(*base)) {
		free(*parent);
		free(*base);
		return -EINVAL;
	}
	return 0;
}

/* ---- removal ---- */

int dimg_rmtree(const char *path)
{
	char *parent, *base;
	int r = split_path(&parent, &base, path);
	if (r < 0)
		return r;
	int pfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0) {
		r = errno == ENOENT ? 0 : -errno;
	} else {
		r = dimg_rmtree_at(pfd, base);
		close(pfd);
	}
	free(parent);
	free(base);
	return r;
}

/* ---- metadata ---- */

static void entry_times(const struct dimg_entry *e, struct timespec ts[2])
{
	/* atime = mtime: the tree has no atime, and this keeps output stable. */
	ts[0].tv_sec = ts[1].tv_sec = (time_t)e->mtime_sec;
	ts[0].tv_nsec = ts[1].tv_nsec = (long)e->mtime_nsec;
}

/* Order matters: chown clears setuid/setgid and drops
 * security.capability, so xattrs and mode come after it; xattrs precede
 * the mode so that an unprivileged owner can still set user.* on what will
 * be a read-only file (chmod leaves xattrs alone, and rewrites an ACL's
 * mask to the very group bits the ACL implied); mtime goes last. */
static int meta_fd(const struct wdir *w, const struct dimg_entry *e, int fd)
{
	struct timespec ts[2];
	if (!(w->flags & DIMG_WRITE_NO_OWNER) && fchown(fd, e->uid, e->gid) < 0)
		return -errno;
	for (uint32_t i = 0; !(w->flags & DIMG_WRITE_NO_XATTR) && i < e->nxattrs; i++) {
		const struct dimg_xattr *x = &e->xattrs[i];
		if (fsetxattr(fd, x->name, x->value, x->value_len, 0) < 0)
			return -errno;
	}
	if (fchmod(fd, e->mode & 07777) < 0)
		return -errno;
	entry_times(e, ts);
	return futimens(fd, ts) < 0 ? -errno : 0;
}

/* Same for symlinks, device nodes and FIFOs, which cannot be opened for this:
 * *at calls that do not follow, xattrs through /proc/self/fd/<dfd>/<name>
 * with the l* calls (the pinned directory, then the name unfollowed). */
static int meta_at(const struct wdir *w, const struct dimg_entry *e, int dfd, const char *name)
{
	struct timespec ts[2];
	if (!(w->flags & DIMG_WRITE_NO_OWNER) &&
	    fchownat(dfd, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!(w->flags & DIMG_WRITE_NO_XATTR) && e->nxattrs) {
		char lpath[64 + NAME_MAX];
		if (snprintf(lpath, sizeof(lpath), "/proc/self/fd/%d/%s", dfd, name) >=
		    (int)sizeof(lpath))
			return -ENAMETOOLONG;
		for (uint32_t i = 0; i < e->nxattrs; i++) {
			const struct dimg_xattr *x = &e->xattrs[i];
			if (lsetxattr(lpath, x->name, x->value, x->value_len, 0) < 0)
				return -errno;
		}
	}
	if (e->type != DIMG_TYPE_SYMLINK &&
	    fchmodat(dfd, name, e->mode & 07777, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	entry_times(e, ts);
	return utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* ---- creation ---- */

/* A directory of the tree, opened beneath the temporary root: never through
 * a symlink, whatever the tree or anyone else put there. */
static int open_tree_dir(int *fd, const struct wdir *w, const char *path, size_t len, int flags)
{
	if (len == 0) {
		*fd = w->tmpfd;
		return 0;
	}
	char *dir = strndup(path, len);
	if (!dir)
		return -ENOMEM;
	int r = dimg_openat_beneath(w->tmpfd, dir, flags | O_DIRECTORY, fd);
	free(dir);
	return r;
}

static void close_tree_dir(const struct wdir *w, int fd)
{
	if (fd >= 0 && fd != w->tmpfd)
		close(fd);
}

/* Parent fd and final name of a tree path. The fd is cached: in sorted
 * order, runs of siblings share it. */
static int entry_parent(int *dfd, const char **name, struct wdir *w, const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t len = slash ? (size_t)(slash - path) : 0;
	*name = slash ? slash + 1 : path;
	if (!name_ok(*name) || (slash && len == 0))
		return -EINVAL;
	if (w->cur_dir && strlen(w->cur_dir) == len && !memcmp(w->cur_dir, path, len)) {
		*dfd = w->cur_fd;
		return 0;
	}
	close_tree_dir(w, w->cur_fd);
	free(w->cur_dir);
	w->cur_fd = -1;
	w->cur_dir = strndup(path, len);
	if (!w->cur_dir)
		return -ENOMEM;
	int r = open_tree_dir(&w->cur_fd, w, path, len, O_PATH);
	if (r < 0) {
		free(w->cur_dir);
		w->cur_dir = NULL;
		return r;
	}
	*dfd = w->cur_fd;
	return 0;
}

/* Sparse output: a 4 KiB block of zeros at a 4 KiB file offset is not
 * written (the next pwrite past it, or the final ftruncate, leaves a hole),
 * so a 10 GiB sparse file of the tree costs its data, not 10 GiB. Blocks
 * are aligned to the file, whatever the producer's chunks: a partial block
 * waits in blk. The file is new (O_EXCL), so what is skipped reads as
 * zeros. */
#define SPARSE_BLOCK 4096u

struct reg_sink {
	struct wdir *w;
	int fd;
	uint64_t n, size;
	uint64_t out;  /* file offset of blk[0]: what precedes it is settled */
	uint64_t wend; /* end of the bytes written (the file's size so far) */
	size_t bl;     /* bytes waiting in blk */
	bool overflow;
	uint8_t blk[SPARSE_BLOCK];
};

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t k = pwrite(fd, p, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

/* n (a multiple of SPARSE_BLOCK) bytes at s->out: each run of blocks with
 * data in one pwrite, zero blocks skipped. */
static int sink_blocks(struct reg_sink *s, const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && !all_zero(p + j, SPARSE_BLOCK))
			j += SPARSE_BLOCK;
		if (j > i) {
			int r = pwrite_all(s->fd, p + i, j - i, s->out + i);
			if (r < 0)
				return r;
			s->wend = s->out + j;
		}
		i = j;
		while (i < n && all_zero(p + i, SPARSE_BLOCK))
			i += SPARSE_BLOCK;
	}
	s->out += n;
	return 0;
}

/* Whole blocks straight from p; a partial one through blk. */
static int sink_sparse(struct reg_sink *s, const uint8_t *p, size_t n)
{
	while (n > 0) {
		int r = 0;
		if (s->bl || n < SPARSE_BLOCK) {
			size_t k = SPARSE_BLOCK - s->bl < n ? SPARSE_BLOCK - s->bl : n;
			memcpy(s->blk + s->bl, p, k);
			s->bl += k;
			p += k;
			n -= k;
			if (s->bl == SPARSE_BLOCK) {
				r = sink_blocks(s, s->blk, SPARSE_BLOCK);
				s->bl = 0;
			}
		} else {
			size_t k = n - n % SPARSE_BLOCK;
			r = sink_blocks(s, p, k);
			p += k;
			n -= k;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* The last partial block, then the size: a trailing hole is ftruncate's. */
static int sink_finish(struct reg_sink *s)
{
	if (s->bl && !all_zero(s->blk, s->bl)) {
		int r = pwrite_all(s->fd, s->blk, s->bl, s->out);
		if (r < 0)
			return r;
		s->wend = s->out + s->bl;
	}
	if (s->wend < s->n && ftruncate(s->fd, (off_t)s->n) < 0)
		return -errno;
	return 0;
}

/* Refuses bytes past the entry's size at once, so a bad producer cannot
 * fill the disk before the final check. */
static int reg_sink_write(void *ctx, const void *p, size_t n)
{
	struct reg_sink *s = ctx;
	if (n > s->size - s->n) {
		s->overflow = true;
		return -EBADMSG;
	}
	int r = sink_sparse(s, p, n);
	if (r < 0)
		return r;
	dimg_sha256_update(s->w->sha, p, n);
	s->n += n;
	s->w->done += n;
	if (s->w->progress && s->w->done - s->w->reported >= PROGRESS_STEP) {
		s->w->reported = s->w->done;
		s->w->progress(s->w->pctx, "write", s->w->done, s->w->total);
	}
	return 0;
}

static int write_reg(struct wdir *w, const struct dimg_entry *e, int dfd, const char *name)
{
	if (!w->content)
		return -EINVAL;
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	struct reg_sink *s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	s->w = w;
	s->fd = fd;
	s->size = e->size;
	uint8_t digest[32];
	int r = w->content(w->ctx, e, reg_sink_write, s);
	dimg_sha256_final(w->sha, digest); /* also resets it for the next file */
	if (r == 0 && (s->overflow || s->n != e->size || memcmp(digest, e->sha256, 32) != 0))
		r = -EBADMSG;
	if (r == 0)
		r = sink_finish(s);
	if (r == 0)
		r = meta_fd(w, e, fd);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	free(s);
	return r;
}

static int write_hardlink(struct wdir *w, const struct dimg_entry *e, int dfd, const char *name)
{
	const char *slash = strrchr(e->link, '/');
	const char *lname = slash ? slash + 1 : e->link;
	int lfd, r;
	if (!name_ok(lname))
		return -EINVAL;
	r = open_tree_dir(&lfd, w, e->link, slash ? (size_t)(slash - e->link) : 0, O_PATH);
	if (r < 0)
		return r;
	if (linkat(lfd, lname, dfd, name, 0) < 0)
		r = -errno;
	close_tree_dir(w, lfd);
	return r;
}

/* 1 when a device node was skipped (DIMG_WRITE_NO_DEVICES, no privilege). */
static int write_node(struct wdir *w, const struct dimg_entry *e, int dfd, const char *name)
{
	mode_t type = e->type == DIMG_TYPE_CHR   ? S_IFCHR
	              : e->type == DIMG_TYPE_BLK ? S_IFBLK
	                                         : S_IFIFO;
	dev_t dev = type == S_IFIFO ? 0 : makedev(e->rdev_major, e->rdev_minor);
	if (mknodat(dfd, name, type | 0600, dev) < 0) {
		if (errno == EPERM && type != S_IFIFO && (w->flags & DIMG_WRITE_NO_DEVICES))
			return 1;
		return -errno;
	}
	return meta_at(w, e, dfd, name);
}

/* Directories get only created here; their metadata comes at the end. */
static int create_entry(struct wdir *w, const struct dimg_entry *e)
{
	int dfd;
	const char *name;
	int r = entry_parent(&dfd, &name, w, e->path);
	if (r < 0)
		return r;
	switch (e->type) {
	case DIMG_TYPE_DIR:
		return mkdirat(dfd, name, 0700) < 0 ? -errno : 0;
	case DIMG_TYPE_REG:
		return write_reg(w, e, dfd, name);
	case DIMG_TYPE_HARDLINK:
		return write_hardlink(w, e, dfd, name);
	case DIMG_TYPE_SYMLINK:
		if (symlinkat(e->link, dfd, name) < 0)
			return -errno;
		return meta_at(w, e, dfd, name);
	case DIMG_TYPE_CHR:
	case DIMG_TYPE_BLK:
	case DIMG_TYPE_FIFO:
		r = write_node(w, e, dfd, name);
		return r < 0 ? r : 0;
	default:
		return -EINVAL;
	}
}

/* Deepest first (reverse sorted order puts every directory after all it
 * contains), so a read-only directory blocks nothing and creating or
 * touching children cannot disturb a parent's mtime afterwards. */
static int finish_dirs(const char **bad, struct wdir *w)
{
	for (size_t i = w->t->n; i-- > 0;) {
		const struct dimg_entry *e = &w->t->v[i];
		if (e->type != DIMG_TYPE_DIR)
			continue;
		int fd, r = open_tree_dir(&fd, w, e->path, strlen(e->path), O_RDONLY);
		if (r == 0) {
			r = meta_fd(w, e, fd);
			close_tree_dir(w, fd);
		}
		if (r < 0) {
			*bad = e->path;
			return r;
		}
	}
	return 0;
}

static int create_all(const char **bad, struct wdir *w)
{
	int r = dimg_sha256_new(&w->sha);
	if (r < 0)
		return r;
	for (size_t i = 0; i < w->t->n; i++)
		if (w->t->v[i].type == DIMG_TYPE_REG)
			w->total += w->t->v[i].size;
	for (size_t i = 1; i < w->t->n && r == 0; i++) { /* v[0] is the root */
		r = create_entry(w, &w->t->v[i]);
		if (r < 0)
			*bad = w->t->v[i].path;
		else if (w->progress && w->t->v[i].type == DIMG_TYPE_REG)
			w->progress(w->pctx, "write", w->done, w->total);
	}
	close_tree_dir(w, w->cur_fd);
	w->cur_fd = -1;
	free(w->cur_dir);
	w->cur_dir = NULL;
	dimg_sha256_free(w->sha);
	w->sha = NULL;
	if (r == 0)
		r = finish_dirs(bad, w);
	/* One syncfs instead of an fsync per file: the rename below must not
	 * reach the disk before the data it publishes. */
	if (r == 0 && syncfs(w->tmpfd) < 0)
		r = -errno;
	return r;
}

/* RENAME_NOREPLACE: an outdir that appeared meanwhile is not replaced.
 * With DIMG_WRITE_REPLACE an existing outdir is exchanged with the new one
 * (1: the old one is now at tmpname, for the caller to remove). */
static int publish(int pfd, const char *tmpname, const char *base, unsigned flags)
{
	if ((flags & DIMG_WRITE_REPLACE) &&
	    renameat2(pfd, tmpname, pfd, base, RENAME_EXCHANGE) == 0)
		return 1;
	if (renameat2(pfd, tmpname, pfd, base, RENAME_NOREPLACE) < 0) {
		if (errno != EINVAL)
			return -errno;
		/* Filesystem without RENAME_NOREPLACE: narrow race, best effort. */
		struct stat st;
		if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return -EEXIST;
		if (renameat(pfd, tmpname, pfd, base) < 0)
			return -errno;
	}
	return 0;
}

/* The temporary sibling ".BASE.tmp-<owner>", locked through *tmpfd while
 * it is written (dimg/fileio.h); first, those of writers killed earlier go. */
static int make_temp(char **tmpname, int *tmpfd, int pfd, const char *base)
{
	size_t len = strlen(base) + sizeof("..tmp-");
	char *prefix = malloc(len);
	if (!prefix)
		return -ENOMEM;
	snprintf(prefix, len, ".%s.tmp-", base);
	(void)dimg_temp_reclaim(pfd, prefix);
	int r = dimg_temp_create(pfd, prefix, 1, tmpname, tmpfd);
	free(prefix);
	return r;
}

static int set_err(struct dimg_err *err, const char *path, int r)
{
	return dimg_err_set(err, r, path, NULL);
}

/* Writes into the temporary directory and renames it into place; the
 * temporary stays locked until renamed or removed. */
static int write_dir(struct wdir *w, int pfd, const char *base, const char *outdir,
                     struct dimg_err *err)
{
	struct stat st;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && !(w->flags & DIMG_WRITE_REPLACE))
		return set_err(err, outdir, -EEXIST);
	if (errno != ENOENT && !(w->flags & DIMG_WRITE_REPLACE))
		return set_err(err, outdir, -errno);
	char *tmpname = NULL;
	int r = make_temp(&tmpname, &w->tmpfd, pfd, base);
	if (r < 0)
		return set_err(err, outdir, r);
	const char *bad = NULL;
	r = create_all(&bad, w);
	if (r < 0)
		set_err(err, bad ? bad : outdir, r);
	else if ((r = publish(pfd, tmpname, base, w->flags)) < 0)
		set_err(err, outdir, r);
	else if (fsync(pfd) < 0) {
		/* Published but maybe not durable: failure must leave nothing. */
		r = set_err(err, outdir, -errno);
		(void)dimg_rmtree_at(pfd, base);
	}
	if (r != 0) /* failed, or the replaced directory, now at tmpname */
		(void)dimg_rmtree_at(pfd, tmpname);
	r = r < 0 ? r : 0;
	close(w->tmpfd);
	w->tmpfd = -1;
	free(tmpname);
	return r;
}

int dimg_tree_write_dir(const struct dimg_tree *t, const char *outdir, dimg_content_fn content,
                        void *ctx, unsigned flags, dimg_progress_fn progress, void *pctx,
                        struct dimg_err *err)
{
	struct wdir w = {.t = t,
	                 .flags = flags,
	                 .tmpfd = -1,
	                 .cur_fd = -1,
	                 .content = content,
	                 .ctx = ctx,
	                 .progress = progress,
	                 .pctx = pctx};
	char *parent = NULL, *base = NULL;
	int r = dimg_tree_validate(t, err);
	if (r < 0)
		return r;
	r = split_path(&parent, &base, outdir);
	if (r < 0)
		return set_err(err, outdir, r);
	int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0) {
		r = set_err(err, outdir, -errno);
	} else {
		r = write_dir(&w, pfd, base, outdir, err);
		close(pfd);
	}
	free(parent);
	free(base);
	return r;
}
