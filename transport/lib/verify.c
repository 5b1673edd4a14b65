/* Blobs checked as they stream, and manifests taken in with their digest:
 * what every backend (and the containerd module) shares. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "transport-internal.h"

int xverify_fail(struct dimg_err *err, const uint8_t digest[32], const char *fmt, ...)
{
	char ds[OCI_DIGEST_LEN], why[DIMG_ERR_WHY_MAX];
	va_list ap;
	oci_digest_str(ds, digest);
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return dimg_err_set(err, -EBADMSG, ds, "%s", why);
}

int xverify_init(struct xverify *v, const struct oci_desc *d)
{
	memset(v, 0, sizeof(*v));
	v->size = d->size;
	memcpy(v->digest, d->digest, 32);
	return dimg_sha256_new(&v->h);
}

int xverify_update(struct xverify *v, const void *p, size_t n)
{
	if (n > v->size - v->n) {
		v->n = v->size + 1; /* remembered for xverify_final's message */
		return -EBADMSG;
	}
	dimg_sha256_update(v->h, p, n);
	v->n += n;
	return 0;
}

int xverify_final(struct xverify *v, struct dimg_err *err)
{
	uint8_t got[32];
	if (v->n > v->size)
		return xverify_fail(err, v->digest,
		                    "more than the %" PRIu64 " bytes its descriptor states",
		                    v->size);
	if (v->n != v->size)
		return xverify_fail(err, v->digest,
		                    "%" PRIu64 " bytes, its descriptor states %" PRIu64, v->n,
		                    v->size);
	dimg_sha256_final(v->h, got);
	if (memcmp(got, v->digest, 32) != 0) {
		char gs[OCI_DIGEST_LEN];
		oci_digest_str(gs, got);
		return xverify_fail(err, v->digest, "content has digest %s", gs);
	}
	return 0;
}

void xverify_free(struct xverify *v)
{
	dimg_sha256_free(v->h);
	v->h = NULL;
}

void xport_manifest_clear(struct xport_manifest *m)
{
	if (!m)
		return;
	free(m->raw);
	free(m->ref);
	memset(m, 0, sizeof(*m));
}

ssize_t xmem_read(void *ctx, void *p, size_t n)
{
	struct xmem *m = ctx;
	size_t k = m->n - m->off < n ? m->n - m->off : n;
	memcpy(p, m->p + m->off, k);
	m->off += k;
	return (ssize_t)k;
}

/* A document without mediaType: an index has manifests, a manifest a config. */
static const char *xman_guess(struct json_object *o)
{
	if (oci_jarr(o, "manifests"))
		return OCI_MT_INDEX;
	if (oci_jobj(o, "config"))
		return OCI_MT_MANIFEST;
	return NULL;
}

int xman_take(struct xport_manifest *m, uint8_t *raw, size_t len, const char *hint,
              const uint8_t *want, struct dimg_err *err)
{
	struct json_object *o = NULL;
	char ds[OCI_DIGEST_LEN];
	int r = dimg_sha256_buf(raw, len, m->digest);
	m->raw = raw;
	m->len = len;
	if (r == 0 && want && memcmp(want, m->digest, 32) != 0) {
		oci_digest_str(ds, m->digest);
		return xverify_fail(err, want, "manifest content has digest %s", ds);
	}
	if (r == 0 && oci_json_parse(&o, raw, len) < 0) {
		oci_digest_str(ds, m->digest);
		return dimg_err_set(err, -EBADMSG, ds, "a manifest that is not valid JSON");
	}
	const char *mt = oci_jstr(o, "mediaType");
	if (!mt)
		mt = hint ? hint : xman_guess(o);
	if (r == 0 && (!mt || strlen(mt) >= sizeof(m->media_type))) {
		oci_digest_str(ds, m->digest);
		r = dimg_err_set(err, -EBADMSG, ds, "neither an image manifest nor an index");
	}
	if (r == 0)
		snprintf(m->media_type, sizeof(m->media_type), "%s", mt);
	json_object_put(o);
	return r;
}

int xman_copy(struct xport_manifest *dst, const struct xport_manifest *src)
{
	*dst = *src;
	dst->raw = malloc(src->len ? src->len : 1);
	dst->ref = src->ref ? strdup(src->ref) : NULL;
	if (!dst->raw || (src->ref && !dst->ref)) {
		free(dst->raw);
		free(dst->ref);
		memset(dst, 0, sizeof(*dst));
		return -ENOMEM;
	}
	memcpy(dst->raw, src->raw, src->len);
	return 0;
}

static int xman_push(struct oci_desc **v, size_t *n, size_t *cap, struct json_object *o)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		struct oci_desc *p = realloc(*v, nc * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = nc;
	}
	int r = oci_desc_parse(&(*v)[*n], o);
	if (r == 0)
		(*n)++;
	return r;
}

int xman_children(const struct xport_manifest *m, struct json_object **doc, struct oci_desc **v,
                  size_t *n, struct dimg_err *err)
{
	char ds[OCI_DIGEST_LEN];
	size_t cap = 0;
	int idx = oci_mt_is_index(m->media_type);
	*v = NULL;
	*n = 0;
	oci_digest_str(ds, m->digest);
	int r = oci_json_parse(doc, m->raw, m->len);
	struct json_object *arr = idx ? oci_jarr(*doc, "manifests") : oci_jarr(*doc, "layers");
	if (r == 0 && !arr)
		r = -EBADMSG;
	if (r == 0 && !idx)
		r = xman_push(v, n, &cap, oci_jobj(*doc, "config"));
	for (size_t i = 0; r == 0 && i < json_object_array_length(arr); i++)
		r = xman_push(v, n, &cap, json_object_array_get_idx(arr, i));
	if (r == 0)
		return 0;
	free(*v);
	*v = NULL;
	*n = 0;
	json_object_put(*doc);
	*doc = NULL;
	if (r == -ENOMEM)
		return dimg_err_set(err, r, ds, NULL);
	return dimg_err_set(err, r, ds, "%s",
	                    r == -ENOTSUP ? "a descriptor with another digest algorithm"
	                                  : "a malformed manifest or descriptor");
}
