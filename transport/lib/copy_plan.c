/* The copy's plan: each source's manifest (and an index's manifests),
 * every blob they need once, what --exclude-from images hold, what the
 * destination has, and what neither side has. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "copy-internal.h"

#define XC_DEPTH 4

void xc_event(struct xc *c, enum xcopy_event_kind k, size_t i)
{
	struct xcopy_event ev = {.kind = k, .index = i + 1, .count = c->nb};
	if (!c->o->event)
		return;
	if (k == XCOPY_EV_BLOB) {
		const struct xc_blob *b = &c->b[i];
		ev.desc = &b->d;
		ev.status = b->st;
		ev.done = b->done;
		ev.resumed = b->resumed;
	}
	for (size_t j = 0; k == XCOPY_EV_PLAN && j < c->nb; j++)
		ev.done += c->b[j].st == XCOPY_WAITING ? c->b[j].d.size : 0;
	c->o->event(c->o->ectx, &ev);
}

typedef int (*xc_blob_fn)(struct xc *c, size_t src, const struct oci_desc *d);

static int xc_add_blob(struct xc *c, size_t src, const struct oci_desc *d)
{
	for (size_t i = 0; i < c->nb; i++)
		if (memcmp(c->b[i].d.digest, d->digest, 32) == 0)
			return 0; /* several images share it */
	if (c->nb == c->capb) {
		size_t nc = c->capb ? c->capb * 2 : 16;
		struct xc_blob *v = realloc(c->b, nc * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->b = v;
		c->capb = nc;
	}
	struct xc_blob *b = &c->b[c->nb];
	memset(b, 0, sizeof(*b));
	b->d = *d;
	b->d.artifact_type = NULL;
	b->d.media_type = d->media_type ? strdup(d->media_type) : NULL;
	b->src = src;
	if (d->media_type && !b->d.media_type)
		return -ENOMEM;
	c->nb++;
	return 0;
}

static int xc_add_excluded(struct xc *c, size_t src, const struct oci_desc *d)
{
	uint8_t(*v)[32] = realloc(c->excl, (c->nexcl + 1) * 32);
	(void)src;
	if (!v)
		return -ENOMEM;
	c->excl = v;
	memcpy(c->excl[c->nexcl++], d->digest, 32);
	return 0;
}

