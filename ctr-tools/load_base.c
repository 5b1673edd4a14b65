/* cdimg load: find the base image in containerd and compute chain ids. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrd.h"
#include "dimg/hash.h"
#include "dimg/tree.h"
#include "load.h"

#define MT_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define MAX_INDEX_DEPTH    4

const char *load_goarch(void)
{
#if defined(__x86_64__)
	return "amd64";
#elif defined(__aarch64__)
	return "arm64";
#elif defined(__arm__)
	return "arm";
#elif defined(__i386__)
	return "386";
#elif defined(__s390x__)
	return "s390x";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "ppc64le";
#elif defined(__riscv) && __riscv_xlen == 64
	return "riscv64";
#else
	return "unknown";
#endif
}

static struct json_object *parse_json(const uint8_t *p, size_t n)
{
	struct json_tokener *tok = json_tokener_new();
	if (!tok || n > LOAD_MAX_JSON) {
		json_tokener_free(tok);
		return NULL;
	}
	struct json_object *o = json_tokener_parse_ex(tok, (const char *)p, (int)n);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int is_sha256_digest(const char *s)
{
	if (!s || strncmp(s, "sha256:", 7) || strlen(s) != 7 + 64)
		return 0;
	for (const char *p = s + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
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

int load_chain_id(const uint8_t *config, size_t n, char out[72], char **err)
{
	struct json_object *o = parse_json(config, n), *rootfs, *ids;
	int r = 0;
	if (!o || !json_object_object_get_ex(o, "rootfs", &rootfs) ||
	    !json_object_object_get_ex(rootfs, "diff_ids", &ids) ||
	    !json_object_is_type(ids, json_type_array) || json_object_array_length(ids) == 0) {
		json_object_put(o);
		*err = strdup("the image config has no rootfs.diff_ids");
		return -EBADMSG;
	}
	for (size_t i = 0; r == 0 && i < json_object_array_length(ids); i++) {
		struct json_object *v = json_object_array_get_idx(ids, i);
		const char *d =
		    json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
		if (!is_sha256_digest(d)) {
			if (asprintf(err, "rootfs.diff_ids[%zu] is not a sha256 digest", i) < 0)
				*err = NULL;
			r = -EBADMSG;
		} else if (i == 0) {
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
	if (mt && (!strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST)))
		return 1;
	if (mt && (!strcmp(mt, MT_OCI_MANIFEST) || !strcmp(mt, MT_DOCKER_MANIFEST)))
		return 0;
	struct json_object *v; /* no media type we know: by shape */
	return json_object_object_get_ex(o, "manifests", &v);
}

/* An index entry for this machine: platform linux/<goarch>, or a nested
 * index without platform. */
static int entry_wanted(struct json_object *e)
{
	struct json_object *p;
	const char *mt = jstr(e, "mediaType");
	if (!json_object_object_get_ex(e, "platform", &p))
		return mt && (!strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST));
	const char *os = jstr(p, "os"), *arch = jstr(p, "architecture");
	return os && arch && !strcmp(os, "linux") && !strcmp(arch, load_goarch());
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
		const char *d = jstr(e, "digest");
		if (!d || !entry_wanted(e))
			continue;
		int r = has_config(c, d, jstr(e, "mediaType"), want, depth + 1);
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
	char *err = NULL;
	if (depth > MAX_INDEX_DEPTH)
		return 0;
	int r = ctrd_content_get(c, digest, LOAD_MAX_JSON, &p, &n, &err);
	free(err);
	if (r < 0) /* another platform's image, a half-pulled one: not ours */
		return r == -ENOENT || r == -EFBIG ? 0 : r;
	struct json_object *o = parse_json(p, n);
	free(p);
	if (!o)
		return 0;
	if (!mt)
		mt = jstr(o, "mediaType");
	if (is_index(mt, o))
		r = index_has_config(c, o, want, depth);
	else
		r = json_object_object_get_ex(o, "config", &cfg) && jstr(cfg, "digest") &&
		    !strcmp(jstr(cfg, "digest"), want);
	json_object_put(o);
	return r;
}

int load_find_base(struct ctrd *c, const char *config_digest, char **name, char **err)
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
		if (r < 0 &&
		    asprintf(err, "reading image %s's manifest: %s", v[i].name, strerror(-r)) < 0)
			*err = NULL;
	}
	ctrd_images_free(v, n);
	return r < 0 ? r : *name ? 0 : -ENOENT;
}

char *load_media_type(const uint8_t *p, size_t n)
{
	struct json_object *o = parse_json(p, n);
	const char *mt = jstr(o, "mediaType");
	char *s = mt ? strdup(mt) : NULL;
	json_object_put(o);
	return s;
}
