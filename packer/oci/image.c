/* Runnable OCI images in a layout tar: one squashed layer streamed from a
 * tree, or given layers with the original config checked against its
 * diff_ids; manifests, index and layout written around them. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci-internal.h"
#include "packer.h"

static uint64_t tree_bytes(const struct dimg_tree *t)
{
	uint64_t n = 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].type == DIMG_TYPE_REG)
			n += t->v[i].size;
	return n;
}

struct tree_body {
	struct layer_job *j;
	size_t *failed;
};

static int tree_body_run(void *ctx, struct layer_out *L)
{
	struct tree_body *b = ctx;
	return oci_layer_write(b->j, L, b->failed);
}

/* The squashed layer, first in the archive. */
static int image_layer(struct ocitar *tar, struct layer_job *j, struct oci_image_result *res,
                       size_t *failed)
{
	struct tree_body b = {j, failed};
	struct layer_done d;
	int r = oci_blob_layer(tar, j->o, tree_body_run, &b, &d);
	if (r < 0)
		return r;
	memcpy(res->diff_id, d.diff_id, OCI_DIGEST_LEN);
	memcpy(res->layer_digest, d.digest, OCI_DIGEST_LEN);
	res->layer_size = d.size;
	res->layer_raw_size = d.raw_size;
	return 0;
}

/* Adds the platform of config cfg (canonical JSON) to descriptor d. */
static int add_platform(struct json_object *d, const struct dimg_buf *cfg)
{
	static const char *keys[] = {"architecture", "os", "variant"};
	struct json_object *c = NULL, *v, *p;
	int r = oci_json_parse(&c, cfg->data, cfg->len);
	if (r < 0)
		return r;
	if (!(p = json_object_new_object())) {
		json_object_put(c);
		return -ENOMEM;
	}
	for (size_t i = 0; i < 3; i++)
		if (json_object_object_get_ex(c, keys[i], &v) &&
		    json_object_is_type(v, json_type_string))
			json_object_object_add(p, keys[i], json_object_get(v));
	json_object_put(c);
	if (json_object_object_length(p) < 2) {
		json_object_put(p);
		return 0;
	}
	return json_object_object_add(d, "platform", p) ? -ENOMEM : 0;
}

/* Serialises o canonically as file `name` (or as a blob when name is NULL,
 * giving its digest); takes o. */
static int put_json(struct ocitar *tar, const char *name, struct json_object *o,
                    char digest[OCI_DIGEST_LEN], uint64_t *size)
{
	struct dimg_buf b = {0};
	int r = o ? oci_json_dump(o, &b) : -ENOMEM;
	if (r == 0 && !name && (r = oci_digest_buf(digest, b.data, b.len)) == 0)
		r = ocitar_blob(tar, digest, b.data, b.len);
	else if (r == 0 && name)
		r = ocitar_file(tar, name, b.data, b.len);
	if (size)
		*size = b.len;
	dimg_buf_free(&b);
	json_object_put(o);
	return r;
}

static struct json_object *image_manifest(const struct oci_image_result *res, uint64_t cfg_size,
                                          int gzip)
{
	struct json_object *m = json_object_new_object(), *layers = json_object_new_array();
	if (!m || !layers ||
	    json_object_array_add(layers, oci_descriptor(gzip ? OCI_MT_LAYER_GZIP : OCI_MT_LAYER,
	                                                 res->layer_digest, res->layer_size)) ||
	    json_object_object_add(m, "layers", layers)) {
		json_object_put(layers);
		json_object_put(m);
		return NULL;
	}
	json_object_object_add(m, "schemaVersion", json_object_new_int(2));
	json_object_object_add(m, "mediaType", json_object_new_string(OCI_MT_MANIFEST));
	json_object_object_add(m, "config",
	                       oci_descriptor(OCI_MT_CONFIG, res->config_digest, cfg_size));
	return m;
}

static struct json_object *image_index(const struct oci_image_result *res, uint64_t man_size,
                                       const struct dimg_buf *cfg, const char *ref)
{
	struct json_object *x = json_object_new_object(), *ms = json_object_new_array();
	struct json_object *d = oci_descriptor(OCI_MT_MANIFEST, res->manifest_digest, man_size);
	int bad = !x || !ms || !d || add_platform(d, cfg) < 0;
	if (!bad && ref) {
		struct json_object *an = json_object_new_object();
		bad = !an || json_object_object_add(d, "annotations", an) ||
		      json_object_object_add(an, OCI_ANNOT_CONTAINERD_NAME,
		                             json_object_new_string(ref)) ||
		      json_object_object_add(an, OCI_ANNOT_REF_NAME, json_object_new_string(ref));
	}
	if (bad || json_object_array_add(ms, d)) {
		json_object_put(d);
		json_object_put(ms);
		json_object_put(x);
		return NULL;
	}
	json_object_object_add(x, "schemaVersion", json_object_new_int(2));
	json_object_object_add(x, "mediaType", json_object_new_string(OCI_MT_INDEX));
	json_object_object_add(x, "manifests", ms);
	return x;
}