static int xc_keep_sub(struct xc_image *img, struct xport_manifest *m)
{
	struct xport_manifest *v = realloc(img->sub, (img->nsub + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	img->sub = v;
	v[img->nsub++] = *m;
	memset(m, 0, sizeof(*m));
	return 0;
}

static int xc_walk(struct xc *c, size_t si, struct xport *x, const struct xport_manifest *m,
                   int depth, struct xc_image *img, xc_blob_fn fn, struct dimg_err *err);

/* An index's manifest: read, checked against its descriptor, walked. */
static int xc_walk_sub(struct xc *c, size_t si, struct xport *x, const struct oci_desc *d,
                       int depth, struct xc_image *img, xc_blob_fn fn, struct dimg_err *err)
{
	struct xport_manifest sub;
	char ds[OCI_DIGEST_LEN];
	oci_digest_str(ds, d->digest);
	if (depth >= XC_DEPTH)
		return dimg_err_set(err, -ELOOP, ds, "indexes nested more than %d deep", XC_DEPTH);
	struct dimg_err e = {0};
	int r = xport_get_manifest_digest(x, d->digest, &sub, &e);
	if (r == -ENOENT && !img)
		r = 1; /* a base image need not hold every platform's image */
	else if (r < 0)
		dimg_err_set(err, r, e.what[0] ? e.what : NULL, "%s", e.why);
	if (r == 0 && sub.len != d->size)
		r = xverify_fail(err, d->digest,
		                 "a manifest of %zu bytes, its descriptor states %llu", sub.len,
		                 (unsigned long long)d->size);
	if (r == 0)
		r = xc_walk(c, si, x, &sub, depth + 1, img, fn, err);
	if (r == 0 && img)
		r = xc_keep_sub(img, &sub);
	xport_manifest_clear(&sub);
	return r == 1 ? 0 : r;
}

static int xc_walk(struct xc *c, size_t si, struct xport *x, const struct xport_manifest *m,
                   int depth, struct xc_image *img, xc_blob_fn fn, struct dimg_err *err)
{
	struct json_object *doc;
	struct oci_desc *v;
	size_t n;
	int index = oci_mt_is_index(m->media_type);
	int r = xman_children(m, &doc, &v, &n, err);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = index ? xc_walk_sub(c, si, x, &v[i], depth, img, fn, err) : fn(c, si, &v[i]);
	free(v);
	json_object_put(doc);
	return r;
}

/* Several images in one layout: each under a name of its own. */
static int xc_names_differ(const struct xc *c, struct dimg_err *err)
{
	for (size_t i = 0; c->nimg > 1 && i < c->nimg; i++)
		for (size_t j = 0; c->img[i].top.ref && j < i; j++)
			if (c->img[j].top.ref && strcmp(c->img[i].top.ref, c->img[j].top.ref) == 0)
				return dimg_err_set(err, -EINVAL, c->img[i].top.ref,
				                    "two of the images have that name");
	return 0;
}

int xc_plan(struct xc *c, const struct xport_name *src, size_t nsrc, struct dimg_err *err)
{
	if (!(c->img = calloc(nsrc, sizeof(*c->img))))
		return -ENOMEM;
	c->nimg = nsrc;
	for (size_t i = 0; i < nsrc; i++) {
		struct xc_image *img = &c->img[i];
		int r = xport_open(&img->x, &src[i], 0, &c->o->x, err);
		if (r == 0)
			r = xport_get_manifest(img->x, &img->top, err);
		if (r == 0)
			r = xc_walk(c, i, img->x, &img->top, 0, img, xc_add_blob, err);
		if (r < 0)
			return r;
	}
	return xc_names_differ(c, err);
}

static int xc_digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

int xc_exclusions(struct xc *c, struct dimg_err *err)
{
	for (size_t i = 0; i < c->o->nexclude; i++) {
		struct xport *x = NULL;
		struct xport_manifest m = {0};
		int r = xport_open(&x, &c->o->exclude[i], 0, &c->o->x, err);
		if (r == 0)
			r = xport_get_manifest(x, &m, err);
		if (r == 0)
			r = xc_walk(c, 0, x, &m, 0, NULL, xc_add_excluded, err);
		xport_manifest_clear(&m);
		xport_close(x);
		if (r < 0)
			return r;
	}
	if (c->nexcl)
		qsort(c->excl, c->nexcl, 32, xc_digest_cmp);
	return 0;
}

static int xc_missing_add(struct xc *c, const struct xc_blob *b)
{
	struct xcopy_result *res = c->res;
	char(*v)[OCI_DIGEST_LEN] = realloc(res->missing, (res->nmissing + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	res->missing = v;
	oci_digest_str(v[res->nmissing++], b->d.digest);
	return 0;
}

/* Names the missing blobs (as many as err holds). */
static int xc_missing_fail(struct xc *c, struct dimg_err *err)
{
	char what[DIMG_ERR_WHAT_MAX] = "";
	size_t len = 0, n = c->res->nmissing;
	for (size_t i = 0; i < n && len + OCI_DIGEST_LEN + 16 < sizeof(what); i++)
		len += (size_t)snprintf(what + len, sizeof(what) - len, "%s%s", i ? ", " : "",
		                        c->res->missing[i]);
	if (len + OCI_DIGEST_LEN + 16 >= sizeof(what))
		snprintf(what + len, sizeof(what) - len, ", ...");
	return dimg_err_set(err, -ENODATA, what,
	                    "%zu blob%s in neither the source nor the destination (a partial "
	                    "archive completes only where its base image is)",
	                    n, n == 1 ? " is" : "s are");
}

/* Asks x, in one batch, about the blobs not yet placed: of every source
 * (src == c->nimg, x the destination: those it has are not sent) or of
 * source src (those it lacks are missing). d, idx, have: scratch. */
static int xc_ask(struct xc *c, struct xport *x, size_t src, struct oci_desc *d, size_t *idx,
                  uint8_t *have, struct dimg_err *err)
{
	size_t n = 0;
	for (size_t i = 0; i < c->nb; i++)
		if (c->b[i].st == XCOPY_WAITING && (src == c->nimg || c->b[i].src == src)) {
			d[n] = c->b[i].d;
			idx[n++] = i;
		}
	int r = n ? xport_has_blobs(x, d, n, have, err) : 0;
	for (size_t k = 0; r == 0 && k < n; k++)
		if (have[k] && src == c->nimg)
			c->b[idx[k]].st = XCOPY_EXISTS;
		else if (!have[k] && src < c->nimg)
			r = xc_missing_add(c, &c->b[idx[k]]);
	return r;
}

int xc_classify(struct xc *c, struct dimg_err *err)
{
	size_t n = c->nb ? c->nb : 1;
	struct oci_desc *d = calloc(n, sizeof(*d));
	size_t *idx = calloc(n, sizeof(*idx));
	uint8_t *have = calloc(n, 1);
	int r = d && idx && have ? 0 : -ENOMEM;
	for (size_t i = 0; r == 0 && i < c->nb; i++)
		if (c->nexcl && bsearch(c->b[i].d.digest, c->excl, c->nexcl, 32, xc_digest_cmp))
			c->b[i].st = XCOPY_EXCLUDED;
	if (r == 0) /* what the destination has: never sent */
		r = xc_ask(c, c->dst, c->nimg, d, idx, have, err);
	for (size_t s = 0; r == 0 && s < c->nimg; s++) /* what no side has */
		r = xc_ask(c, c->img[s].x, s, d, idx, have, err);
	free(d);
	free(idx);
	free(have);
	if (r < 0)
		return r;
	return c->res->nmissing ? xc_missing_fail(c, err) : 0;
}

void xc_free(struct xc *c)
{
	for (size_t i = 0; i < c->nimg; i++) {
		struct xc_image *img = &c->img[i];
		xport_close(img->x);
		xport_manifest_clear(&img->top);
		for (size_t j = 0; j < img->nsub; j++)
			xport_manifest_clear(&img->sub[j]);
		free(img->sub);
	}
	for (size_t i = 0; i < c->nb; i++)
		free((char *)c->b[i].d.media_type);
	free(c->img);
	free(c->b);
	free(c->excl);
	free(c->cache_dir);
	xport_close(c->dst);
}
