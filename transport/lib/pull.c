/* cdimg pull, the registry side (di3fs/pull.h): the deltas of a repository
 * and one of them rebuilt into its .cdimg. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cdimg.h"
#include "copy-internal.h"
#include "di3fs/pull.h"
#include "di3fs/registry.h"
#include "di3fs/xcopy.h"
#include "dimg/tree.h"
#include "transport-internal.h"

struct xpull {
	struct reg *r;     /* referrers and tags */
	struct xport *src; /* manifests and blobs, verified */
	struct xport_name name;
	struct xport_opts o;
	char *host, *repo, *cache;
	char where[600]; /* HOST/REPO */
	struct xpull_delta *v;
	size_t n, cap, skipped;
};

const char *xpull_repo_name(const struct xpull *p)
{
	return p->where;
}

struct xport *xpull_source(struct xpull *p)
{
	return p->src;
}

const char *xpull_cache_dir(const struct xpull *p)
{
	return p->cache;
}

void xpull_target_clear(struct xpull_target *t)
{
	xport_manifest_clear(&t->man);
	free(t->layers);
	memset(t, 0, sizeof(*t));
}

void xpull_close(struct xpull *p)
{
	if (!p)
		return;
	reg_close(p->r);
	xport_close(p->src);
	xport_name_clear(&p->name);
	free(p->host);
	free(p->repo);
	free(p->cache);
	free(p->v);
	free(p);
}

static int name_dup(struct xport_name *dst, const struct xport_name *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->kind = src->kind;
	if (!(dst->where = strdup(src->where)) || (src->ref && !(dst->ref = strdup(src->ref))) ||
	    (src->digest && !(dst->digest = strdup(src->digest)))) {
		xport_name_clear(dst);
		return -ENOMEM;
	}
	return 0;
}

int xpull_open(struct xpull **out, const struct xport_name *img, const struct xport_opts *o,
               struct dimg_err *err)
{
	struct xpull *p = calloc(1, sizeof(*p));
	struct reg_opts ro;
	int rc = p ? 0 : -ENOMEM;

	*out = NULL;
	if (rc == 0 && img->kind != XPORT_DOCKER)
		rc = dimg_err_set(err, -EINVAL, img->where, "pull reads docker://HOST/REPO:TAG");
	if (rc == 0)
		rc = name_dup(&p->name, img);
	if (rc == 0) {
		p->o = *o;
		p->cache = o->cache_dir ? strdup(o->cache_dir) : xcopy_default_cache_dir();
		p->o.cache_dir = p->cache;
		rc = p->cache ? docker_split_where(img->where, &p->host, &p->repo) : -ENOMEM;
	}
	if (rc == 0) {
		snprintf(p->where, sizeof(p->where), "%s/%s", p->host, p->repo);
		docker_reg_opts(&ro, &p->o);
		ro.progress = NULL; /* listings are small */
		rc = reg_open(&p->r, docker_api_host(p->host), &ro, err);
	}
	if (rc == 0)
		rc = xport_open(&p->src, &p->name, 0, &p->o, err);
	if (rc < 0) {
		xpull_close(p);
		return rc == -ENOMEM ? dimg_err_set(err, rc, NULL, NULL) : rc;
	}
	*out = p;
	return 0;
}

int xpull_target(struct xpull *p, struct xpull_target *t, struct dimg_err *err)
{
	struct json_object *doc = NULL;
	struct oci_desc *v = NULL;
	size_t n = 0;
	int rc;

	memset(t, 0, sizeof(*t));
	rc = xport_get_manifest(p->src, &t->man, err);
	if (rc == 0 && !oci_mt_is_manifest(t->man.media_type))
		rc = dimg_err_set(err, -ENOTSUP, p->where, "not an image manifest (%s)",
		                  t->man.media_type);
	if (rc == 0)
		rc = xman_children(&t->man, &doc, &v, &n, err);
	if (rc == 0 && n == 0)
		rc = dimg_err_set(err, -EBADMSG, p->where, "a manifest without a config");
	if (rc == 0) {
		oci_digest_str(t->config_digest, v[0].digest);
		memmove(v, v + 1, (n - 1) * sizeof(*v));
		t->layers = v;
		t->nlayers = n - 1;
		v = NULL;
		for (size_t i = 0; i < t->nlayers; i++) {
			t->layers[i].media_type = t->layers[i].artifact_type = NULL;
			t->layers_size += t->layers[i].size;
		}
	}
	free(v);
	json_object_put(doc);
	if (rc < 0)
		xpull_target_clear(t);
	return rc;
}

