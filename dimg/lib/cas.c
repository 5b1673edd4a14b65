/* The image content store: regular files' contents named by SHA-256 under
 * DIR/sha256/<2 hex>/<64 hex>, written under DIR/tmp/ and renamed (no fsync:
 * it is a cache), so equal contents are stored once. The layout is public
 * (dimg/cas.h): the snapshotter's cache of rebuilt files is such a store. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cas-internal.h"
#include "dimg/cas.h"
#include "dimg/hash.h"
#include "dimg/write.h"

struct dimg_cas {
	int rootfd;
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

static int cas_private_dir(char **out)
{
	const char *base = getenv("TMPDIR");
	if (!base || base[0] != '/')
		base = "/var/tmp";
	size_t n = strlen(base) + sizeof("/di3fs-cas-XXXXXX");
	char *p = malloc(n);
	if (!p)
		return -ENOMEM;
	snprintf(p, n, "%s/di3fs-cas-XXXXXX", base);
	if (!mkdtemp(p)) {
		int r = -errno;
		free(p);
		return r;
	}
	*out = p;
	return 0;
}

int dimg_cas_open(struct dimg_cas **out, const char *dir)
{
	int r;
	*out = NULL;
	struct dimg_cas *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->rootfd = -1;
	if (dir) {
		c->dir = strdup(dir);
		r = !c->dir ? -ENOMEM : (mkdir(dir, 0755) < 0 && errno != EEXIST) ? -errno : 0;
	} else {
		r = cas_private_dir(&c->dir);
		c->owned = r == 0;
	}
	if (r < 0)
		goto fail;
	c->rootfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->rootfd < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = mkdirat_ok(c->rootfd, "sha256")) < 0 || (r = mkdirat_ok(c->rootfd, "tmp")) < 0)
		goto fail;
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
	if (c->rootfd >= 0)
		close(c->rootfd);
	if (c->owned)
		(void)dimg_rmtree(c->dir);
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

/* ---- temp files ---- */

/* A fresh name under tmp/: O_EXCL makes it ours even with other writers. */
int dimg_cas_tmp_create(const struct dimg_cas *c, int *fd, char name[DIMG_CAS_NAME_MAX])
{
	*fd = -1;
	for (int tries = 0; tries < 16; tries++) {
		uint64_t rnd;
		if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return -EIO;
		snprintf(name, DIMG_CAS_NAME_MAX, "tmp/%016llx", (unsigned long long)rnd);
		*fd = openat(c->rootfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (*fd >= 0)
			return 0;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
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
	r = keep_existing ? renameat2(c->rootfd, name, c->rootfd, blob, RENAME_NOREPLACE)
	                  : renameat(c->rootfd, name, c->rootfd, blob);
	return r < 0 ? -errno : 0;
}

void dimg_cas_tmp_discard(const struct dimg_cas *c, const char *name)
{
	(void)unlinkat(c->rootfd, name, 0);
}

/* A directory stream on name under the store; NULL with errno set. */
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

int dimg_cas_tmp_clear(const struct dimg_cas *c)
{
	DIR *d = cas_opendir(c->rootfd, "tmp");
	int r = 0;
	if (!d)
		return -errno;
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    unlinkat(dirfd(d), de->d_name, 0) < 0 && r == 0)
			r = -errno;
	}
	closedir(d);
	return r;
}

/* ---- scan ---- */

/* A blob's file name under sha256/<sub>/ back to its digest. */
static int cas_parse_name(const char *sub, const char *name, uint8_t sha256[32])
{
	if (strlen(name) != 64 || strncmp(name, sub, 2) != 0)
		return -EINVAL;
	return dimg_unhex32(name, sha256);
}

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
		if (cas_parse_name(sub, de->d_name, sha) == 0 &&
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
	DIR *d = cas_opendir(c->rootfd, "sha256");
	int r = 0;
	if (!d)
		return -errno;
	for (struct dirent *de; r == 0 && (de = readdir(d)) != NULL;) {
		char name[DIMG_CAS_NAME_MAX];
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* sha256/<the first byte of its blobs' digests, in hex> */
		if (strlen(de->d_name) == 2 && strspn(de->d_name, "0123456789abcdef") == 2) {
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
	char tmpname[DIMG_CAS_NAME_MAX];
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

void dimg_cas_writer_abort(struct dimg_cas_writer *w)
{
	if (w->fd < 0)
		return;
	close(w->fd);
	dimg_cas_tmp_discard(w->c, w->tmpname);
	w->fd = -1;
}

int dimg_cas_writer_begin(struct dimg_cas_writer *w)
{
	dimg_cas_writer_abort(w);
	int r = dimg_cas_tmp_create(w->c, &w->fd, w->tmpname);
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

int dimg_cas_writer_commit(struct dimg_cas_writer *w, uint8_t sha256[32], uint64_t *size)
{
	int r = 0;
	if (w->fd < 0)
		return -EINVAL;
	dimg_sha256_final(w->h, sha256);
	if (w->holes && ftruncate(w->fd, (off_t)w->size) < 0)
		r = -errno;
	if (close(w->fd) < 0 && r == 0)
		r = -errno;
	w->fd = -1;
	if (r == 0)
		r = dimg_cas_tmp_install(w->c, w->tmpname, sha256, 0);
	if (r < 0)
		dimg_cas_tmp_discard(w->c, w->tmpname);
	*size = w->size;
	return r;
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
