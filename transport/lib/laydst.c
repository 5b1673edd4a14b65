/* Writing image layouts: everything goes to a staging directory next to
 * the destination (locked while in use, so that a later run removes what
 * a killed one left); commit merges it into an existing layout, renames
 * it into place, or writes it as a tar renamed into place. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "layout.h"
#include "ociwrite.h"

#define LAYDST_BUF   (256u << 10)
#define LAYDST_STAGE ".di3fs-stage-"

static int laydst_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (flag == FTW_DP ? rmdir(p) : unlink(p)) < 0 && errno != ENOENT ? -1 : 0;
}

/* Staging directories of runs that died (nobody holds their lock) in dir,
 * those whose names start with prefix. */
static void laydst_sweep(const char *dir, const char *prefix)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	size_t pl = strlen(prefix);
	while (dp && (de = readdir(dp)) != NULL) {
		char *p;
		if (strncmp(de->d_name, prefix, pl) != 0 ||
		    asprintf(&p, "%s/%s", dir, de->d_name) < 0)
			continue;
		int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
			lay_rmtree(p);
		if (fd >= 0)
			close(fd);
		free(p);
	}
	if (dp)
		closedir(dp);
}

/* The staging directory: inside an existing layout, else beside the
 * destination, named after it. */
static int laydst_stage(struct laydst *d, struct dimg_err *err)
{
	char *dcopy = strdup(d->path), *bcopy = strdup(d->path), *prefix = NULL;
	int r = dcopy && bcopy ? 0 : -ENOMEM;
	const char *dir = d->dirfd >= 0 ? d->path : dirname(dcopy);
	if (r == 0 && asprintf(&prefix, "%s%s%s", d->dirfd >= 0 ? "" : ".",
	                       d->dirfd >= 0 ? "" : basename(bcopy), LAYDST_STAGE) < 0)
		prefix = NULL;
	if (r == 0 && (!prefix || asprintf(&d->stage, "%s/%sXXXXXX", dir, prefix) < 0))
		r = -ENOMEM;
	if (r == 0) {
		laydst_sweep(dir, prefix);
		if (!mkdtemp(d->stage))
			r = dimg_err_set(err, -errno, dir, "making a staging directory");
	}
	/* mkdtemp's 0700 would become the new layout's mode */
	if (r == 0 && ((d->stagefd = open(d->stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	               flock(d->stagefd, LOCK_EX) < 0 || fchmod(d->stagefd, 0755) < 0))
		r = dimg_err_set(err, -errno, d->stage, NULL);
	if (r == 0 && (mkdirat(d->stagefd, "blobs", 0755) < 0 ||
	               mkdirat(d->stagefd, "blobs/sha256", 0755) < 0))
		r = dimg_err_set(err, -errno, d->stage, NULL);
	free(dcopy);
	free(bcopy);
	free(prefix);
	return r;
}

/* An existing directory must be an image layout (or empty). */
static int laydst_existing(struct laydst *d, struct dimg_err *err)
{
	struct stat st;
	if (stat(d->path, &st) < 0)
		return errno == ENOENT ? 0 : dimg_err_set(err, -errno, d->path, NULL);
	if (!S_ISDIR(st.st_mode))
		return dimg_err_set(err, -ENOTDIR, d->path, "oci: writes a layout directory");
	d->dirfd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->dirfd < 0)
		return dimg_err_set(err, -errno, d->path, NULL);
	DIR *dp = fdopendir(dup(d->dirfd));
	struct dirent *de;
	int other = 0, layout = faccessat(d->dirfd, "index.json", F_OK, 0) == 0;
	while (dp && (de = readdir(dp)) != NULL)
		other |= strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		         strncmp(de->d_name, LAYDST_STAGE, strlen(LAYDST_STAGE));
	if (dp)
		closedir(dp);
	if (other && !layout)
		return dimg_err_set(err, -EEXIST, d->path,
		                    "a directory that is not an image layout");
	return 0;
}

int laydst_open(struct xport *x, enum laydst_mode mode, struct dimg_err *err)
{
	struct laydst *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	x->priv = d;
	d->mode = mode;
	d->path = x->name.where;
	d->dirfd = d->stagefd = -1;
	pthread_mutex_init(&d->mu, NULL);
	int r = mode == LAYDST_DIR ? laydst_existing(d, err) : 0;
	return r < 0 ? r : laydst_stage(d, err);
}

void laydst_close(struct laydst *d)
{
	if (!d)
		return;
	if (d->stage && !d->committed)
		lay_rmtree(d->stage);
	if (d->stagefd >= 0)
		close(d->stagefd);
	if (d->dirfd >= 0)
		close(d->dirfd);
	for (size_t i = 0; i < d->ne; i++) {
		json_object_put(d->e[i].desc);
		free(d->e[i].ref);
		free(d->e[i].layers);
	}
	for (size_t i = 0; i < d->nexcl; i++)
		free((char *)d->excl[i].media_type);
	free(d->excl);
	free(d->e);
	free(d->stage);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

int lay_write_file(int dirfd, const char *name, const void *p, size_t n)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int r = dimg_write_fd(&fd, p, n);
	if (r == 0 && fdatasync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

int lay_rmtree(const char *path)
{
	return nftw(path, laydst_rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
}

static int laydst_size_is(int dirfd, const char *name, uint64_t size)
{
	struct stat st;
	return dirfd >= 0 && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode) && (uint64_t)st.st_size == size;
}

int laydst_has_blob(struct xport *x, const struct oci_desc *desc, struct dimg_err *err)
{
	struct laydst *d = x->priv;
	char name[OCI_BLOB_PATH_LEN];
	(void)err;
	oci_blob_path(name, desc->digest);
	return laydst_size_is(d->stagefd, name, desc->size) ||
	       laydst_size_is(d->dirfd, name, desc->size);
}

/* src into fd, checked against desc as it comes. */
static int laydst_fill(int fd, const struct oci_desc *desc, xport_read_fn src, void *ctx,
                       struct dimg_err *err)
{
	struct xverify v;
	uint8_t *buf = malloc(LAYDST_BUF);
	int r = buf ? xverify_init(&v, desc) : -ENOMEM;
	if (r < 0) {
		free(buf);
		return r;
	}
	for (;;) {
		ssize_t n = src(ctx, buf, LAYDST_BUF);
		if (n <= 0) {
			r = n < 0 ? (int)n : xverify_final(&v, err);
			break;
		}
		if ((r = xverify_update(&v, buf, (size_t)n)) < 0) {
			r = xverify_final(&v, err);
			break;
		}
		if ((r = dimg_write_fd(&fd, buf, (size_t)n)) < 0)
			break;
	}
	xverify_free(&v);
	free(buf);
	return r;
}

int laydst_put_blob(struct xport *x, const struct oci_desc *desc, xport_read_fn src, void *ctx,
                    struct dimg_err *err)
{
	struct laydst *d = x->priv;
	char name[OCI_BLOB_PATH_LEN], tmp[OCI_BLOB_PATH_LEN + 32];
	oci_blob_path(name, desc->digest);
	snprintf(tmp, sizeof(tmp), "%s.tmp-%d", name, (int)gettid());
	int fd = openat(d->stagefd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return dimg_err_set(err, -errno, d->stage, "a blob's temporary file");
	int r = laydst_fill(fd, desc, src, ctx, err);
	if (r == 0 && fdatasync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(d->stagefd, tmp, d->stagefd, name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(d->stagefd, tmp, 0);
		char ds[OCI_DIGEST_LEN];
		oci_digest_str(ds, desc->digest);
		dimg_err_set(err, r, ds, "writing it into %s", d->path);
	}
	return r;
}

/* The config and layers of an image manifest, for docker save. */
static int laydst_image_parts(struct laydst_entry *e, const struct xport_manifest *m,
                              struct dimg_err *err)
{
	struct json_object *doc;
	struct oci_desc *v;
	size_t n;
	if (!oci_mt_is_manifest(m->media_type))
		return 0;
	int r = xman_children(m, &doc, &v, &n, err);
	if (r < 0)
		return r;
	e->layers = calloc(n, 32);
	if (e->layers) {
		memcpy(e->config, v[0].digest, 32);
		for (size_t i = 1; i < n; i++)
			memcpy(e->layers[e->nlayers++], v[i].digest, 32);
		e->is_image = 1;
	}
	free(v);
	json_object_put(doc);
	return e->layers ? 0 : -ENOMEM;
}

static int laydst_entry_new(struct laydst_entry *e, const struct xport_manifest *m, const char *ref,
                            struct dimg_err *err)
{
	memset(e, 0, sizeof(*e));
	e->desc = oci_desc_json(m->media_type, m->digest, m->len);
	if (!e->desc || (ref && !(e->ref = strdup(ref))))
		return -ENOMEM;
	if (ref) {
		struct json_object *a = json_object_new_object();
		if (!a || json_object_object_add(e->desc, "annotations", a) < 0 ||
		    json_object_object_add(a, OCI_ANNOT_REF_NAME, json_object_new_string(ref)) < 0)
			return -ENOMEM;
	}
	return laydst_image_parts(e, m, err);
}

int laydst_put_manifest_ref(struct xport *x, const struct xport_manifest *m, const char *ref,
                            struct dimg_err *err)
{
	struct laydst *d = x->priv;
	struct xmem mem = {m->raw, m->len, 0};
	struct oci_desc desc = {.size = m->len, .media_type = m->media_type};
	struct laydst_entry e;
	memcpy(desc.digest, m->digest, 32);
	int r =
	    laydst_has_blob(x, &desc, err) ? 0 : laydst_put_blob(x, &desc, xmem_read, &mem, err);
	if (r < 0 || (ref && !ref[0]))
		return r;
	r = laydst_entry_new(&e, m, ref ? ref : x->name.ref, err);
	pthread_mutex_lock(&d->mu);
	struct laydst_entry *v = r == 0 ? realloc(d->e, (d->ne + 1) * sizeof(*v)) : NULL;
	if (v) {
		d->e = v;
		d->e[d->ne++] = e;
	}
	pthread_mutex_unlock(&d->mu);
	if (!v) {
		json_object_put(e.desc);
		free(e.ref);
		free(e.layers);
	}
	return v ? 0 : r < 0 ? r : -ENOMEM;
}

int laydst_note_excluded(struct xport *x, const struct oci_desc *desc, struct dimg_err *err)
{
	struct laydst *d = x->priv;
	(void)err;
	pthread_mutex_lock(&d->mu);
	struct oci_desc *v = realloc(d->excl, (d->nexcl + 1) * sizeof(*v));
	if (v) {
		d->excl = v;
		v[d->nexcl] = *desc;
		v[d->nexcl].artifact_type = NULL;
		v[d->nexcl].media_type = desc->media_type ? strdup(desc->media_type) : NULL;
		d->nexcl++;
	}
	pthread_mutex_unlock(&d->mu);
	return v && (!desc->media_type || v[d->nexcl - 1].media_type) ? 0 : -ENOMEM;
}