static int image_write_fd(int fd, struct layer_job *j, const uint8_t *cfg, size_t cfg_len,
                          struct oci_image_result *res, size_t *failed)
{
	struct ocitar tar = {fd, 0};
	struct dimg_buf c = {0};
	uint64_t man_size = 0;
	char unused[OCI_DIGEST_LEN];
	int r;
	if ((r = ocitar_dir(&tar, "blobs/")) < 0 || (r = ocitar_dir(&tar, "blobs/sha256/")) < 0 ||
	    (r = image_layer(&tar, j, res, failed)) < 0)
		goto out;
	if ((r = oci_config_squash(cfg, cfg_len, res->diff_id, &c)) < 0 ||
	    (r = oci_digest_buf(res->config_digest, c.data, c.len)) < 0 ||
	    (r = ocitar_blob(&tar, res->config_digest, c.data, c.len)) < 0)
		goto out;
	if ((r = put_json(&tar, NULL, image_manifest(res, c.len, j->o->gzip), res->manifest_digest,
	                  &man_size)) < 0 ||
	    (r = put_json(&tar, "index.json", image_index(res, man_size, &c, j->o->ref), unused,
	                  NULL)) < 0 ||
	    (r = ocitar_file(&tar, "oci-layout", OCI_LAYOUT_JSON, strlen(OCI_LAYOUT_JSON))) < 0)
		goto out;
	r = ocitar_finish(&tar);
	res->file_size = tar.off;
out:
	dimg_buf_free(&c);
	return r;
}

struct image_fill {
	struct layer_job *j;
	const uint8_t *cfg;
	size_t cfg_len;
	struct oci_image_result *res;
	size_t failed;
};

static int image_fill_fd(int fd, void *ctx)
{
	struct image_fill *f = ctx;
	return image_write_fd(fd, f->j, f->cfg, f->cfg_len, f->res, &f->failed);
}

int oci_image_write(const char *out_path, const struct dimg_tree *t, dimg_content_fn content,
                    void *ctx, const uint8_t *cfg, size_t cfg_len, const struct oci_image_opts *o,
                    struct oci_image_result *res, struct dimg_err *err)
{
	struct layer_job j = {t, content, ctx, o, 0, tree_bytes(t)};
	struct image_fill f = {&j, cfg, cfg_len, res, (size_t)-1};
	memset(res, 0, sizeof(*res));
	int r = dimg_tree_validate(t, err);
	if (r < 0)
		return r;
	r = packer_write_atomic(out_path, o->out_flags, image_fill_fd, &f, err);
	if (r < 0 && f.failed != (size_t)-1) /* content() may have said it first */
		dimg_err_set(err, r, NULL, "entry '%s': %s", t->v[f.failed].path, dimg_strerror(r));
	return r;
}

/* ------------------------------------------- original layers, original config */

/* cfg's rootfs.diff_ids, which must be n valid digests. */
static int want_diff_ids(const uint8_t *cfg, size_t cfg_len, size_t n, struct json_object **out,
                         struct dimg_err *err)
{
	struct json_object *c = NULL, *rootfs, *ids;
	int r = oci_json_parse(&c, cfg, cfg_len);
	if (r == 0 &&
	    (!json_object_object_get_ex(c, "rootfs", &rootfs) ||
	     !json_object_object_get_ex(rootfs, "diff_ids", &ids) ||
	     !json_object_is_type(ids, json_type_array) || json_object_array_length(ids) != n))
		r = -EBADMSG;
	for (size_t i = 0; r == 0 && i < n; i++)
		if (!oci_digest_valid(json_object_get_string(json_object_array_get_idx(ids, i))))
			r = -EBADMSG;
	if (r < 0) {
		json_object_put(c);
		return dimg_err_set(err, r, NULL,
		                    "the config's rootfs.diff_ids are not %zu sha256 digests", n);
	}
	*out = c;
	return 0;
}

struct user_body {
	oci_layer_fn fn;
	void *ctx;
	size_t i;
};

static int user_body_run(void *ctx, struct layer_out *L)
{
	struct user_body *b = ctx;
	return b->fn(b->ctx, b->i, oci_layer_out_write, L);
}

