/* docker save archives read: manifest.json's image picked by RepoTag,
 * described by the Docker schema 2 manifest skopeo makes for it (so both
 * give the same digest). Writing is laycommit.c's. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "layout.h"

struct dsave_blob {
	uint8_t digest[32];
	char *member;
	uint64_t size;
};

struct dsave {
	struct dsave_blob config;
	struct dsave_blob *layers;
	size_t n;
	struct dimg_buf manifest;
	char *tag;
};

void dsave_free(struct dsave *ds)
{
	if (!ds)
		return;
	free(ds->config.member);
	for (size_t i = 0; i < ds->n; i++)
		free(ds->layers[i].member);
	free(ds->layers);
	dimg_buf_free(&ds->manifest);
	free(ds->tag);
	free(ds);
}

static const char *dsave_jarr_str(struct json_object *arr, size_t i)
{
	struct json_object *v = json_object_array_get_idx(arr, i);
	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Without a ref the archive must hold one image, else the first whose
 * RepoTags name it. */
static int dsave_pick(struct json_object *arr, const char *ref, struct json_object **out,
                      const char **tag, struct dimg_err *err)
{
	size_t n = json_object_array_length(arr);
	*out = NULL;
	*tag = NULL;
	for (size_t i = 0; i < n && !*out; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i),
		                   *tags = oci_jarr(e, "RepoTags");
		size_t nt = tags ? json_object_array_length(tags) : 0;
		if (!ref && n == 1) {
			*out = e;
			*tag = nt ? dsave_jarr_str(tags, 0) : NULL;
		}
		for (size_t j = 0; ref && j < nt && !*out; j++)
			if (oci_ref_match(dsave_jarr_str(tags, j), ref)) {
				*out = e;
				*tag = dsave_jarr_str(tags, j);
			}
	}
	if (*out && json_object_is_type(*out, json_type_object))
		return 0;
	if (ref)
		return dimg_err_set(err, -ENOENT, ref, "no image of that name in the archive");
	return dimg_err_set(err, -EINVAL, "manifest.json",
	                    "the archive holds %zu images: name one (docker-archive:PATH:NAME)", n);
}

static int dsave_member_of(const struct lay *l, const char *path, struct dsave_blob *b)
{
	if (!path || !(b->member = strdup(path)))
		return path ? -ENOMEM : -EBADMSG;
	int r = xtar_norm(b->member);
	return r < 0 ? r : lay_size(l, b->member, &b->size);
}

