/* mkdir -p, rm -rf and du for snapshot directories (see fsutil.h). fts runs
 * with FTS_NOCHDIR: the daemon is multi-threaded and cwd is process-wide. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fsutil_pathf(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= cap)
		return -ENAMETOOLONG;
	return 0;
}

int fsutil_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

int fsutil_mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	int r = fsutil_pathf(buf, sizeof(buf), "%s", path);

	if (r < 0)
		return r;
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != 0)
			continue;
		char c = *p;
		*p = 0;
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = c;
		if (c == 0)
			break;
	}
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int rmtree_entry(const FTSENT *e)
{
	switch (e->fts_info) {
	case FTS_D:
		return 0; /* removed on the way back up (FTS_DP) */
	case FTS_DP:
		return rmdir(e->fts_accpath) < 0 ? -errno : 0;
	case FTS_DNR:
	case FTS_ERR:
	case FTS_NS:
		return e->fts_errno == ENOENT ? 0 : -e->fts_errno;
	default:
		return unlink(e->fts_accpath) < 0 && errno != ENOENT ? -errno : 0;
	}
}

int fsutil_rmtree(const char *path)
{
	char *paths[] = {(char *)path, NULL};
	struct stat st;
	int first = 0;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 ? -errno : 0;
	FTS *fts = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR | FTS_XDEV, NULL);
	if (!fts)
		return -errno;
	FTSENT *e;
	while ((e = fts_read(fts)) != NULL) {
		int r = rmtree_entry(e);
		if (r < 0 && first == 0)
			first = r; /* keep going: remove what can be removed */
	}
	if (errno && first == 0)
		first = -errno;
	fts_close(fts);
	return first;
}

/* Set of (dev, ino) pairs seen, for inodes with more than one link. */
struct inode_set {
	struct inode_key {
		dev_t dev;
		ino_t ino;
	} * v;
	size_t n, cap; /* cap is 0 or a power of two */
};

static size_t inode_hash(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ULL ^ (uint64_t)dev;
	return (size_t)(h ^ (h >> 29));
}

static int inode_set_grow(struct inode_set *s)
{
	size_t cap = s->cap ? s->cap * 2 : 256;
	struct inode_key *v = calloc(cap, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < s->cap; i++) {
		if (s->v[i].ino == 0)
			continue;
		size_t j = inode_hash(s->v[i].dev, s->v[i].ino) & (cap - 1);
		while (v[j].ino != 0)
			j = (j + 1) & (cap - 1);
		v[j] = s->v[i];
	}
	free(s->v);
	s->v = v;
	s->cap = cap;
	return 0;
}

/* 1 if newly added, 0 if already present, -ENOMEM. Inode 0 never occurs. */
static int inode_set_add(struct inode_set *s, dev_t dev, ino_t ino)
{
	if ((s->n + 1) * 2 > s->cap && inode_set_grow(s) < 0)
		return -ENOMEM;
	size_t j = inode_hash(dev, ino) & (s->cap - 1);
	while (s->v[j].ino != 0) {
		if (s->v[j].ino == ino && s->v[j].dev == dev)
			return 0;
		j = (j + 1) & (s->cap - 1);
	}
	s->v[j].dev = dev;
	s->v[j].ino = ino;
	s->n++;
	return 1;
}

int fsutil_du(int64_t *bytes, int64_t *inodes, const char *path)
{
	char *paths[] = {(char *)path, NULL};
	struct inode_set seen = {0};
	int64_t b = 0, n = 0;
	int r = 0;

	FTS *fts = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR | FTS_XDEV, NULL);
	if (!fts)
		return -errno;
	FTSENT *e;
	while (r == 0 && (e = fts_read(fts)) != NULL) {
		if (e->fts_info == FTS_DP)
			continue;
		if (e->fts_info == FTS_NS || e->fts_info == FTS_ERR) {
			if (e->fts_level == 0)
				r = -e->fts_errno; /* the root itself is unreadable */
			continue;
		}
		const struct stat *st = e->fts_statp;
		int add = 1;
		if (!S_ISDIR(st->st_mode) && st->st_nlink > 1)
			add = inode_set_add(&seen, st->st_dev, st->st_ino);
		if (add < 0)
			r = add;
		if (add > 0) {
			b += (int64_t)st->st_blocks * 512;
			n++;
		}
	}
	if (r == 0 && errno)
		r = -errno;
	fts_close(fts);
	free(seen.v);
	if (r == 0) {
		*bytes = b;
		*inodes = n;
	}
	return r;
}
