/* .cdimg writer: a .dimg (and the layer recipes) wrapped as an OCI
 * artifact in an OCI layout tar, every byte determined by the inputs. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdimg-internal.h"
#include "cdimg.h"
#include "dimg/hash.h"
#include "ociwrite.h"
#include "packer.h"

#define COPY_BUF (1u << 20)

struct dimg_head {
	uint8_t base[32], target[32];
	uint32_t version;
};

static int read_dimg_head(int fd, struct dimg_head *h)
{
	uint8_t b[DIMG_HEADER_SIZE];
	ssize_t n = pread(fd, b, sizeof(b), 0);
	if (n < 0)
		return -errno;
	if (n != (ssize_t)sizeof(b) || memcmp(b, cdimg_dimg_magic, 8) != 0)
		return -EBADMSG;
	h->version = cdimg_le32(b + 8);
	if (h->version != DIMG_FORMAT_VERSION)
		return -ENOTSUP;
	memcpy(h->base, b + 16, 32);
	memcpy(h->target, b + 48, 32);
	return 0;
}

static int annot(struct json_object *a, const char *k, const char *v)
{
	return json_object_object_add(a, k, json_object_new_string(v)) ? -ENOMEM : 0;
}

static int annot_hex(struct json_object *a, const char *k, const uint8_t id[32])
{
	char hex[65];
	dimg_hex32(id, hex);
	return annot(a, k, hex);
}

/* The manifest's own "mediaType", or the OCI one; malloc'd. */
static char *manifest_type(const struct cdimg_meta *m)
{
	struct json_object *o = NULL, *t;
	char *s = NULL;
	if (m->target_manifest_media_type)
		return strdup(m->target_manifest_media_type);
	if (oci_json_parse(&o, m->target_manifest, m->target_manifest_len) == 0 &&
	    json_object_object_get_ex(o, "mediaType", &t) &&
	    json_object_is_type(t, json_type_string))
		s = strdup(json_object_get_string(t));
	json_object_put(o);
	return s ? s : strdup(OCI_MT_MANIFEST);
}

struct wdocs {
	struct dimg_head head;
	char dimg_digest[OCI_DIGEST_LEN], cfg_digest[OCI_DIGEST_LEN], man_digest[OCI_DIGEST_LEN];
	char art_digest[OCI_DIGEST_LEN];
	char layers_digest[OCI_DIGEST_LEN];
	uint64_t dimg_size, layers_size;
	struct dimg_buf art, index;
};

static struct json_object *artifact_annotations(const struct cdimg_meta *m, const struct wdocs *d)
{
	struct json_object *a = json_object_new_object();
	char *mt = manifest_type(m);
	int r = (a && mt) ? 0 : -ENOMEM;
	if (r == 0)
		r = annot(a, CDIMG_ANNOT_VERSION, "1");
	if (r == 0)
		r = annot(a, CDIMG_ANNOT_BASE_CONFIG, m->base_config_digest);
	if (r == 0)
		r = annot_hex(a, CDIMG_ANNOT_BASE_TREE, d->head.base);
	if (r == 0)
		r = annot_hex(a, CDIMG_ANNOT_TARGET_TREE, d->head.target);
	if (r == 0)
		r = annot(a, CDIMG_ANNOT_TARGET_MANIFEST, d->man_digest);
	if (r == 0)
		r = annot(a, CDIMG_ANNOT_TARGET_MANIFEST_TYPE, mt);
	if (r == 0 && m->target_ref)
		r = annot(a, CDIMG_ANNOT_TARGET_REF, m->target_ref);
	if (r == 0 && m->target_ref)
		r = annot(a, OCI_ANNOT_REF_NAME, m->target_ref);
	free(mt);
	if (r < 0) {
		json_object_put(a);
		return NULL;
	}
	return a;
}

static int build_artifact(const struct cdimg_meta *m, struct wdocs *d)
{
	struct json_object *o = json_object_new_object(), *layers = json_object_new_array();
	struct json_object *an = artifact_annotations(m, d);
	int r = -ENOMEM;
	if (!o || !layers || !an)
		goto fail;
	/* the target manifest is a layer too: a registry copy keeps it */
	if (json_object_array_add(layers,
	                          oci_descriptor(DI3FS_MT_DIMG, d->dimg_digest, d->dimg_size)) ||
	    json_object_array_add(layers, oci_descriptor(DI3FS_MT_TARGET_MANIFEST, d->man_digest,
	                                                 m->target_manifest_len)) ||
	    (m->layers_path &&
	     json_object_array_add(
	         layers, oci_descriptor(DI3FS_MT_LAYERS, d->layers_digest, d->layers_size))) ||
	    json_object_object_add(o, "layers", layers))
		goto fail;
	layers = NULL;
	if (json_object_object_add(o, "annotations", an))
		goto fail;
	an = NULL;
	json_object_object_add(o, "schemaVersion", json_object_new_int(2));
	json_object_object_add(o, "mediaType", json_object_new_string(OCI_MT_MANIFEST));
	json_object_object_add(o, "artifactType", json_object_new_string(DI3FS_ARTIFACT_TYPE));
	json_object_object_add(
	    o, "config",
	    oci_descriptor(DI3FS_MT_TARGET_CONFIG, d->cfg_digest, m->target_config_len));
	if ((r = oci_json_dump(o, &d->art)) == 0)
		r = oci_digest_buf(d->art_digest, d->art.data, d->art.len);
fail:
	json_object_put(an);
	json_object_put(layers);
	json_object_put(o);
	return r;
}

