/* Committing a staged layout: index.json (merged with an existing one),
 * oci-layout, the list of a partial image's left-out blobs, docker save's
 * manifest.json; then merged, renamed or written as a tar into place. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "layout.h"
#include "ociwrite.h"

/* ---- docker save: manifest.json beside the OCI layout, as Docker 25 writes it ---- */

static struct json_object *dsave_blob_path(const uint8_t d[32])
{
	char p[OCI_BLOB_PATH_LEN];
	oci_blob_path(p, d);
	return json_object_new_string(p);
}

/* Adds v to o under k (o takes it): v, or NULL when either failed. */
static struct json_object *dsave_add(struct json_object *o, const char *k, struct json_object *v)
{
	if (v && json_object_object_add(o, k, v) == 0)
		return v;
	json_object_put(v);
	return NULL;
}

/* {"Config","RepoTags","Layers"}, as docker load reads it. */
static struct json_object *dsave_entry_json(const struct laydst_entry *e)
{
	struct json_object *o = json_object_new_object();
	struct json_object *tags = o ? dsave_add(o, "RepoTags", json_object_new_array()) : NULL;
	struct json_object *layers = tags ? dsave_add(o, "Layers", json_object_new_array()) : NULL;
	int bad = !layers || !dsave_add(o, "Config", dsave_blob_path(e->config));
	if (!bad && e->ref)
		bad = json_object_array_add(tags, json_object_new_string(e->ref)) < 0;
	for (size_t i = 0; !bad && i < e->nlayers; i++)
		bad = json_object_array_add(layers, dsave_blob_path(e->layers[i])) < 0;
	if (bad) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static int dsave_write_meta(int stagefd, const struct laydst *d, struct dimg_err *err)
{
	struct json_object *arr = json_object_new_array();
	struct dimg_buf b = {0};
	int r = arr ? 0 : -ENOMEM;
	for (size_t i = 0; r == 0 && i < d->ne; i++) {
		struct json_object *o;
		if (!d->e[i].is_image)
			continue;
		if (!(o = dsave_entry_json(&d->e[i])) || json_object_array_add(arr, o) < 0)
			r = -ENOMEM;
	}
	if (r == 0)
		r = oci_json_dump(arr, &b);
	if (r == 0)
		r = lay_write_file(stagefd, "manifest.json", b.data, b.len);
	json_object_put(arr);
	dimg_buf_free(&b);
	return r < 0 ? dimg_err_set(err, r, "manifest.json", "writing it") : 0;
}

/* Is existing entry e replaced by one of the new ones? */
static int lc_replaced(const struct laydst *d, struct json_object *e)
{
	const char *ref = oci_jannot(e, OCI_ANNOT_REF_NAME), *dg = oci_jstr(e, "digest");
	for (size_t i = 0; i < d->ne; i++) {
		const char *nd = oci_jstr(d->e[i].desc, "digest");
		if (ref ? d->e[i].ref && strcmp(ref, d->e[i].ref) == 0
		        : !d->e[i].ref && dg && nd && strcmp(dg, nd) == 0)
			return 1;
	}
	return 0;
}

/* The entries of an existing layout's index.json that stay. */
static int lc_keep_existing(const struct laydst *d, struct json_object *arr, struct dimg_err *err)
{
	uint8_t *raw = NULL;
	struct json_object *old = NULL, *list;
	size_t len = 0;
	int fd = d->dirfd >= 0 ? openat(d->dirfd, "index.json", O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0)
		return 0;
	struct stat st;
	int r = fstat(fd, &st) < 0 ? -errno : (uint64_t)st.st_size > OCI_JSON_MAX ? -EFBIG : 0;
	if (r == 0 && !(raw = malloc((size_t)st.st_size + 1)))
		r = -ENOMEM;
	if (r == 0 && pread(fd, raw, (size_t)st.st_size, 0) != st.st_size)
		r = -EIO;
	len = (size_t)st.st_size;
	close(fd);
	if (r == 0)
		r = oci_json_parse(&old, raw, len);
	free(raw);
	if (r == 0 && !(list = oci_jarr(old, "manifests")))
		r = -EBADMSG;
	for (size_t i = 0; r == 0 && i < json_object_array_length(list); i++) {
		struct json_object *e = json_object_array_get_idx(list, i);
		if (!lc_replaced(d, e) && json_object_array_add(arr, json_object_get(e)) < 0)
			r = -ENOMEM;
	}
	json_object_put(old);
	return r < 0 ? dimg_err_set(err, r, d->path, "its index.json") : 0;
}

static int lc_index(const struct laydst *d, struct dimg_buf *out, struct dimg_err *err)
{
	struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
	int r = o && arr ? 0 : -ENOMEM;
	if (r == 0)
		r = lc_keep_existing(d, arr, err);
	for (size_t i = 0; r == 0 && i < d->ne; i++)
		if (json_object_array_add(arr, json_object_get(d->e[i].desc)) < 0)
			r = -ENOMEM;
	if (r == 0 &&
	    (json_object_object_add(o, "schemaVersion", json_object_new_int(2)) < 0 ||
	     json_object_object_add(o, "mediaType", json_object_new_string(OCI_MT_INDEX)) < 0 ||
	     json_object_object_add(o, "manifests", arr) < 0))
		r = -ENOMEM;
	else if (r == 0)
		arr = NULL;
	if (r == 0)
		r = oci_json_dump(o, out);
	json_object_put(arr);
	json_object_put(o);
	return r;
}

static int lc_desc_cmp(const void *a, const void *b)
{
	return memcmp(((const struct oci_desc *)a)->digest, ((const struct oci_desc *)b)->digest,
	              32);
}

/* {"excluded":[descriptor...]} by digest. */
static int lc_excluded(struct laydst *d, struct dimg_buf *out)
{
	struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
	int r = o && arr && json_object_object_add(o, "excluded", arr) == 0 ? 0 : -ENOMEM;
	if (r < 0)
		json_object_put(arr);
	qsort(d->excl, d->nexcl, sizeof(*d->excl), lc_desc_cmp);
	for (size_t i = 0; r == 0 && i < d->nexcl; i++) {
		const struct oci_desc *x = &d->excl[i];
		struct json_object *j =
		    oci_desc_json(x->media_type ? x->media_type : "", x->digest, x->size);
		if (!j || json_object_array_add(arr, j) < 0)
			r = -ENOMEM;
	}
	if (r == 0)
		r = oci_json_dump(o, out);
	json_object_put(o);
	return r;
}

static int lc_meta(struct laydst *d, struct dimg_err *err)
{
	struct dimg_buf b = {0};
	int r = lc_index(d, &b, err);
	if (r == 0)
		r = lay_write_file(d->stagefd, "index.json", b.data, b.len);
	if (r == 0)
		r = lay_write_file(d->stagefd, "oci-layout", OCI_LAYOUT_JSON,
		                   strlen(OCI_LAYOUT_JSON));
	if (r == 0 && d->nexcl) {
		b.len = 0;
		if ((r = lc_excluded(d, &b)) == 0)
			r = lay_write_file(d->stagefd, LAY_EXCLUDED_JSON, b.data, b.len);
	}
	dimg_buf_free(&b);
	if (r < 0)
		return dimg_err_set(err, r, d->stage, "writing index.json");
	return d->mode == LAYDST_DOCKER_TAR ? dsave_write_meta(d->stagefd, d, err) : 0;
}

/* Staged blobs into the existing layout, then index.json over the old. */
static int lc_merge(struct laydst *d, struct dimg_err *err)
{
	DIR *dp;
	struct dirent *de;
	int r = 0, fd = openat(d->stagefd, "blobs/sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if ((mkdirat(d->dirfd, "blobs", 0755) < 0 && errno != EEXIST) ||
	    (mkdirat(d->dirfd, "blobs/sha256", 0755) < 0 && errno != EEXIST))
		r = -errno;
	int to = r == 0 ? openat(d->dirfd, "blobs/sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (r == 0 && (fd < 0 || to < 0))
		r = -errno;
	dp = r == 0 ? fdopendir(fd) : NULL;
	if (dp)
		fd = -1;
	while (dp && r == 0 && (de = readdir(dp)) != NULL)
		if (de->d_name[0] != '.' && renameat(dirfd(dp), de->d_name, to, de->d_name) < 0)
			r = -errno;
	if (r == 0 &&
	    (fsync(to) < 0 || renameat(d->stagefd, "index.json", d->dirfd, "index.json") < 0))
		r = -errno;
	if (r == 0 && faccessat(d->dirfd, "oci-layout", F_OK, 0) < 0 &&
	    renameat(d->stagefd, "oci-layout", d->dirfd, "oci-layout") < 0)
		r = -errno;
	if (dp)
		closedir(dp);
	if (fd >= 0)
		close(fd);
	if (to >= 0)
		close(to);
	return r < 0 ? dimg_err_set(err, r, d->path, "moving the new blobs in") : 0;
}

/* The archive is written inside the staging directory (a killed run's is
 * swept with it), then renamed over the destination. */
static int lc_tar(struct laydst *d, struct dimg_err *err)
{
	static const char name[] = ".archive.tar";
	int fd = openat(d->stagefd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return dimg_err_set(err, -errno, d->stage, NULL);
	int r = laytar_write(d->stagefd, fd, d, err);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(d->stagefd, name, AT_FDCWD, d->path) < 0)
		r = -errno;
	return r < 0 ? dimg_err_set(err, r, d->path, NULL) : 0;
}

int laydst_commit(struct xport *x, struct dimg_err *err)
{
	struct laydst *d = x->priv;
	if (d->nexcl && d->dirfd >= 0)
		return dimg_err_set(err, -ENOTSUP, d->path,
		                    "a partial image goes into a new layout or an archive");
	int r = lc_meta(d, err);
	if (r == 0 && d->mode != LAYDST_DIR)
		r = lc_tar(d, err);
	else if (r == 0 && d->dirfd >= 0)
		r = lc_merge(d, err);
	else if (r == 0 && rename(d->stage, d->path) < 0)
		r = dimg_err_set(err, -errno, d->path, NULL);
	if (r < 0)
		return r;
	if (d->mode != LAYDST_DIR || d->dirfd >= 0)
		lay_rmtree(d->stage);
	d->committed = 1;
	return 0;
}
