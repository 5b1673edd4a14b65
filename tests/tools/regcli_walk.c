/* regcli's push and pull walks: an OCI image layout to a registry (only
 * the blobs it lacks) and back (blobs resumed from a .partial file). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "dimg/hash.h"
#include "regcli.h"

static void blob_file(char *out, size_t n, const char *layout, const uint8_t d[32])
{
	char rel[OCI_BLOB_PATH_LEN];

	oci_blob_path(rel, d);
	snprintf(out, n, "%s/%s", layout, rel);
}

static int read_small(const char *path, uint8_t **out, size_t *len)
{
	struct dimg_buf b = {0};
	int fd = open(path, O_RDONLY), rc;

	if (fd < 0)
		return -errno;
	for (;;) {
		uint8_t chunk[65536];
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n <= 0) {
			rc = n < 0 ? -errno : 0;
			break;
		}
		if (b.len + (size_t)n > OCI_JSON_MAX) {
			rc = -EFBIG;
			break;
		}
		if ((rc = dimg_buf_append(&b, chunk, (size_t)n)) < 0)
			break;
	}
	close(fd);
	if (rc < 0)
		dimg_buf_free(&b);
	*out = b.data;
	*len = b.len;
	return rc;
}

static ssize_t fd_read(void *ctx, void *p, size_t n)
{
	ssize_t k = read(*(int *)ctx, p, n);
	return k < 0 ? -errno : k;
}

struct counts {
	unsigned pushed, skipped;
};

static int push_blob(struct img_io *io, const char *layout, const struct oci_desc *d,
                     struct counts *c, struct dimg_err *err)
{
	char path[4096];
	int fd, rc = io->has_blob(io->ctx, d, err);

	if (rc != 0) {
		c->skipped += rc > 0;
		return rc < 0 ? rc : 0;
	}
	blob_file(path, sizeof(path), layout, d->digest);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return dimg_err_set(err, -errno, path, NULL);
	rc = io->put_blob(io->ctx, d, fd_read, &fd, err);
	close(fd);
	c->pushed += rc == 0;
	return rc;
}

static int push_desc(struct img_io *io, const char *layout, const struct oci_desc *d, int named,
                     struct counts *c, struct dimg_err *err);

/* An index's manifests, or a manifest's config and layers. */
static int push_children(struct img_io *io, const char *layout, struct json_object *o, int index,
                         struct counts *c, struct dimg_err *err)
{
	struct json_object *arr = oci_jarr(o, index ? "manifests" : "layers");
	size_t n = arr ? json_object_array_length(arr) : 0;
	struct oci_desc d;
	int rc = 0;

	if (!index && (rc = oci_desc_parse(&d, oci_jobj(o, "config"))) == 0)
		rc = push_blob(io, layout, &d, c, err);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = oci_desc_parse(&d, json_object_array_get_idx(arr, i));
		if (rc == 0)
			rc = index ? push_desc(io, layout, &d, 0, c, err)
			           : push_blob(io, layout, &d, c, err);
	}
	return rc == -EBADMSG ? dimg_err_set(err, rc, layout, "a bad descriptor") : rc;
}

static int push_desc(struct img_io *io, const char *layout, const struct oci_desc *d, int named,
                     struct counts *c, struct dimg_err *err)
{
	struct reg_manifest m = {0};
	struct json_object *o = NULL;
	char path[4096];
	int rc;

	blob_file(path, sizeof(path), layout, d->digest);
	rc = read_small(path, &m.raw, &m.len);
	if (rc == 0)
		rc = oci_json_parse(&o, m.raw, m.len);
	if (rc < 0) {
		reg_manifest_clear(&m);
		return dimg_err_set(err, rc, path, NULL);
	}
	memcpy(m.digest, d->digest, 32);
	snprintf(m.media_type, sizeof(m.media_type), "%s",
	         d->media_type ? d->media_type : oci_jstr(o, "mediaType"));
	rc = push_children(io, layout, o, oci_mt_is_index(m.media_type), c, err);
	if (rc == 0)
		rc = io->put_manifest(io->ctx, named, &m, err);
	json_object_put(o);
	reg_manifest_clear(&m);
	return rc;
}

int img_push(struct img_io *io, const char *layout, struct dimg_err *err)
{
	struct counts c = {0};
	struct json_object *o = NULL, *arr;
	struct oci_desc d;
	char path[4096];
	uint8_t *raw = NULL;
	size_t len = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/index.json", layout);
	rc = read_small(path, &raw, &len);
	if (rc == 0)
		rc = oci_json_parse(&o, raw, len);
	arr = oci_jarr(o, "manifests");
	if (rc == 0 && (!arr || json_object_array_length(arr) != 1))
		rc = -ENOTSUP; /* one image a layout here */
	if (rc == 0)
		rc = oci_desc_parse(&d, json_object_array_get_idx(arr, 0));
	if (rc < 0)
		rc = dimg_err_set(err, rc, path, "an index.json with one manifest was expected");
	if (rc == 0)
		rc = push_desc(io, layout, &d, 1, &c, err);
	if (rc == 0)
		rc = io->commit(io->ctx, err);
	if (rc == 0) {
		char ds[OCI_DIGEST_LEN];
		oci_digest_str(ds, d.digest);
		printf("pushed %u blobs, %u already there, manifest %s\n", c.pushed, c.skipped, ds);
	}
	json_object_put(o);
	free(raw);
	return rc;
}

static int write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644), rc;

	if (fd < 0)
		return -errno;
	rc = dimg_write_fd(&fd, p, n);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* Into PATH.partial (appended to, so a second run resumes), checked
 * whole, then renamed. */
