/* The image content store: regular files' contents named by SHA-256 under
 * DIR/sha256/<2 hex>/<64 hex>, written under DIR/tmp/ and renamed (no fsync:
 * it is a cache), so equal contents are stored once. Files under tmp/ and
 * private stores are temporaries named after their writer (dimg/fileio.h):
 * opening a store reclaims those that killed writers left. The layout is
 * public (dimg/cas.h): the snapshotter's cache of rebuilt files is such a
 * store. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cas-internal.h"
#include "dimg/cas.h"
#include "dimg/fileio.h"
#include "dimg/hash.h"
#include "dimg/oci.h"
#include "dimg/write.h"
#include "tree-internal.h"

struct dimg_cas {
	int rootfd;
	int tmpfd; /* DIR/tmp */
	char *dir;
	int owned; /* a private temporary store: removed by dimg_cas_free */
};

void dimg_cas_blob_name(char out[DIMG_CAS_NAME_MAX], const uint8_t sha256[32])
{
	char hex[65];
	dimg_hex32(sha256, hex);
	snprintf(out, DIMG_CAS_NAME_MAX, "sha256/%.2s/%s", hex, hex);
}

static int mkdirat_ok(int dirfd, const char *name)
{
	if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* A private store: $TMPDIR/di3fs-cas-<owner>, locked through *fd (kept as
 * the store's root fd) for as long as the store lives. */
static int cas_private_dir(char **out, int *fd)
{
	const char *base = getenv("TMPDIR");
	char *name = NULL;
	if (!base || base[0] != '/')
		base = "/var/tmp";
	int bfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (bfd < 0)
		return -errno;
	(void)dimg_temp_reclaim(bfd, "di3fs-cas-");
	int r = dimg_temp_create(bfd, "di3fs-cas-", 1, &name, fd);
	if (r == 0 && asprintf(out, "%s/%s", base, name) < 0) {
		(void)unlinkat(bfd, name, AT_REMOVEDIR);
		close(*fd);
		*fd = -1;
		r = -ENOMEM;
	}
	close(bfd);
	free(name);
	return r;
}

static int cas_open_dir(struct dimg_cas *c, const char *dir)
{
	if (!dir) {
		int r = cas_private_dir(&c->dir, &c->rootfd);
		c->owned = r == 0;
		return r;
	}
	c->dir = strdup(dir);
	if (!c->dir)
		return -ENOMEM;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	c->rootfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return c->rootfd < 0 ? -errno : 0;
}

int dimg_cas_open(struct dimg_cas **out, const char *dir)
{
	int r;
	*out = NULL;
	struct dimg_cas *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->rootfd = c->tmpfd = -1;
	if ((r = cas_open_dir(c, dir)) < 0 || (r = mkdirat_ok(c->rootfd, "sha256")) < 0 ||
	    (r = mkdirat_ok(c->rootfd, "tmp")) < 0)
		goto fail;
	c->tmpfd = openat(c->rootfd, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (c->tmpfd < 0) {
		r = -errno;
		goto fail;
	}
	(void)dimg_temp_reclaim(c->tmpfd, "");
	*out = c;
	return 0;
fail:
	dimg_cas_free(c);
	return r;
}

void dimg_cas_free(struct dimg_cas *c)
{
	if (!c)
		return;
	if (c->tmpfd >= 0)
		close(c->tmpfd);
	if (c->owned)
		(void)dimg_rmtree(c->dir); /* still locked by rootfd */
	if (c->rootfd >= 0)
		close(c->rootfd);
	free(c->dir);
	free(c);
}

const char *dimg_cas_dir(const struct dimg_cas *c)
{
	return c->dir;
}

int dimg_cas_open_blob(const struct dimg_cas *c, const uint8_t sha256[32], int *out_fd)
{
	char name[DIMG_CAS_NAME_MAX];
	struct stat st;
	*out_fd = -1;
	dimg_cas_blob_name(name, sha256);
	int fd = openat(c->rootfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -ESTALE;
	if (r < 0) {
		close(fd);
		return r;
	}
	*out_fd = fd;
	return 0;
}

int dimg_cas_remove(const struct dimg_cas *c, const uint8_t sha256[32])
{
	char name[DIMG_CAS_NAME_MAX];
	dimg_cas_blob_name(name, sha256);
	return unlinkat(c->rootfd, name, 0) < 0 ? -errno : 0;
}

/* ---- temporaries ---- */

/* A fresh temporary under tmp/, locked while written (dimg/fileio.h), mode
 * 0644 like the contents it becomes. */
int dimg_cas_tmp_create(const struct dimg_cas *c, int *fd, char **name)
{
	int r = dimg_temp_create(c->tmpfd, "", 0, name, fd);
	if (r == 0)
		(void)fchmod(*fd, 0644);
	return r;
}

int dimg_cas_tmp_install(const struct dimg_cas *c, const char *name, const uint8_t sha256[32],
                         int keep_existing)
{
	char blob[DIMG_CAS_NAME_MAX];
	dimg_cas_blob_name(blob, sha256);
	blob[9] = '\0'; /* "sha256/ab" */
	int r = mkdirat_ok(c->rootfd, blob);
	blob[9] = '/';
	if (r < 0)
		return r;
	r = keep_existing ? renameat2(c->tmpfd, name, c->rootfd, blob, RENAME_NOREPLACE)
	                  : renameat(c->tmpfd, name, c->rootfd, blob);
	return r < 0 ? -errno : 0;
}

void dimg_cas_tmp_discard(const struct dimg_cas *c, const char *name)
{
	(void)unlinkat(c->tmpfd, name, 0);
}

/* ---- scan ---- */

/* A directory stream on name under dirfd; NULL with errno set. */
static DIR *cas_opendir(int dirfd, const char *name)
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

/* sha256/<sub>/<name>: a blob when name is 64 hex starting with sub. */
static int cas_scan_sub(int shafd, const char *sub, dimg_cas_visit_fn visit, dimg_cas_odd_fn odd,
                        void *ctx)
{
	char name[DIMG_CAS_NAME_MAX];
	DIR *d = cas_opendir(shafd, sub);
	int r = 0;
	if (!d)
		return -errno;
	for (struct dirent *de; r == 0 && (de = readdir(d)) != NULL;) {
		uint8_t sha[32];
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (strncmp(de->d_name, sub, 2) == 0 &&
		    oci_hex_decode(sha, 32, de->d_name, strlen(de->d_name)) == 0 &&
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode)) {
			r = visit ? visit(ctx, sha, &st) : 0;
		} else if (odd) {
			snprintf(name, sizeof(name), "sha256/%s/%.64s", sub, de->d_name);
			odd(ctx, name);
		}
	}
	closedir(d);
	return r;
}

int dimg_cas_scan(const struct dimg_cas *c, dimg_cas_visit_fn visit, dimg_cas_odd_fn odd, void *ctx)
{
	uint8_t byte;
	DIR *d = cas_opendir(c->rootfd, "sha256");
	int r = 0;
	if (!d)
		return -errno;
	for (struct dirent *de; r == 0 && (de = readdir(d)) != NULL;) {
		char name[DIMG_CAS_NAME_MAX];
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* sha256/<the first byte of its blobs' digests, in hex> */
		if (oci_hex_decode(&byte, 1, de->d_name, strlen(de->d_name)) == 0) {
			r = cas_scan_sub(dirfd(d), de->d_name, visit, odd, ctx);
		} else if (odd) {
			snprintf(name, sizeof(name), "sha256/%.64s", de->d_name);
			odd(ctx, name);
		}
	}
	closedir(d);
	return r;
}

/* ---- writer ---- */

struct dimg_cas_writer {
	struct dimg_cas *c;
	struct dimg_sha256 *h;
	int fd;
	int holes;     /* the file ends in a hole: extend with ftruncate */
	uint64_t size; /* bytes of content so far */
	char *tmpname; /* under DIR/tmp */
};

int dimg_cas_writer_new(struct dimg_cas_writer **out, struct dimg_cas *c)
{
	struct dimg_cas_writer *w = calloc(1, sizeof(*w));
	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->c = c;
	w->fd = -1;
	int r = dimg_sha256_new(&w->h);
	if (r < 0) {
		free(w);
		return r;
	}
	*out = w;
	return 0;
}

void dimg_cas_writer_free(struct dimg_cas_writer *w)
{
	if (!w)
		return;
	dimg_cas_writer_abort(w);
	dimg_sha256_free(w->h);
	free(w);
}

const char *dimg_cas_writer_dir(const struct dimg_cas_writer *w)
{
	return w->c->dir;
}

void dimg_cas_writer_abort(struct dimg_cas_writer *w)
{
	if (w->fd < 0)
		return;
	dimg_cas_tmp_discard(w->c, w->tmpname);
	close(w->fd);
	w->fd = -1;
	free(w->tmpname);
	w->tmpname = NULL;
}

int dimg_cas_writer_begin(struct dimg_cas_writer *w)
{
	dimg_cas_writer_abort(w);
	int r = dimg_cas_tmp_create(w->c, &w->fd, &w->tmpname);
	if (r < 0)
		return r;
	w->size = 0;
	w->holes = 0;
	/* Resets a hash left half-done by an aborted file. */
	uint8_t junk[32];
	dimg_sha256_final(w->h, junk);
	return 0;
}

int dimg_cas_writer_write(struct dimg_cas_writer *w, const void *p, size_t n)
{
	const uint8_t *b = p;
	dimg_sha256_update(w->h, p, n);
	w->size += n;
	w->holes = 0;
	while (n > 0) {
		ssize_t k = write(w->fd, b, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

int dimg_cas_writer_zeros(struct dimg_cas_writer *w, uint64_t n)
{
	static const uint8_t zero[65536];
	if (n > INT64_MAX - w->size)
		return -EOVERFLOW;
	for (uint64_t left = n; left > 0;) {
		size_t k = left < sizeof(zero) ? (size_t)left : sizeof(zero);
		dimg_sha256_update(w->h, zero, k);
		left -= k;
	}
	if (n && lseek(w->fd, (off_t)n, SEEK_CUR) < 0)
		return -errno;
	w->size += n;
	w->holes = n > 0;
	return 0;
}

/* The content is checked by close (a network file system reports write
 * errors there: there is no fsync, it is a cache), but the lock must cover
 * the temporary until it is renamed: a dup keeps the lock, the original's
 * close reports the errors. */
int dimg_cas_writer_commit(struct dimg_cas_writer *w, uint8_t sha256[32], uint64_t *size)
{
	int r = 0, lock = -1;
	if (w->fd < 0)
		return -EINVAL;
	dimg_sha256_final(w->h, sha256);
	*size = w->size;
	if (w->holes && ftruncate(w->fd, (off_t)w->size) < 0)
		r = -errno;
	if (r == 0 && (lock = fcntl(w->fd, F_DUPFD_CLOEXEC, 0)) < 0)
		r = -errno;
	if (r == 0) {
		int fd = w->fd;
		w->fd = lock;
		if (close(fd) < 0)
			r = -errno;
	}
	if (r == 0)
		r = dimg_cas_tmp_install(w->c, w->tmpname, sha256, 0);
	if (r < 0) {
		dimg_cas_writer_abort(w);
		return r;
	}
	close(w->fd);
	w->fd = -1;
	free(w->tmpname);
	w->tmpname = NULL;
	return 0;
}

/* ---- dimg_files over the store ---- */

struct cas_files {
	const struct dimg_cas *c;
	const struct dimg_tree *t;
};

static int cas_files_open_entry(void *ctx, const struct dimg_entry *e, int *out_fd)
{
	const struct cas_files *cf = ctx;
	*out_fd = -1;
	/* The path is what callers are sure of (patch sources arrive as a path
	 * alone); the content comes from this image's own entry. */
	e = dimg_tree_find(cf->t, e->path);
	if (!e)
		return -ENOENT;
	if (e->type == DIMG_TYPE_HARDLINK) {
		e = e->link ? dimg_tree_find(cf->t, e->link) : NULL;
		if (!e)
			return -ENOENT;
	}
	if (e->type != DIMG_TYPE_REG)
		return -EINVAL;
	return dimg_cas_open_blob(cf->c, e->sha256, out_fd);
}

int dimg_cas_files_open(struct dimg_files *out, const struct dimg_cas *c, const struct dimg_tree *t)
{
	memset(out, 0, sizeof(*out));
	struct cas_files *cf = malloc(sizeof(*cf));
	if (!cf)
		return -ENOMEM;
	cf->c = c;
	cf->t = t;
	out->open = cas_files_open_entry;
	out->ctx = cf;
	return 0;
}

void dimg_cas_files_close(struct dimg_files *f)
{
	if (!f)
		return;
	free(f->ctx);
	f->ctx = NULL;
	f->open = NULL;
}
