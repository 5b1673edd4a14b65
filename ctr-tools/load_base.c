/* cdimg load: find the base image in containerd and compute chain ids. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrd.h"
#include "dimg/hash.h"
#include "dimg/oci.h"
#include "dimg/tree.h"
#include "load.h"

#define MAX_INDEX_DEPTH 4

static struct json_object *parse_json(const uint8_t *p, size_t n)
{
	struct json_object *o;
	return n <= LOAD_MAX_JSON && oci_json_parse(&o, p, n) == 0 ? o : NULL;
}

static int chain_step(char chain[72], const char *diff_id)
{
	char buf[160];
	uint8_t h[32];
	char hex[65];
	int n = snprintf(buf, sizeof(buf), "%s %s", chain, diff_id);
	int r = dimg_sha256_buf(buf, (size_t)n, h);
	if (r < 0)
		return r;
	dimg_hex32(h, hex);
	snprintf(chain, 72, "sha256:%s", hex);
	return 0;
}

int load_chain_id(const uint8_t *config, size_t n, char out[72], struct dimg_err *err)
{
	struct json_object *o = parse_json(config, n), *rootfs, *ids;
	int r = 0;
	if (!o || !json_object_object_get_ex(o, "rootfs", &rootfs) ||
	    !json_object_object_get_ex(rootfs, "diff_ids", &ids) ||
	    !json_object_is_type(ids, json_type_array) || json_object_array_length(ids) == 0) {
		json_object_put(o);
		return dimg_err_set(err, -EBADMSG, NULL, "the image config has no rootfs.diff_ids");
	}
	for (size_t i = 0; r == 0 && i < json_object_array_length(ids); i++) {
		struct json_object *v = json_object_array_get_idx(ids, i);
		const char *d =
		    json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
		if (!oci_digest_valid(d))
			r = dimg_err_set(err, -EBADMSG, NULL,
			                 "rootfs.diff_ids[%zu] is not a sha256 digest", i);
		else if (i == 0) {
			snprintf(out, 72, "%s", d);
		} else {
			r = chain_step(out, d);
		}
	}
	json_object_put(o);
	return r;
}

static int is_index(const char *mt, struct json_object *o)
{
	if (oci_mt_is_index(mt))
		return 1;
	if (oci_mt_is_manifest(mt))
		return 0;
	return oci_jarr(o, "manifests") != NULL; /* no media type we know: by shape */
}

/* An index entry for this machine's platform, or a nested index without
 * platform. */
static int entry_wanted(struct json_object *e)
{
	struct json_object *p = oci_jobj(e, "platform");
	struct oci_platform want, have;
	if (!p)
		return oci_mt_is_index(oci_jstr(e, "mediaType"));
	oci_platform_host(&want);
	want.variant[0] = '\0';
	oci_platform_from_json(&have, p);
	return oci_platform_match(&want, &have);
}

static int has_config(struct ctrd *c, const char *digest, const char *mt, const char *want,
                      int depth);

static int index_has_config(struct ctrd *c, struct json_object *o, const char *want, int depth)
{
	struct json_object *ms;
	if (!json_object_object_get_ex(o, "manifests", &ms) ||
	    !json_object_is_type(ms, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(ms); i++) {
		struct json_object *e = json_object_array_get_idx(ms, i);
		const char *d = oci_jstr(e, "digest");
		if (!d || !entry_wanted(e))
			continue;
		int r = has_config(c, d, oci_jstr(e, "mediaType"), want, depth + 1);
		if (r != 0)
			return r;
	}
	return 0;
}

/* 1 if the manifest (or index) at digest leads to config want, 0 if not
 * or if its blobs are not in the content store, -errno on failure. */
static int has_config(struct ctrd *c, const char *digest, const char *mt, const char *want,
                      int depth)
{
	uint8_t *p = NULL;
	size_t n;
	struct json_object *cfg;
	if (depth > MAX_INDEX_DEPTH)
		return 0;
	int r = ctrd_content_get(c, digest, LOAD_MAX_JSON, &p, &n, NULL);
	if (r < 0) /* another platform's image, a half-pulled one: not ours */
		return r == -ENOENT || r == -EFBIG ? 0 : r;
	struct json_object *o = parse_json(p, n);
	free(p);
	if (!o)
		return 0;
	if (!mt)
		mt = oci_jstr(o, "mediaType");
	if (is_index(mt, o))
		r = index_has_config(c, o, want, depth);
	else
		r = json_object_object_get_ex(o, "config", &cfg) && oci_jstr(cfg, "digest") &&
		    !strcmp(oci_jstr(cfg, "digest"), want);
	json_object_put(o);
	return r;
}

int load_find_base(struct ctrd *c, const char *config_digest, char **name, struct dimg_err *err)
{
	struct ctrd_image *v;
	size_t n;
	int r = ctrd_images_list(c, &v, &n, err);
	if (r < 0)
		return r;
	*name = NULL;
	for (size_t i = 0; i < n && r == 0; i++) {
		r = has_config(c, v[i].digest, v[i].media_type[0] ? v[i].media_type : NULL,
		               config_digest, 0);
		if (r == 1 && !(*name = strdup(v[i].name)))
			r = -ENOMEM;
		if (r < 0)
			dimg_err_set(err, r, NULL, "reading image %s's manifest: %s", v[i].name,
			             strerror(-r));
	}
	ctrd_images_free(v, n);
	return r < 0 ? r : *name ? 0 : -ENOENT;
}

char *load_media_type(const uint8_t *p, size_t n)
{
	struct json_object *o = parse_json(p, n);
	const char *mt = oci_jstr(o, "mediaType");
	char *s = mt ? strdup(mt) : NULL;
	json_object_put(o);
	return s;
}