static int pull_blob(struct img_io *io, const char *layout, const struct oci_desc *d,
                     struct dimg_err *err)
{
	char path[4096], part[4200];
	uint8_t got[32];
	struct stat st;
	uint64_t size = 0;
	int fd, rc;

	blob_file(path, sizeof(path), layout, d->digest);
	fd = open(path, O_RDONLY);
	if (fd >= 0) { /* pulled before: kept when it is still right */
		rc = dimg_sha256_fd(fd, got, &size);
		close(fd);
		if (rc == 0 && size == d->size && memcmp(got, d->digest, 32) == 0)
			return 0;
	}
	snprintf(part, sizeof(part), "%s.partial", path);
	fd = open(part, O_RDWR | O_CREAT | O_APPEND, 0644);
	if (fd < 0 || fstat(fd, &st) < 0)
		return dimg_err_set(err, -errno, part, NULL);
	if (st.st_size > 0)
		fprintf(stderr, "regcli: resuming %s at %jd\n", part, (intmax_t)st.st_size);
	rc = io->get_blob(io->ctx, d, (uint64_t)st.st_size, dimg_write_fd, &fd, err);
	if (rc == 0 && lseek(fd, 0, SEEK_SET) == 0)
		rc = dimg_sha256_fd(fd, got, &size);
	if (rc == 0 && (size != d->size || memcmp(got, d->digest, 32) != 0))
		rc = dimg_err_set(err, -EBADMSG, part, "the blob does not match its digest");
	close(fd);
	if (rc == -EBADMSG)
		unlink(part);
	if (rc == 0 && rename(part, path) < 0)
		rc = dimg_err_set(err, -errno, path, NULL);
	return rc;
}

static int pull_desc(struct img_io *io, const char *layout, const char *ref,
                     struct reg_manifest *top, struct dimg_err *err);

static int pull_children(struct img_io *io, const char *layout, const struct reg_manifest *m,
                         struct dimg_err *err)
{
	int index = oci_mt_is_index(m->media_type);
	struct json_object *o = NULL, *arr;
	struct oci_desc d;
	size_t n;
	int rc = oci_json_parse(&o, m->raw, m->len);

	arr = oci_jarr(o, index ? "manifests" : "layers");
	n = arr ? json_object_array_length(arr) : 0;
	if (rc == 0 && !index && (rc = oci_desc_parse(&d, oci_jobj(o, "config"))) == 0)
		rc = pull_blob(io, layout, &d, err);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char ds[OCI_DIGEST_LEN];
		rc = oci_desc_parse(&d, json_object_array_get_idx(arr, i));
		oci_digest_str(ds, d.digest);
		if (rc == 0)
			rc = index ? pull_desc(io, layout, ds, NULL, err)
			           : pull_blob(io, layout, &d, err);
	}
	json_object_put(o);
	return rc;
}

/* A manifest by ref (NULL: the name's own), its blobs, then itself. */
static int pull_desc(struct img_io *io, const char *layout, const char *ref,
                     struct reg_manifest *top, struct dimg_err *err)
{
	struct reg_manifest m = {0};
	char path[4096];
	int rc = io->get_manifest(io->ctx, ref, &m, err);

	if (rc == 0)
		rc = pull_children(io, layout, &m, err);
	blob_file(path, sizeof(path), layout, m.digest);
	if (rc == 0 && (rc = write_file(path, m.raw, m.len)) < 0)
		dimg_err_set(err, rc, path, NULL);
	if (rc == 0 && top)
		*top = m;
	else
		reg_manifest_clear(&m);
	return rc;
}

static int write_index(const char *layout, const struct reg_manifest *m, const char *tag)
{
	char path[4096], ds[OCI_DIGEST_LEN];
	struct json_object *idx = json_object_new_object(), *arr = json_object_new_array();
	struct json_object *d = oci_desc_json(m->media_type, m->digest, m->len), *ann;
	const char *text;
	int rc;

	oci_digest_str(ds, m->digest);
	ann = json_object_new_object();
	json_object_object_add(ann, OCI_ANNOT_REF_NAME, json_object_new_string(tag ? tag : ds));
	json_object_object_add(d, "annotations", ann);
	json_object_array_add(arr, d);
	json_object_object_add(idx, "schemaVersion", json_object_new_int(2));
	json_object_object_add(idx, "mediaType", json_object_new_string(OCI_MT_INDEX));
	json_object_object_add(idx, "manifests", arr);
	text = json_object_to_json_string_ext(idx, JSON_C_TO_STRING_PLAIN);
	snprintf(path, sizeof(path), "%s/index.json", layout);
	rc = write_file(path, text, strlen(text));
	snprintf(path, sizeof(path), "%s/oci-layout", layout);
	if (rc == 0)
		rc = write_file(path, OCI_LAYOUT_JSON, strlen(OCI_LAYOUT_JSON));
	json_object_put(idx);
	return rc;
}

int img_pull(struct img_io *io, const char *layout, const char *tag, struct dimg_err *err)
{
	struct reg_manifest m = {0};
	char dir[4096], ds[OCI_DIGEST_LEN];
	int rc = 0;

	snprintf(dir, sizeof(dir), "%s/blobs", layout);
	mkdir(layout, 0755);
	mkdir(dir, 0755);
	snprintf(dir, sizeof(dir), "%s/blobs/sha256", layout);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		rc = dimg_err_set(err, -errno, dir, NULL);
	if (rc == 0)
		rc = pull_desc(io, layout, NULL, &m, err);
	if (rc == 0 && (rc = write_index(layout, &m, tag)) < 0)
		dimg_err_set(err, rc, layout, "writing index.json");
	if (rc == 0) {
		oci_digest_str(ds, m.digest);
		printf("manifest %s %s %zu\n", ds, m.media_type, m.len);
	}
	reg_manifest_clear(&m);
	return rc;
}
