/* cdimg pull: one delta artifact downloaded (blobs through the resumable
 * cache) and rebuilt into the .cdimg that was pushed (di3fs/pull.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cdimg.h"
#include "copy-internal.h"
#include "di3fs/pull.h"
#include "packer.h"
#include "transport-internal.h"

/* What a rebuild needs, all read from the registry. */
struct parts {
	struct xport_manifest art, target;
	struct json_object *art_doc;
	struct oci_desc dimg, layers, config;
	int has_layers;
	struct dimg_buf config_bytes;
	int dimg_fd, layers_fd;
	uint64_t fetched, seen, resumed; /* seen, resumed: of the blob in flight */
};

static void parts_free(struct parts *s)
{
	xport_manifest_clear(&s->art);
	xport_manifest_clear(&s->target);
	json_object_put(s->art_doc);
	dimg_buf_free(&s->config_bytes);
	if (s->dimg_fd >= 0)
		close(s->dimg_fd);
	if (s->layers_fd >= 0)
		close(s->layers_fd);
}

static int bad(struct xpull *p, const char *digest, struct dimg_err *err, const char *why)
{
	char what[700];
	snprintf(what, sizeof(what), "%s@%s", xpull_repo_name(p), digest);
	return dimg_err_set(err, -EBADMSG, what, "%s", why);
}

/* The .dimg and recipes descriptors of the artifact manifest. */
static int art_layers(struct parts *s, struct xpull *p, const struct xpull_delta *d,
                      struct dimg_err *err)
{
	struct json_object *ls;
	int rc = oci_json_parse(&s->art_doc, s->art.raw, s->art.len);
	int have_dimg = 0;

	ls = rc == 0 ? oci_jarr(s->art_doc, "layers") : NULL;
	for (size_t i = 0; ls && i < json_object_array_length(ls); i++) {
		struct oci_desc x;
		if (oci_desc_parse(&x, json_object_array_get_idx(ls, i)) < 0 || !x.media_type)
			return bad(p, d->digest, err, "a malformed layer descriptor");
		if (!strcmp(x.media_type, DI3FS_MT_DIMG) && !have_dimg) {
			s->dimg = x;
			have_dimg = 1;
		} else if (!strcmp(x.media_type, DI3FS_MT_LAYERS) && !s->has_layers) {
			s->layers = x;
			s->has_layers = 1;
		} else {
			return bad(p, d->digest, err,
			           "a layer that is not a .dimg or layer recipes");
		}
	}
	return have_dimg ? 0 : bad(p, d->digest, err, "no .dimg layer");
}

static int config_sink(void *ctx, const void *p, size_t n)
{
	struct dimg_buf *b = ctx;
	return b->len + n > OCI_JSON_MAX ? -EFBIG : dimg_buf_append(b, p, n);
}

/* The target's manifest (the artifact's subject) and its config, checked. */
static int target(struct parts *s, struct xpull *p, struct xport *src, const struct xpull_delta *d,
                  struct dimg_err *err)
{
	struct json_object *doc = NULL;
	struct oci_desc *v = NULL;
	struct xverify ver;
	size_t n = 0;
	uint8_t dg[32];
	char cd[OCI_DIGEST_LEN];
	int rc = oci_digest_parse(dg, d->subject);

	if (rc == 0)
		rc = xport_get_manifest_digest(src, dg, &s->target, err);
	if (rc == 0)
		rc = xman_children(&s->target, &doc, &v, &n, err);
	if (rc == 0 && (n == 0 || oci_mt_is_index(s->target.media_type)))
		rc = bad(p, d->subject, err, "the delta's target is not an image manifest");
	if (rc == 0) {
		oci_digest_str(cd, v[0].digest);
		s->config = v[0];
		s->config.media_type = s->config.artifact_type = NULL;
		if (strcmp(cd, d->target_config) || s->config.size > OCI_JSON_MAX)
			rc = bad(p, d->digest, err, "the target's config is not the one annotated");
	}
	if (rc == 0)
		rc = xverify_init(&ver, &s->config);
	if (rc == 0) {
		rc = xport_get_blob(src, &s->config, 0, config_sink, &s->config_bytes, err);
		if (rc == 0)
			rc = xverify_update(&ver, s->config_bytes.data, s->config_bytes.len);
		if (rc == 0)
			rc = xverify_final(&ver, err);
		xverify_free(&ver);
	}
	free(v);
	json_object_put(doc);
	return rc;
}

