/* containerd: images in containerd's content store and image records,
 * through its gRPC API (ctrd/). Built as the module di3fs-xport-containerd.so
 * that the transport library loads when a containerd: name is opened.
 * What a copy writes is held by a lease until the image record exists;
 * each manifest carries the gc labels that keep its blobs afterwards. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ctrd.h"
#include "transport-internal.h"

#define CTD_CONNECT_MS 5000
#define CTD_LEASE_S    (24 * 3600)

struct ctd_image {
	char *name;
	char media_type[128];
	char digest[OCI_DIGEST_LEN];
	size_t size;
};

struct ctd {
	struct ctrd *c;
	char *name; /* the image record's: NAME[:TAG] */
	int leased;
	pthread_mutex_t mu;
	struct ctd_image *img; /* records to create at commit */
	size_t nimg;
};

/* What ctrd said (why: the call and containerd's words) into err, naming
 * what failed. ctrd's calls get their own struct dimg_err: they replace
 * what it held, and err may already say more (a source that refused). */
static int ctd_fail(struct dimg_err *err, int r, const char *what, const struct dimg_err *ce)
{
	return dimg_err_set(err, r, what, "%s", ce->why[0] ? ce->why : strerror(-r));
}

static int ctd_open(struct xport *x, struct dimg_err *err)
{
	struct ctd *d = calloc(1, sizeof(*d));
	struct dimg_err ce = {0};
	if (!d)
		return -ENOMEM;
	x->priv = d;
	pthread_mutex_init(&d->mu, NULL);
	if (asprintf(&d->name, "%s%s%s", x->name.where, x->name.ref ? ":" : "",
	             x->name.ref ? x->name.ref : "") < 0) {
		d->name = NULL;
		return -ENOMEM;
	}
	int r = ctrd_connect(&d->c, x->opts.address, x->opts.ns, CTD_CONNECT_MS, &ce);
	if (r == 0 && x->write && (r = ctrd_lease_create(d->c, CTD_LEASE_S, &ce)) == 0)
		d->leased = 1;
	return r < 0 ? ctd_fail(err, r, "containerd", &ce) : 0;
}