/* ---- finding the deltas ---- */

static int hex_tree(uint8_t out[32], const char *s)
{
	return s && strlen(s) == 64 && oci_hex_decode(out, 32, s, 64) == 0 ? 0 : -EBADMSG;
}

static int dig(char out[OCI_DIGEST_LEN], const char *s)
{
	if (!s || !oci_digest_valid(s) || strlen(s) >= OCI_DIGEST_LEN)
		return -EBADMSG;
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

/* d from an artifact manifest (checked as its digest says it is). */
static int delta_parse(struct xpull_delta *d, const struct xport_manifest *m, const char *subject)
{
	struct json_object *o = NULL, *layers, *an;
	int rc = oci_json_parse(&o, m->raw, m->len);
	struct oci_desc ld;

	memset(d, 0, sizeof(*d));
	oci_digest_str(d->digest, m->digest);
	d->cost = m->len;
	an = rc == 0 ? oci_jobj(o, "annotations") : NULL;
	layers = rc == 0 ? oci_jarr(o, "layers") : NULL;
	if (!an || !layers || !oci_jstr(o, "artifactType") ||
	    strcmp(oci_jstr(o, "artifactType"), DI3FS_ARTIFACT_TYPE) ||
	    !oci_jstr(oci_jobj(o, "subject"), "digest") ||
	    strcmp(oci_jstr(oci_jobj(o, "subject"), "digest"), subject))
		rc = -EBADMSG;
	if (rc == 0)
		rc = dig(d->subject, subject);
	if (rc == 0)
		rc = dig(d->base_config, oci_jstr(an, CDIMG_ANNOT_BASE_CONFIG));
	if (rc == 0)
		rc = dig(d->target_config, oci_jstr(an, CDIMG_ANNOT_TARGET_CONFIG));
	if (rc == 0)
		rc = hex_tree(d->base_tree, oci_jstr(an, CDIMG_ANNOT_BASE_TREE));
	if (rc == 0)
		rc = hex_tree(d->target_tree, oci_jstr(an, CDIMG_ANNOT_TARGET_TREE));
	for (size_t i = 0; rc == 0 && i < json_object_array_length(layers); i++) {
		rc = oci_desc_parse(&ld, json_object_array_get_idx(layers, i));
		if (rc == 0 && (ld.size > UINT64_MAX / 4 || d->cost > UINT64_MAX / 2))
			rc = -EBADMSG;
		d->cost += ld.size;
	}
	json_object_put(o);
	return rc < 0 ? -EBADMSG : 0;
}

static int delta_add(struct xpull *p, const struct xpull_delta *d)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->v[i].digest, d->digest))
			return 0;
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 16;
		struct xpull_delta *v = realloc(p->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = *d;
	return 1;
}

struct found {
	char (*digest)[OCI_DIGEST_LEN];
	size_t n;
};

/* Collects the artifact digests a referrers index lists (ours only). */
static int found_fn(void *ctx, struct json_object *desc)
{
	struct found *f = ctx;
	const char *d = oci_jstr(desc, "digest"), *at = oci_jstr(desc, "artifactType");

	if (f->n == XPULL_MAX_REFERRERS || !d || !oci_digest_valid(d) ||
	    strlen(d) >= OCI_DIGEST_LEN || (at && strcmp(at, DI3FS_ARTIFACT_TYPE)))
		return 0;
	memcpy(f->digest[f->n++], d, strlen(d) + 1);
	return 0;
}

