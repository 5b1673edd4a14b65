/* Which manifest a name means: an index kept whole (--all-platforms) or
 * narrowed, through nested indexes, to the manifest of one platform. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "transport-internal.h"

#define XSEL_DEPTH 4

static int xsel_want(struct oci_platform *want, const struct xport_opts *o, struct dimg_err *err)
{
	if (!o->platform) {
		oci_platform_host(want);
		return 0;
	}
	if (oci_platform_parse(want, o->platform) < 0)
		return dimg_err_set(err, -EINVAL, o->platform,
		                    "not a platform (os/arch[/variant])");
	return 0;
}

/* The entry of index doc for want: a manifest whose platform matches, or
 * (when none does) a nested index without platform. -ENOENT. */
static int xsel_entry(struct json_object *doc, const struct oci_platform *want,
                      struct oci_desc *out)
{
	struct json_object *arr = oci_jarr(doc, "manifests");
	int nested = -1;
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		struct json_object *e = json_object_array_get_idx(arr, i),
		                   *p = oci_jobj(e, "platform");
		struct oci_platform have;
		const char *mt = oci_jstr(e, "mediaType");
		if (oci_mt_is_index(mt) && !p && nested < 0)
			nested = (int)i;
		if (!p || !oci_mt_is_manifest(mt))
			continue;
		oci_platform_from_json(&have, p);
		if (oci_platform_match(want, &have))
			return oci_desc_parse(out, e);
	}
	if (nested >= 0)
		return oci_desc_parse(out, json_object_array_get_idx(arr, (size_t)nested));
	return -ENOENT;
}

static int xsel_step(struct xport_manifest *m, const struct oci_platform *want, xsel_fetch_fn fetch,
                     void *ctx, struct dimg_err *err)
{
	struct json_object *doc;
	struct oci_desc d;
	struct xport_manifest next = {0};
	char ds[OCI_DIGEST_LEN], ps[100];
	oci_digest_str(ds, m->digest);
	int r = oci_json_parse(&doc, m->raw, m->len);
	if (r < 0)
		return dimg_err_set(err, r, ds, "an index that is not valid JSON");
	r = xsel_entry(doc, want, &d);
	if (r == -ENOENT) {
		oci_platform_str(ps, sizeof(ps), want);
		r = dimg_err_set(err, r, ds, "the index has no image for platform %s", ps);
	} else if (r < 0) {
		r = dimg_err_set(err, r, ds, "a malformed index entry");
	}
	if (r == 0)
		r = fetch(ctx, &d, &next, err);
	json_object_put(doc);
	if (r < 0) {
		xport_manifest_clear(&next);
		return r;
	}
	free(m->raw);
	next.ref = m->ref;
	*m = next;
	return 0;
}

int xsel_platform(struct xport_manifest *m, const struct xport_opts *o, xsel_fetch_fn fetch,
                  void *ctx, struct dimg_err *err)
{
	struct oci_platform want;
	int r = 0;
	if (o->all_platforms || !oci_mt_is_index(m->media_type))
		return 0;
	if ((r = xsel_want(&want, o, err)) < 0)
		return r;
	for (int depth = 0; r == 0 && oci_mt_is_index(m->media_type); depth++) {
		if (depth == XSEL_DEPTH)
			return dimg_err_set(err, -ELOOP, NULL,
			                    "image indexes nested more than %d deep", XSEL_DEPTH);
		r = xsel_step(m, &want, fetch, ctx, err);
	}
	if (r == 0 && !oci_mt_is_manifest(m->media_type)) {
		char ds[OCI_DIGEST_LEN];
		oci_digest_str(ds, m->digest);
		r = dimg_err_set(err, -ENOTSUP, ds, "not an image manifest: %s", m->media_type);
	}
	return r;
}