struct layers_job {
	oci_layer_fn fn;
	void *ctx;
	const uint8_t *cfg;
	size_t cfg_len;
	const struct oci_layers_opts *o;
	struct oci_layers_result *res;
	struct dimg_err *err;
	struct json_object *ids; /* the config's diff_ids */
	struct json_object *descs;
};

/* Layer i, checked against the config's diff_id, described in j->descs. */
static int layers_one(struct ocitar *tar, struct layers_job *j, size_t i)
{
	struct oci_image_opts lo = {0};
	struct user_body b = {j->fn, j->ctx, i};
	struct layer_done d;
	const char *want = json_object_get_string(json_object_array_get_idx(j->ids, i));
	int r = j->o->begin(j->ctx, i, &lo.gzip);
	if (r == 0)
		r = oci_blob_layer(tar, &lo, user_body_run, &b, &d);
	if (r == 0 && strcmp(d.diff_id, want) != 0)
		r = dimg_err_set(
		    j->err, -EBADMSG, NULL,
		    "layer %zu rebuilt with diff_id %.19s..., the config says %.19s...", i + 1,
		    d.diff_id, want);
	if (r < 0) {
		j->res->failed = i;
		return r;
	}
	return json_object_array_add(
	           j->descs,
	           oci_descriptor(lo.gzip ? OCI_MT_LAYER_GZIP : OCI_MT_LAYER, d.digest, d.size))
	           ? -ENOMEM
	           : 0;
}

static struct json_object *layers_manifest(struct layers_job *j, const char *cfg_digest)
{
	struct json_object *m = json_object_new_object();
	if (!m || json_object_object_add(m, "layers", json_object_get(j->descs))) {
		json_object_put(m);
		return NULL;
	}
	json_object_object_add(m, "schemaVersion", json_object_new_int(2));
	json_object_object_add(m, "mediaType", json_object_new_string(OCI_MT_MANIFEST));
	json_object_object_add(m, "config", oci_descriptor(OCI_MT_CONFIG, cfg_digest, j->cfg_len));
	return m;
}

static int layers_fill_fd(int fd, void *ctx)
{
	struct layers_job *j = ctx;
	struct ocitar tar = {fd, 0};
	struct oci_image_result ir = {0};
	struct dimg_buf cb = {(uint8_t *)(uintptr_t)j->cfg, j->cfg_len, j->cfg_len};
	uint64_t man_size = 0;
	char unused[OCI_DIGEST_LEN];
	int r = ocitar_dir(&tar, "blobs/");
	if (r == 0)
		r = ocitar_dir(&tar, "blobs/sha256/");
	for (size_t i = 0; r == 0 && i < j->o->n; i++)
		r = layers_one(&tar, j, i);
	if (r < 0 || (r = oci_digest_buf(j->res->config_digest, j->cfg, j->cfg_len)) < 0 ||
	    (r = ocitar_blob(&tar, j->res->config_digest, j->cfg, j->cfg_len)) < 0 ||
	    (r = put_json(&tar, NULL, layers_manifest(j, j->res->config_digest),
	                  j->res->manifest_digest, &man_size)) < 0)
		return r;
	memcpy(ir.manifest_digest, j->res->manifest_digest, OCI_DIGEST_LEN);
	if ((r = put_json(&tar, "index.json", image_index(&ir, man_size, &cb, j->o->ref), unused,
	                  NULL)) < 0 ||
	    (r = ocitar_file(&tar, "oci-layout", OCI_LAYOUT_JSON, strlen(OCI_LAYOUT_JSON))) < 0 ||
	    (r = ocitar_finish(&tar)) < 0)
		return r;
	j->res->file_size = tar.off;
	return 0;
}

int oci_image_write_layers(const char *out_path, oci_layer_fn fn, void *ctx, const uint8_t *cfg,
                           size_t cfg_len, const struct oci_layers_opts *o,
                           struct oci_layers_result *res, struct dimg_err *err)
{
	struct layers_job j = {fn, ctx, cfg, cfg_len, o, res, err, NULL, NULL};
	struct json_object *c = NULL;
	memset(res, 0, sizeof(*res));
	res->failed = o->n;
	int r = want_diff_ids(cfg, cfg_len, o->n, &c, err);
	if (r < 0)
		return r;
	json_object_object_get_ex(c, "rootfs", &j.ids);
	json_object_object_get_ex(j.ids, "diff_ids", &j.ids);
	j.descs = json_object_new_array();
	r = j.descs ? packer_write_atomic(out_path, o->out_flags, layers_fill_fd, &j, err)
	            : -ENOMEM;
	json_object_put(j.descs);
	json_object_put(c);
	return r;
}