static int dsave_layers(struct dsave *ds, const struct lay *l, struct json_object *entry,
                        struct json_object *config, struct dimg_err *err)
{
	struct json_object *arr = oci_jarr(entry, "Layers");
	struct json_object *ids = oci_jarr(oci_jobj(config, "rootfs"), "diff_ids");
	size_t n = arr ? json_object_array_length(arr) : 0;
	if (!arr || !ids || json_object_array_length(ids) != n)
		return dimg_err_set(err, -EBADMSG, "manifest.json",
		                    "Layers and the config's rootfs.diff_ids do not pair up");
	if (!(ds->layers = calloc(n ? n : 1, sizeof(*ds->layers))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct dsave_blob *b = &ds->layers[ds->n++]; /* dsave_free frees what it holds */
		const char *p = dsave_jarr_str(arr, i);
		int r = dsave_member_of(l, p, b);
		if (r == 0 && (r = oci_digest_parse(b->digest, dsave_jarr_str(ids, i))) < 0)
			return dimg_err_set(err, r, "config", "diff_id %zu is not a sha256 digest",
			                    i);
		if (r < 0)
			return dimg_err_set(err, r, p ? p : "manifest.json", "layer %zu", i);
	}
	return 0;
}

static int dsave_config(struct dsave *ds, const struct lay *l, struct json_object *entry,
                        struct json_object **config, struct dimg_err *err)
{
	const char *p = oci_jstr(entry, "Config");
	uint8_t *raw = NULL;
	size_t len;
	int r = dsave_member_of(l, p, &ds->config);
	if (r == 0)
		r = lay_read_all(l, ds->config.member, OCI_JSON_MAX, &raw, &len);
	if (r == 0)
		r = dimg_sha256_buf(raw, len, ds->config.digest);
	if (r == 0)
		r = oci_json_parse(config, raw, len);
	free(raw);
	return r < 0 ? dimg_err_set(err, r, p ? p : "manifest.json", "the image config") : 0;
}

/* The manifest skopeo describes a docker save image with: its Go struct
 * field order, the config's digest, each layer's diff_id as its digest. */
static int dsave_render(struct dsave *ds)
{
	char line[512], dg[OCI_DIGEST_LEN];
	struct dimg_buf *b = &ds->manifest;
	oci_digest_str(dg, ds->config.digest);
	int n =
	    snprintf(line, sizeof(line),
	             "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
	             "\"size\":%" PRIu64 ",\"digest\":\"%s\"},\"layers\":[",
	             DOCKER_MT_MANIFEST, DOCKER_MT_CONFIG, ds->config.size, dg);
	int r = dimg_buf_append(b, line, (size_t)n);
	for (size_t i = 0; r == 0 && i < ds->n; i++) {
		oci_digest_str(dg, ds->layers[i].digest);
		n = snprintf(line, sizeof(line),
		             "%s{\"mediaType\":\"%s\",\"size\":%" PRIu64 ",\"digest\":\"%s\"}",
		             i ? "," : "", DOCKER_MT_LAYER_GZIP, ds->layers[i].size, dg);
		r = dimg_buf_append(b, line, (size_t)n);
	}
	return r == 0 ? dimg_buf_append(b, "]}", 2) : r;
}

int dsave_open(struct dsave **out, const struct lay *l, const char *ref, struct dimg_err *err)
{
	uint8_t *raw;
	size_t len;
	const char *tag;
	struct json_object *arr = NULL, *entry, *config = NULL;
	struct dsave *ds = calloc(1, sizeof(*ds));
	*out = NULL;
	if (!ds)
		return -ENOMEM;
	int r = lay_read_all(l, "manifest.json", OCI_JSON_MAX, &raw, &len);
	if (r == 0) {
		r = oci_json_parse(&arr, raw, len);
		free(raw);
	}
	if (r == 0 && !json_object_is_type(arr, json_type_array))
		r = -EBADMSG;
	if (r < 0)
		dimg_err_set(err, r, "manifest.json", r == -ENOENT ? "missing" : "not a list");
	if (r == 0 && (r = dsave_pick(arr, ref, &entry, &tag, err)) == 0 && tag &&
	    !(ds->tag = strdup(tag)))
		r = -ENOMEM;
	if (r == 0)
		r = dsave_config(ds, l, entry, &config, err);
	if (r == 0)
		r = dsave_layers(ds, l, entry, config, err);
	if (r == 0)
		r = dsave_render(ds);
	json_object_put(config);
	json_object_put(arr);
	if (r < 0) {
		dsave_free(ds);
		return r;
	}
	*out = ds;
	return 0;
}

int dsave_manifest(const struct dsave *ds, struct xport_manifest *out, struct dimg_err *err)
{
	uint8_t *raw = malloc(ds->manifest.len);
	memset(out, 0, sizeof(*out));
	if (!raw || (ds->tag && !(out->ref = strdup(ds->tag)))) {
		free(raw);
		return -ENOMEM;
	}
	memcpy(raw, ds->manifest.data, ds->manifest.len);
	return xman_take(out, raw, ds->manifest.len, DOCKER_MT_MANIFEST, NULL, err);
}

const char *dsave_member(const struct dsave *ds, const uint8_t digest[32])
{
	if (memcmp(ds->config.digest, digest, 32) == 0)
		return ds->config.member;
	for (size_t i = 0; i < ds->n; i++)
		if (memcmp(ds->layers[i].digest, digest, 32) == 0)
			return ds->layers[i].member;
	return NULL;
}
