/* `docker save` archives: manifest.json, the image picked by --ref or
 * platform, its config and layers, and an OCI manifest describing them. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dimg/hash.h"
#include "oci-internal.h"
#include "tree-internal.h"

/* ---- docker save: manifest.json ---- */

static const char *oci_jarr_str(struct json_object *arr, size_t i)
{
	struct json_object *v = json_object_array_get_idx(arr, i);
	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Without a ref the archive must hold one image; with one, the first
 * entry with a matching RepoTag is taken. */
static int oci_docker_pick(struct oci_ctx *c, struct json_object *arr, struct json_object **out,
                           const char **tag)
{
	size_t n = json_object_array_length(arr);
	*out = NULL;
	*tag = NULL;
	for (size_t i = 0; i < n && !*out; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		struct json_object *tags = oci_jarr(e, "RepoTags");
		size_t nt = tags ? json_object_array_length(tags) : 0;
		if (!c->o->ref && n == 1) {
			*out = e;
			*tag = nt ? oci_jarr_str(tags, 0) : NULL;
		}
		for (size_t j = 0; c->o->ref && j < nt && !*out; j++) {
			if (oci_ref_match(oci_jarr_str(tags, j), c->o->ref)) {
				*out = e;
				*tag = oci_jarr_str(tags, j);
			}
		}
	}
	if (*out && json_object_is_type(*out, json_type_object))
		return 0;
	if (c->o->ref)
		dimg_errf(c->err, "no image named %s in the archive", c->o->ref);
	else
		dimg_errf(c->err, "the archive holds %zu images; choose one with a ref", n);
	return -ENOENT;
}

static int oci_docker_config(struct oci_ctx *c, const char *path)
{
	struct dimg_image *img = c->img;
	uint8_t d[32];
	char *name;
	int r = oci_norm_name(&name, path);
	if (r == 0)
		r = oci_read_all(&c->src, name, OCI_JSON_MAX, &img->config, &img->config_len);
	if (r == 0 && (r = oci_json_parse(&c->config, img->config, img->config_len)) == 0 &&
	    (r = dimg_sha256_buf(img->config, img->config_len, d)) == 0)
		oci_digest_str(img->config_digest, d);
	if (r < 0)
		dimg_errf(c->err, "docker config %s: %s", path ? path : "(none)",
		          r == -EBADMSG ? "unreadable or not JSON" : strerror(-r));
	free(name);
	return r;
}

static int oci_docker_layer(struct oci_layer *l, const char *path)
{
	int r = oci_norm_name(&l->member, path);
	if (r < 0)
		return r;
	l->label = strdup(l->member);
	if (!l->label)
		return -ENOMEM;
	l->li.size = UINT64_MAX; /* the member's size, once opened */
	/* Newer docker save names layers by their digest: check it too. */
	if (strncmp(l->member, "blobs/", 6) == 0) {
		char *d = strdup(l->member + 6);
		if (!d)
			return -ENOMEM;
		if (strlen(d) > 6 && d[6] == '/') /* "sha256/<hex>" */
			d[6] = ':';
		l->li.has_digest = oci_digest_parse(l->li.digest, d) == 0;
		free(d);
	}
	return 0;
}

static int oci_docker_layers(struct oci_ctx *c, struct json_object *entry)
{
	struct json_object *arr = oci_jarr(entry, "Layers");
	int r = oci_layers_alloc(c, arr ? json_object_array_length(arr) : 0);
	for (size_t i = 0; r == 0 && i < c->nlayers; i++) {
		struct json_object *v = json_object_array_get_idx(arr, i);
		const char *p =
		    json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
		r = oci_docker_layer(&c->layers[i], p);
		if (r == -EBADMSG)
			dimg_errf(c->err, "manifest.json: bad layer path %zu", i);
	}
	return r;
}

static int oci_docker_platform(struct oci_ctx *c)
{
	struct oci_platform want, have;
	if (!c->o->platform)
		return 0;
	int r = oci_want_platform(c, &want);
	if (r < 0)
		return r;
	oci_platform_from_json(&have, c->config);
	if (oci_platform_match(&want, &have))
		return 0;
	dimg_errf(c->err, "the image is for %s/%s, not %s", have.os, have.arch, c->o->platform);
	return -ENOENT;
}

int oci_load_docker(struct oci_ctx *c)
{
	uint8_t *raw;
	size_t len;
	struct json_object *arr = NULL, *entry;
	const char *tag;
	int r = oci_read_all(&c->src, "manifest.json", OCI_JSON_MAX, &raw, &len);
	if (r == -ENOENT) {
		dimg_errf(c->err, "not an OCI image layout or docker save archive "
		                  "(no index.json or manifest.json)");
		return -EBADMSG;
	}
	if (r == 0) {
		r = oci_json_parse(&arr, raw, len);
		free(raw);
	}
	if (r == 0 && !json_object_is_type(arr, json_type_array))
		r = -EBADMSG;
	if (r < 0)
		dimg_errf(c->err, "manifest.json: %s", r == -EBADMSG ? "not a list" : strerror(-r));
	if (r == 0)
		r = oci_docker_pick(c, arr, &entry, &tag);
	if (r == 0 && tag && !(c->img->ref = strdup(tag)))
		r = -ENOMEM;
	if (r == 0)
		r = oci_docker_config(c, oci_jstr(entry, "Config"));
	if (r == 0)
		r = oci_docker_platform(c);
	if (r == 0)
		r = oci_docker_layers(c, entry);
	if (r == 0)
		r = oci_diff_ids(c);
	c->docker = 1;
	json_object_put(arr);
	return r;
}

static const char *oci_layer_media_type(const char *filter)
{
	if (strcmp(filter, "none") == 0)
		return OCI_MT_LAYER;
	if (strcmp(filter, "gzip") == 0)
		return OCI_MT_LAYER_GZIP;
	if (strcmp(filter, "zstd") == 0)
		return OCI_MT_LAYER_ZSTD;
	return NULL;
}

/* docker save has no registry manifest: describe the image with an OCI
 * one (config and layers exactly as stored), so callers always get one. */
int oci_docker_manifest(struct oci_ctx *c)
{
	struct dimg_image *img = c->img;
	uint8_t cd[32], md[32];
	size_t len;
	int r = -ENOMEM;
	struct json_object *m = json_object_new_object(), *layers = json_object_new_array();
	if (!m || !layers || dimg_sha256_buf(img->config, img->config_len, cd) < 0)
		goto out;
	for (size_t i = 0; i < c->nlayers; i++) {
		const struct dimg_layer_info *li = &c->layers[i].li;
		const char *mt = oci_layer_media_type(li->filter);
		if (!mt) {
			dimg_errf(c->err, "layer %s: %s compression has no OCI media type",
			          c->layers[i].label, li->filter);
			r = -ENOTSUP;
			goto out;
		}
		if (json_object_array_add(layers, oci_desc_json(mt, li->got_digest, li->got_size)))
			goto out;
	}
	if (json_object_object_add(m, "schemaVersion", json_object_new_int(2)) ||
	    json_object_object_add(m, "mediaType", json_object_new_string(OCI_MT_MANIFEST)) ||
	    json_object_object_add(m, "config", oci_desc_json(OCI_MT_CONFIG, cd, img->config_len)))
		goto out;
	json_object_object_add(m, "layers", layers);
	layers = NULL;
	const char *s = json_object_to_json_string_length(
	    m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	img->manifest = s ? malloc(len) : NULL;
	img->manifest_media_type = strdup(OCI_MT_MANIFEST);
	if (!img->manifest || !img->manifest_media_type)
		goto out;
	memcpy(img->manifest, s, len);
	img->manifest_len = len;
	if ((r = dimg_sha256_buf(img->manifest, len, md)) == 0)
		oci_digest_str(img->manifest_digest, md);
out:
	json_object_put(layers);
	json_object_put(m);
	return r;
}