static int build_index(const struct cdimg_meta *m, struct wdocs *d)
{
	struct json_object *o = json_object_new_object(), *ms = json_object_new_array();
	struct json_object *desc = oci_descriptor(OCI_MT_MANIFEST, d->art_digest, d->art.len);
	struct json_object *an = NULL;
	int r = -ENOMEM;
	if (!o || !ms || !desc)
		goto fail;
	json_object_object_add(desc, "artifactType", json_object_new_string(DI3FS_ARTIFACT_TYPE));
	if (m->target_ref) {
		if (!(an = json_object_new_object()) ||
		    annot(an, OCI_ANNOT_REF_NAME, m->target_ref) ||
		    json_object_object_add(desc, "annotations", an))
			goto fail;
		an = NULL;
	}
	if (json_object_array_add(ms, desc))
		goto fail;
	desc = NULL;
	if (json_object_object_add(o, "manifests", ms))
		goto fail;
	ms = NULL;
	json_object_object_add(o, "schemaVersion", json_object_new_int(2));
	json_object_object_add(o, "mediaType", json_object_new_string(OCI_MT_INDEX));
	r = oci_json_dump(o, &d->index);
fail:
	json_object_put(an);
	json_object_put(desc);
	json_object_put(ms);
	json_object_put(o);
	return r;
}

/* Copies a blob file (the .dimg, the recipes) into the archive after its
 * header, hashing it again: the bytes written must be the bytes named. */
static int copy_blob(struct ocitar *t, int fd, const char *digest, uint64_t size)
{
	uint8_t hdr[OCITAR_BLOCK], sha[32];
	char name[100], got[OCI_DIGEST_LEN];
	struct dimg_sha256 *h = NULL;
	uint8_t *buf = malloc(COPY_BUF);
	uint64_t left = size, off = 0;
	int r = buf ? dimg_sha256_new(&h) : -ENOMEM;
	snprintf(name, sizeof(name), "blobs/sha256/%s", digest + 7);
	if (r < 0 || (r = ocitar_header_encode(hdr, name, '0', size)) < 0 ||
	    (r = ocitar_write(t, hdr, sizeof(hdr))) < 0)
		goto out;
	while (left && r == 0) {
		ssize_t n = pread(fd, buf, left < COPY_BUF ? left : COPY_BUF, (off_t)off);
		if (n <= 0) {
			r = n < 0 ? -errno : -ESTALE;
			break;
		}
		dimg_sha256_update(h, buf, (size_t)n);
		r = ocitar_write(t, buf, (size_t)n);
		left -= (uint64_t)n;
		off += (uint64_t)n;
	}
	if (r == 0) {
		dimg_sha256_final(h, sha);
		oci_digest_str(got, sha);
		r = strcmp(got, digest) ? -ESTALE : ocitar_pad(t);
	}
out:
	dimg_sha256_free(h);
	free(buf);
	return r;
}

/* Fixed order: oci-layout, index.json, blobs/, blobs/sha256/, the artifact
 * manifest, the target manifest, the target config, the .dimg, the layer
 * recipes. Metadata first lets a streaming reader decide before the big
 * blob arrives. */
static int write_tar(int out, int dfd, int lfd, const struct cdimg_meta *m, const struct wdocs *d,
                     uint64_t *size)
{
	struct ocitar t = {out, 0};
	int r;
	if ((r = ocitar_file(&t, "oci-layout", OCI_LAYOUT_JSON, strlen(OCI_LAYOUT_JSON))) < 0 ||
	    (r = ocitar_file(&t, "index.json", d->index.data, d->index.len)) < 0 ||
	    (r = ocitar_dir(&t, "blobs/")) < 0 || (r = ocitar_dir(&t, "blobs/sha256/")) < 0 ||
	    (r = ocitar_blob(&t, d->art_digest, d->art.data, d->art.len)) < 0 ||
	    (r = ocitar_blob(&t, d->man_digest, m->target_manifest, m->target_manifest_len)) < 0)
		return r;
	if (strcmp(d->cfg_digest, d->man_digest) != 0 &&
	    (r = ocitar_blob(&t, d->cfg_digest, m->target_config, m->target_config_len)) < 0)
		return r;
	if ((r = copy_blob(&t, dfd, d->dimg_digest, d->dimg_size)) < 0 ||
	    (lfd >= 0 && (r = copy_blob(&t, lfd, d->layers_digest, d->layers_size)) < 0) ||
	    (r = ocitar_finish(&t)) < 0)
		return r;
	*size = t.off;
	return 0;
}