/* The referrers tag schema: the index tagged sha256-<hex>, if any. */
static int tag_list(struct xpull *p, const char *subject, struct found *f, struct dimg_err *err)
{
	struct reg_manifest m = {0};
	struct json_object *o = NULL, *ms;
	char tag[80];
	int rc;

	snprintf(tag, sizeof(tag), "sha256-%s", subject + 7);
	rc = reg_manifest_get(p->r, p->repo, tag, &m, err);
	if (rc == -ENOENT) {
		dimg_err_clear(err);
		return 0;
	}
	if (rc == 0)
		rc = oci_json_parse(&o, m.raw, m.len);
	reg_manifest_clear(&m);
	if (rc == 0 && (ms = oci_jarr(o, "manifests")) != NULL)
		for (size_t i = 0; i < json_object_array_length(ms); i++)
			found_fn(f, json_object_array_get_idx(ms, i));
	json_object_put(o);
	return rc == -EBADMSG || rc == -ENOTSUP ? 0 : rc; /* a broken index lists nothing */
}

/* Reads and checks each listed artifact; a malformed one is skipped. */
static int add_found(struct xpull *p, const char *subject, const struct found *f,
                     struct dimg_err *err)
{
	int added = 0;

	for (size_t i = 0; i < f->n; i++) {
		struct xport_manifest m = {0};
		struct xpull_delta d;
		uint8_t dg[32];
		struct dimg_err e = {0};
		int rc = oci_digest_parse(dg, f->digest[i]);

		if (rc == 0)
			rc = xport_get_manifest_digest(p->src, dg, &m, &e);
		if (rc == -ENOMEM) {
			xport_manifest_clear(&m);
			return dimg_err_set(err, rc, NULL, NULL);
		}
		if (rc == 0)
			rc = delta_parse(&d, &m, subject);
		xport_manifest_clear(&m);
		if (rc < 0) {
			p->skipped++;
			continue;
		}
		if ((rc = delta_add(p, &d)) < 0)
			return dimg_err_set(err, rc, NULL, NULL);
		added += rc;
	}
	return added;
}

int xpull_find(struct xpull *p, const char *subject, struct dimg_err *err)
{
	struct found f = {calloc(XPULL_MAX_REFERRERS, OCI_DIGEST_LEN), 0};
	uint8_t dg[32];
	int rc = f.digest ? oci_digest_parse(dg, subject) : -ENOMEM;

	if (rc == 0) {
		rc = reg_referrers(p->r, p->repo, dg, DI3FS_ARTIFACT_TYPE, found_fn, &f, err);
		if (rc == -ENOTSUP) {
			dimg_err_clear(err);
			rc = tag_list(p, subject, &f, err);
		}
	}
	if (rc >= 0)
		rc = add_found(p, subject, &f, err);
	free(f.digest);
	return rc == -ENOMEM ? dimg_err_set(err, rc, NULL, NULL) : rc;
}

struct tags {
	char **v;
	size_t n, max;
};

static int tag_fn(void *ctx, const char *tag)
{
	struct tags *t = ctx;
	if (strncmp(tag, "sha256-", 7) == 0) /* referrers indexes */
		return 0;
	if (t->n == t->max)
		return 1;
	return (t->v[t->n] = strdup(tag)) ? (t->n++, 0) : -ENOMEM;
}

int xpull_find_all(struct xpull *p, unsigned max_tags, struct dimg_err *err)
{
	struct tags t = {calloc(max_tags + 1, sizeof(char *)), 0, max_tags};
	int rc = t.v ? reg_tags_list(p->r, p->repo, tag_fn, &t, err) : -ENOMEM, added = 0;

	if (rc == 1)
		rc = 0;
	for (size_t i = 0; rc >= 0 && i < t.n; i++) {
		struct reg_manifest m = {0};
		char dg[OCI_DIGEST_LEN];
		struct dimg_err e = {0};

		if (reg_manifest_resolve(p->r, p->repo, t.v[i], p->o.platform, &m, &e) == 0) {
			oci_digest_str(dg, m.digest);
			rc = xpull_find(p, dg, err);
			added += rc > 0 ? rc : 0;
		}
		reg_manifest_clear(&m);
	}
	for (size_t i = 0; i < t.n; i++)
		free(t.v[i]);
	free(t.v);
	return rc < 0 ? (rc == -ENOMEM ? dimg_err_set(err, rc, NULL, NULL) : rc) : added;
}

const struct xpull_delta *xpull_deltas(const struct xpull *p, size_t *n, size_t *skipped)
{
	*n = p->n;
	if (skipped)
		*skipped = p->skipped;
	return p->v;
}
