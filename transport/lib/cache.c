/* Resumable downloads: a blob from a remote source goes to
 * <dir>/sha256/<hex>.partial (locked while written), continues from its
 * end after an interruption, and becomes <hex> once its size and digest
 * check; the copy then reads that file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy-internal.h"
#include "dimg/tree.h"

#define XCACHE_BUF (256u << 10)

struct xcache_sink {
	int fd;
	struct xverify v;
	uint64_t done, resumed;
	xcache_progress_fn progress;
	void *pctx;
};

static int xcache_write(void *ctx, const void *p, size_t n)
{
	struct xcache_sink *s = ctx;
	int r = xverify_update(&s->v, p, n);
	if (r == 0)
		r = dimg_write_fd(&s->fd, p, n);
	s->done += n;
	if (r == 0 && s->progress)
		s->progress(s->pctx, s->done, s->resumed);
	return r;
}

ssize_t xcache_read_fd(void *ctx, void *p, size_t n)
{
	int fd = *(int *)ctx;
	for (;;) {
		ssize_t k = read(fd, p, n);
		if (k >= 0 || errno != EINTR)
			return k < 0 ? -errno : k;
	}
}

/* mkdir -p of path (changed and restored on the way). */
static int xcache_mkdirs(char *path)
{
	for (char *s = path + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		int bad = mkdir(path, 0755) < 0 && errno != EEXIST;
		*s = c;
		if (bad)
			return -errno;
		if (!c)
			return 0;
	}
}

/* "<dir>/sha256/<hex>" and its ".partial". */
static int xcache_paths(const char *dir, const uint8_t d[32], char **done, char **part)
{
	char hex[65];
	dimg_hex32(d, hex);
	*done = *part = NULL;
	if (asprintf(done, "%s/sha256/%s", dir, hex) < 0 ||
	    asprintf(part, "%s/sha256/%s.partial", dir, hex) < 0) {
		free(*done);
		*done = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Feeds what the partial file holds to the verifier; truncates it when it
 * is longer than the blob. */
static int xcache_seed(struct xcache_sink *s, uint64_t size)
{
	struct stat st;
	uint8_t *buf = malloc(XCACHE_BUF);
	int r = buf && fstat(s->fd, &st) == 0 ? 0 : buf ? -errno : -ENOMEM;
	uint64_t have = r == 0 ? (uint64_t)st.st_size : 0;
	if (r == 0 && have > size && ftruncate(s->fd, 0) < 0)
		r = -errno;
	have = have > size ? 0 : have;
	for (uint64_t off = 0; r == 0 && off < have;) {
		size_t want = have - off < XCACHE_BUF ? (size_t)(have - off) : XCACHE_BUF;
		ssize_t k = pread(s->fd, buf, want, (off_t)off);
		if (k <= 0)
			r = k < 0 ? -errno : -EIO;
		else
			xverify_update(&s->v, buf, (size_t)k);
		off += k > 0 ? (uint64_t)k : 0;
	}
	free(buf);
	s->done = s->resumed = r == 0 ? have : 0;
	return r < 0 || lseek(s->fd, (off_t)have, SEEK_SET) < 0 ? (r < 0 ? r : -errno) : 0;
}

/* One attempt: from where the partial file ends. */
static int xcache_attempt(struct xcache_sink *s, struct xport *src, const struct oci_desc *d,
                          struct dimg_err *err)
{
	struct dimg_err e = {0};
	int r = xverify_init(&s->v, d);
	if (r == 0)
		r = xcache_seed(s, d->size);
	if (r == 0 && s->done < d->size)
		r = xport_get_blob(src, d, s->done, xcache_write, s, &e);
	if (r == 0 || r == -EBADMSG)
		r = xverify_final(&s->v, &e);
	xverify_free(&s->v);
	if (r < 0)
		dimg_err_set(err, r, e.what[0] ? e.what : NULL, "%s", e.why);
	return r;
}

int xcache_fetch(const char *dir, struct xport *src, const struct oci_desc *d,
                 xcache_progress_fn progress, void *pctx, int *fd, struct dimg_err *err)
{
	struct xcache_sink s = {.fd = -1, .progress = progress, .pctx = pctx};
	char *done, *part, *sub = NULL;
	struct stat st;
	int r = xcache_paths(dir, d->digest, &done, &part);
	*fd = -1;
	if (r < 0)
		return r;
	if ((*fd = open(done, O_RDONLY | O_CLOEXEC)) >= 0 && fstat(*fd, &st) == 0 &&
	    (uint64_t)st.st_size == d->size)
		goto out; /* the destination checks it as it reads */
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	if (asprintf(&sub, "%s/sha256", dir) < 0 || (r = xcache_mkdirs(sub)) < 0 ||
	    (s.fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0 ||
	    flock(s.fd, LOCK_EX) < 0) {
		r = dimg_err_set(err, sub ? (r < 0 ? r : -errno) : -ENOMEM, dir,
		                 "the download cache");
		goto out;
	}
	r = xcache_attempt(&s, src, d, err);
	if (r == -EBADMSG && s.resumed) { /* what was there is wrong: once more from 0 */
		dimg_err_clear(err);
		r = ftruncate(s.fd, 0) < 0 ? -errno : xcache_attempt(&s, src, d, err);
	}
	if (r == 0 && (fsync(s.fd) < 0 || rename(part, done) < 0 || lseek(s.fd, 0, SEEK_SET) < 0))
		r = dimg_err_set(err, -errno, part, NULL);
	if (r == 0) {
		*fd = s.fd;
		s.fd = -1;
	} else if (r == -EBADMSG) {
		unlink(part); /* wrong bytes: never resumed */
	}
out:
	if (s.fd >= 0)
		close(s.fd);
	free(sub);
	free(done);
	free(part);
	return r;
}

void xcache_drop(const char *dir, const struct oci_desc *d)
{
	char *done, *part;
	if (xcache_paths(dir, d->digest, &done, &part) < 0)
		return;
	unlink(done);
	free(done);
	free(part);
}