static void ctd_close(struct xport *x)
{
	struct ctd *d = x->priv;
	if (!d)
		return;
	if (d->leased)
		ctrd_lease_delete(d->c, NULL); /* uncommitted: what was written goes to gc */
	ctrd_close(d->c);
	for (size_t i = 0; i < d->nimg; i++)
		free(d->img[i].name);
	free(d->img);
	free(d->name);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

static int ctd_get_digest(struct xport *x, const uint8_t digest[32], struct xport_manifest *out,
                          struct dimg_err *err)
{
	struct ctd *d = x->priv;
	struct dimg_err ce = {0};
	char ds[OCI_DIGEST_LEN];
	uint8_t *raw;
	size_t len;
	memset(out, 0, sizeof(*out));
	oci_digest_str(ds, digest);
	int r = ctrd_content_get(d->c, ds, OCI_JSON_MAX, &raw, &len, &ce);
	if (r == -ENOENT)
		return dimg_err_set(err, r, ds, "not in containerd's content store");
	if (r < 0)
		return ctd_fail(err, r, ds, &ce);
	return xman_take(out, raw, len, NULL, digest, err);
}

static int ctd_fetch(void *ctx, const struct oci_desc *d, struct xport_manifest *out,
                     struct dimg_err *err)
{
	return ctd_get_digest(ctx, d->digest, out, err);
}

/* The record's target: its manifest or index. */
static int ctd_record(struct xport *x, struct xport_manifest *out, struct dimg_err *err)
{
	struct ctd *d = x->priv;
	struct ctrd_image img;
	uint8_t want[32];
	struct dimg_err ce = {0};
	int r = ctrd_image_get(d->c, d->name, &img, &ce);
	if (r == -ENOENT)
		return dimg_err_set(err, r, d->name, "no such image in containerd (namespace %s)",
		                    x->opts.ns ? x->opts.ns : CTRD_DEFAULT_NAMESPACE);
	if (r < 0)
		return ctd_fail(err, r, d->name, &ce);
	r = oci_digest_parse(want, img.digest);
	if (r < 0)
		dimg_err_set(err, r, d->name, "an image record with a bad digest");
	if (r == 0)
		r = ctd_get_digest(x, want, out, err);
	if (r == 0 && oci_mt_is_index(img.media_type) + oci_mt_is_manifest(img.media_type))
		snprintf(out->media_type, sizeof(out->media_type), "%s", img.media_type);
	ctrd_image_clear(&img);
	return r;
}

static int ctd_get_manifest(struct xport *x, struct xport_manifest *out, struct dimg_err *err)
{
	struct ctd *d = x->priv;
	uint8_t dg[32];
	int r;
	if (x->name.digest) {
		r = oci_digest_parse(dg, x->name.digest);
		r = r < 0 ? dimg_err_set(err, r, x->name.digest, NULL)
		          : ctd_get_digest(x, dg, out, err);
	} else {
		r = ctd_record(x, out, err);
	}
	if (r == 0 && !(out->ref = strdup(d->name)))
		r = -ENOMEM;
	if (r == 0)
		r = xsel_platform(out, &x->opts, ctd_fetch, x, err);
	if (r < 0)
		xport_manifest_clear(out);
	return r;
}

static int ctd_has_blob(struct xport *x, const struct oci_desc *desc, struct dimg_err *err)
{
	struct ctd *d = x->priv;
	struct dimg_err ce = {0};
	char ds[OCI_DIGEST_LEN];
	int64_t size;
	oci_digest_str(ds, desc->digest);
	int r = ctrd_content_info(d->c, ds, &size, &ce);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return ctd_fail(err, r, ds, &ce);
	return size >= 0 && (uint64_t)size == desc->size;
}

static int ctd_get_blob(struct xport *x, const struct oci_desc *desc, uint64_t offset,
                        dimg_write_fn sink, void *ctx, struct dimg_err *err)
{
	struct ctd *d = x->priv;
	struct dimg_err ce = {0};
	char ds[OCI_DIGEST_LEN];
	oci_digest_str(ds, desc->digest);
	int r = ctrd_content_read_at(d->c, ds, (int64_t)offset, sink, ctx, &ce);
	return r < 0 ? ctd_fail(err, r, ds, &ce) : 0;
}

/* A source checked as containerd pulls from it. */
struct ctd_src {
	xport_read_fn src;
	void *ctx;
	struct xverify v;
	struct dimg_err *err;
};

static ssize_t ctd_src_read(void *ctx, void *p, size_t n)
{
	struct ctd_src *s = ctx;
	ssize_t k = s->src(s->ctx, p, n);
	if (k > 0 && xverify_update(&s->v, p, (size_t)k) < 0)
		return xverify_final(&s->v, s->err);
	if (k == 0)
		return xverify_final(&s->v, s->err);
	return k;
}

static int ctd_write(struct xport *x, const struct oci_desc *desc, xport_read_fn src, void *ctx,
                     const struct ctrd_label *labels, size_t n, struct dimg_err *err)
{
	struct ctd *d = x->priv;
	struct ctd_src s = {.src = src, .ctx = ctx, .err = err};
	struct dimg_err ce = {0};
	char ds[OCI_DIGEST_LEN];
	oci_digest_str(ds, desc->digest);
	int r = xverify_init(&s.v, desc);
	if (r == 0)
		r = ctrd_content_write_from(d->c, ds, desc->size, ctd_src_read, &s, labels, n, &ce);
	xverify_free(&s.v);
	if (r == -EBADMSG || r == -ECANCELED) /* ours, or the source's, err says */
		return dimg_err_set(err, r, ds, NULL);
	return r < 0 ? ctd_fail(err, r, ds, &ce) : 0;
}

static int ctd_put_blob(struct xport *x, const struct oci_desc *desc, xport_read_fn src, void *ctx,
                        struct dimg_err *err)
{
	return ctd_write(x, desc, src, ctx, NULL, 0, err);
}

/* containerd's gc labels: a manifest holds its config (".config") and
 * layers (".l.<i>"), an index its manifests (".m.<i>"). */
struct ctd_labels {
	struct ctrd_label *l;
	char (*keys)[64];
	char (*vals)[OCI_DIGEST_LEN];
	size_t n;
};

static void ctd_labels_free(struct ctd_labels *g)
{
	free(g->l);
	free(g->keys);
	free(g->vals);
}

static int ctd_labels(struct ctd_labels *g, const struct xport_manifest *m, struct dimg_err *err)
{
	struct json_object *doc;
	struct oci_desc *v;
	size_t n;
	int index = oci_mt_is_index(m->media_type);
	memset(g, 0, sizeof(*g));
	int r = xman_children(m, &doc, &v, &n, err);
	if (r < 0)
		return r;
	g->l = calloc(n ? n : 1, sizeof(*g->l));
	g->keys = calloc(n ? n : 1, sizeof(*g->keys));
	g->vals = calloc(n ? n : 1, sizeof(*g->vals));
	for (size_t i = 0; g->l && g->keys && g->vals && i < n; i++) {
		if (index)
			snprintf(g->keys[i], sizeof(g->keys[i]),
			         "containerd.io/gc.ref.content.m.%zu", i);
		else if (i == 0)
			snprintf(g->keys[i], sizeof(g->keys[i]),
			         "containerd.io/gc.ref.content.config");
		else
			snprintf(g->keys[i], sizeof(g->keys[i]),
			         "containerd.io/gc.ref.content.l.%zu", i - 1);
		oci_digest_str(g->vals[i], v[i].digest);
		g->l[i].key = g->keys[i];
		g->l[i].value = g->vals[i];
		g->n++;
	}
	free(v);
	json_object_put(doc);
	return g->n == n ? 0 : -ENOMEM;
}

static int ctd_remember(struct ctd *d, const struct xport_manifest *m, const char *name)
{
	pthread_mutex_lock(&d->mu);
	struct ctd_image *v = realloc(d->img, (d->nimg + 1) * sizeof(*v));
	if (v) {
		d->img = v;
		memset(&v[d->nimg], 0, sizeof(*v));
		snprintf(v[d->nimg].media_type, sizeof(v->media_type), "%s", m->media_type);
		oci_digest_str(v[d->nimg].digest, m->digest);
		v[d->nimg].size = m->len;
		v[d->nimg].name = strdup(name);
		d->nimg += v[d->nimg].name != NULL;
	}
	pthread_mutex_unlock(&d->mu);
	return v && d->img[d->nimg - 1].name ? 0 : -ENOMEM;
}

static int ctd_put_manifest_ref(struct xport *x, const struct xport_manifest *m, const char *ref,
                                struct dimg_err *err)
{
	struct ctd *d = x->priv;
	struct ctd_labels g;
	struct xmem mem = {m->raw, m->len, 0};
	struct oci_desc desc = {.size = m->len, .media_type = m->media_type};
	memcpy(desc.digest, m->digest, 32);
	int r = ctd_labels(&g, m, err);
	if (r == 0)
		r = ctd_write(x, &desc, xmem_read, &mem, g.l, g.n, err);
	ctd_labels_free(&g);
	if (r < 0 || (ref && !ref[0]))
		return r;
	return ctd_remember(d, m, ref ? ref : d->name);
}

static int ctd_put_manifest(struct xport *x, const struct xport_manifest *m, struct dimg_err *err)
{
	return ctd_put_manifest_ref(x, m, NULL, err);
}

/* The image records, then the lease goes: from now on they hold it all. */
static int ctd_commit(struct xport *x, struct dimg_err *err)
{
	struct ctd *d = x->priv;
	struct dimg_err ce = {0};
	for (size_t i = 0; i < d->nimg; i++) {
		struct ctrd_image img = {.name = d->img[i].name,
		                         .media_type = d->img[i].media_type,
		                         .digest = d->img[i].digest,
		                         .size = (int64_t)d->img[i].size};
		int r = ctrd_image_put(d->c, &img, NULL, 0, &ce);
		if (r < 0)
			return ctd_fail(err, r, d->img[i].name, &ce);
	}
	d->leased = 0;
	ctrd_lease_delete(d->c, NULL); /* failing, it expires by itself */
	return 0;
}

const struct xport_ops xport_containerd_ops = {
    .kind = XPORT_CONTAINERD,
    .open = ctd_open,
    .close = ctd_close,
    .get_manifest = ctd_get_manifest,
    .get_manifest_digest = ctd_get_digest,
    .has_blob = ctd_has_blob,
    .get_blob = ctd_get_blob,
    .put_blob = ctd_put_blob,
    .mount_blob = NULL,
    .put_manifest = ctd_put_manifest,
    .commit = ctd_commit,
    .put_manifest_ref = ctd_put_manifest_ref,
    .note_excluded = NULL,
};