static int prepare_docs(int dfd, int lfd, const struct cdimg_meta *m, struct wdocs *d)
{
	uint8_t sha[32];
	int r;
	if (lfd >= 0) {
		if ((r = dimg_sha256_fd(lfd, sha, &d->layers_size)) < 0)
			return r;
		oci_digest_str(d->layers_digest, sha);
	}
	if (!m->base_config_digest || !oci_digest_valid(m->base_config_digest) ||
	    !m->target_config || !m->target_manifest)
		return -EINVAL;
	if ((r = read_dimg_head(dfd, &d->head)) < 0 ||
	    (r = dimg_sha256_fd(dfd, sha, &d->dimg_size)) < 0)
		return r;
	oci_digest_str(d->dimg_digest, sha);
	if ((r = oci_digest_buf(d->cfg_digest, m->target_config, m->target_config_len)) < 0 ||
	    (r = oci_digest_buf(d->man_digest, m->target_manifest, m->target_manifest_len)) < 0 ||
	    (r = build_artifact(m, d)) < 0)
		return r;
	return build_index(m, d);
}

struct tar_job {
	int dfd, lfd;
	const struct cdimg_meta *m;
	const struct wdocs *d;
	uint64_t size;
};

static int tar_fill(int fd, void *ctx)
{
	struct tar_job *j = ctx;
	return write_tar(fd, j->dfd, j->lfd, j->m, j->d, &j->size);
}

int cdimg_write(const char *out_path, const char *dimg_path, const struct cdimg_meta *m,
                unsigned flags, uint64_t *out_size, struct dimg_err *err)
{
	struct wdocs d;
	struct tar_job j = {
	    .dfd = open(dimg_path, O_RDONLY | O_CLOEXEC), .lfd = -1, .m = m, .d = &d};
	int r = 0;
	memset(&d, 0, sizeof(d));
	if (j.dfd < 0)
		return dimg_err_set(err, -errno, dimg_path, NULL);
	if (m->layers_path && (j.lfd = open(m->layers_path, O_RDONLY | O_CLOEXEC)) < 0)
		r = dimg_err_set(err, -errno, m->layers_path, NULL);
	if (r == 0 && (r = prepare_docs(j.dfd, j.lfd, m, &d)) < 0)
		dimg_err_set(err, r, dimg_path, "wrapping it: %s", dimg_strerror(r));
	if (r == 0)
		r = packer_write_atomic(out_path, flags, tar_fill, &j, err);
	if (r == 0 && out_size)
		*out_size = j.size;
	close(j.dfd);
	if (j.lfd >= 0)
		close(j.lfd);
	dimg_buf_free(&d.art);
	dimg_buf_free(&d.index);
	return r;
}

/* A temporary file next to out, closed; *path gets its name. */
static int reserve(const char *out, char **path, struct dimg_err *err)
{
	int fd = packer_tmpfile(out, path);
	if (fd < 0)
		return dimg_err_set(err, fd, out, NULL);
	close(fd);
	return 0;
}

static void drop(char *path)
{
	if (path)
		unlink(path);
	free(path);
}

/* A part failed: what names the output, not its temporary file. */
static int part_failed(struct dimg_err *err, int r, const struct dimg_err *part, const char *tmp,
                       const char *out)
{
	const char *what = part->what[0] && strcmp(part->what, tmp) ? part->what : out;
	if (!part->what[0] && part->why[0]) /* the part named a file of an input */
		what = NULL;
	return dimg_err_set(err, r, what, part->why[0] ? "%s" : NULL, part->why);
}

int cdimg_write_parts(const char *out, const struct cdimg_parts *p, const struct cdimg_meta *m,
                      unsigned flags, uint64_t *size, struct dimg_err *err)
{
	struct cdimg_meta wm = *m;
	struct dimg_err part = {0};
	char *dtmp = NULL, *ltmp = NULL;
	int r = reserve(out, &dtmp, err);
	if (r == 0 && (r = p->dimg(p->ctx, dtmp, &part)) < 0)
		part_failed(err, r, &part, dtmp, out);
	if (r == 0 && p->layers && (r = reserve(out, &ltmp, err)) == 0) {
		int fd = open(ltmp, O_WRONLY | O_TRUNC | O_CLOEXEC);
		r = fd < 0 ? dimg_err_set(err, -errno, out, NULL) : p->layers(p->ctx, fd, err);
		if (fd >= 0 && close(fd) < 0 && r >= 0)
			r = dimg_err_set(err, -errno, out, NULL);
	}
	if (r == 1) { /* no layer recipes after all */
		drop(ltmp);
		ltmp = NULL;
		r = 0;
	}
	wm.layers_path = ltmp;
	if (r == 0)
		r = cdimg_write(out, dtmp, &wm, flags, size, err);
	drop(ltmp);
	drop(dtmp);
	return r;
}