static void count(void *ctx, uint64_t done, uint64_t resumed)
{
	struct parts *s = ctx;
	s->seen = done;
	s->resumed = resumed;
}

static int blob(struct parts *s, struct xpull *p, struct xport *src, const struct oci_desc *d,
                int *fd, struct dimg_err *err)
{
	s->seen = s->resumed = 0;
	int rc = xcache_fetch(xpull_cache_dir(p), src, d, count, s, fd, err);
	s->fetched += s->seen - s->resumed;
	return rc;
}

/* The rebuilt .cdimg gives the artifact manifest again, byte for byte. */
static int same_artifact(const char *path, const char *digest, struct dimg_err *err)
{
	struct cdimg *c = NULL;
	struct dimg_buf m = {0};
	char got[OCI_DIGEST_LEN];
	int rc = cdimg_open(&c, path, err);

	if (rc == 0)
		rc = cdimg_registry_manifest(c, &m, err);
	if (rc == 0)
		rc = oci_digest_buf(got, m.data, m.len);
	if (rc == 0 && strcmp(got, digest))
		rc = 1;
	dimg_buf_free(&m);
	cdimg_free(c);
	return rc;
}

static int rebuild(struct parts *s, struct xpull *p, const struct xpull_delta *d, const char *out,
                   struct dimg_err *err)
{
	struct json_object *an = oci_jobj(s->art_doc, "annotations");
	char dimg_path[64], layers_path[64];
	struct cdimg_meta m = {
	    .base_config_digest = d->base_config,
	    .target_config = s->config_bytes.data,
	    .target_config_len = s->config_bytes.len,
	    .target_manifest = s->target.raw,
	    .target_manifest_len = s->target.len,
	    .target_manifest_media_type = s->target.media_type,
	    .target_ref = oci_jstr(an, CDIMG_ANNOT_TARGET_REF),
	};
	snprintf(dimg_path, sizeof(dimg_path), "/proc/self/fd/%d", s->dimg_fd);
	if (s->has_layers) {
		snprintf(layers_path, sizeof(layers_path), "/proc/self/fd/%d", s->layers_fd);
		m.layers_path = layers_path;
	}
	int rc = cdimg_write(out, dimg_path, &m, PACKER_REPLACE, NULL, err);
	if (rc < 0)
		return rc;
	rc = same_artifact(out, d->digest, err);
	if (rc != 0) {
		unlink(out);
		if (rc > 0)
			rc = bad(p, d->digest, err,
			         "the .cdimg rebuilt from the artifact does not give it back");
	}
	return rc;
}

int xpull_fetch(struct xpull *p, const struct xpull_delta *d, const char *out, uint64_t *fetched,
                struct dimg_err *err)
{
	struct parts s = {.dimg_fd = -1, .layers_fd = -1};
	struct xport *src = xpull_source(p);
	struct dimg_err e = {0};
	uint8_t dg[32];
	int rc;

	*fetched = 0;
	if (access(out, F_OK) == 0 && same_artifact(out, d->digest, &e) == 0)
		return 0; /* fetched before */
	rc = oci_digest_parse(dg, d->digest);
	if (rc == 0)
		rc = xport_get_manifest_digest(src, dg, &s.art, err);
	if (rc == 0)
		rc = art_layers(&s, p, d, err);
	if (rc == 0)
		rc = target(&s, p, src, d, err);
	if (rc == 0)
		rc = blob(&s, p, src, &s.dimg, &s.dimg_fd, err);
	if (rc == 0 && s.has_layers)
		rc = blob(&s, p, src, &s.layers, &s.layers_fd, err);
	if (rc == 0)
		rc = rebuild(&s, p, d, out, err);
	*fetched = s.fetched + s.art.len + s.target.len + s.config_bytes.len;
	parts_free(&s);
	return rc;
}
