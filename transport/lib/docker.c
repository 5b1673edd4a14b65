/* docker://HOST[:PORT]/REPO[:TAG|@DIGEST]: the transport over the registry
 * client (registry/). Blobs go straight to the registry (they are content-
 * addressed: nothing shows under a name); manifests by digest too (an
 * index's children must exist before it); the manifest under the
 * destination's name is kept and PUT by commit, so the name appears only
 * then.
 *
 * Options: tls_verify 0 is the default (verify) and tls_verify < 0 is
 * --tls-verify=false (no verification, and plain http where https fails,
 * as skopeo does); certs_dir is the registry's --cert-dir.
 *
 * A struct reg serves one thread at a time. Manifests, has_blob and commit
 * come from one thread (the copy's plan and its end) and use the first;
 * blobs move on several at once (cdimg copy -j): get_blob, put_blob and
 * mount_blob each take an idle one from a pool, opened as needed. */
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "di3fs/registry.h"
#include "transport-internal.h"

#define DOCKER_HUB     "docker.io"
#define DOCKER_HUB_API "registry-1.docker.io"

struct docker {
	struct reg *r;       /* manifests, has_blob, commit */
	struct reg **pool;   /* for blobs, any thread */
	unsigned char *busy; /* pool[i] in use by a call */
	size_t npool;
	pthread_mutex_t mu;
	struct reg_opts ro; /* strings borrowed from the xport's options */
	const char *api;    /* the host the registry answers on */
	char *host;         /* as named ("docker.io" for a bare name) */
	char *repo;
	struct xport_manifest pending; /* the named manifest, PUT by commit */
	int has_pending;
};

/* HOST/REPO, docker's way: the first component is a host when it has a
 * '.' or a ':' or is localhost; else Docker Hub, library/ for one name. */
int docker_split_where(const char *where, char **host, char **repo)
{
	const char *slash = strchr(where, '/');
	size_t hl = slash ? (size_t)(slash - where) : 0;
	int is_host = slash && (memchr(where, '.', hl) || memchr(where, ':', hl) ||
	                        (hl == 9 && strncmp(where, "localhost", 9) == 0));

	if (is_host) {
		*host = strndup(where, hl);
		*repo = strdup(slash + 1);
	} else {
		*host = strdup(DOCKER_HUB);
		if (asprintf(repo, "%s%s", slash ? "" : "library/", where) < 0)
			*repo = NULL;
	}
	return *host && *repo ? 0 : -ENOMEM;
}

void docker_reg_opts(struct reg_opts *ro, const struct xport_opts *o)
{
	memset(ro, 0, sizeof(*ro));
	ro->creds = o->creds;
	ro->authfile = o->authfile;
	ro->tls_insecure = o->tls_verify < 0;
	ro->http = o->tls_verify < 0 ? REG_HTTP_FALLBACK : REG_HTTPS;
	ro->cert_dir = o->certs_dir;
	ro->hosts_dir = o->hosts_dir;
	ro->progress = o->progress;
	ro->pctx = o->pctx;
}

/* A struct reg no other thread uses, until docker_put; -errno. */
static int docker_get(struct docker *d, struct reg **out, struct dimg_err *err)
{
	struct reg *r = NULL;
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->npool && !r; i++)
		if (!d->busy[i]) {
			d->busy[i] = 1;
			r = d->pool[i];
		}
	pthread_mutex_unlock(&d->mu);
	if (r) {
		*out = r;
		return 0;
	}
	int rc = reg_open(&r, d->api, &d->ro, err);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&d->mu);
	struct reg **p = realloc(d->pool, (d->npool + 1) * sizeof(*p));
	unsigned char *b = p ? realloc(d->busy, d->npool + 1) : NULL;
	if (p)
		d->pool = p;
	if (b) {
		d->busy = b;
		d->pool[d->npool] = r;
		d->busy[d->npool++] = 1;
	}
	pthread_mutex_unlock(&d->mu);
	if (!b) {
		reg_close(r);
		return -ENOMEM;
	}
	*out = r;
	return 0;
}

static void docker_put(struct docker *d, struct reg *r)
{
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->npool; i++)
		if (d->pool[i] == r)
			d->busy[i] = 0;
	pthread_mutex_unlock(&d->mu);
}

static int docker_open(struct xport *x, struct dimg_err *err)
{
	struct docker *d = calloc(1, sizeof(*d));
	int rc;

	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->mu, NULL);
	x->priv = d;
	rc = docker_split_where(x->name.where, &d->host, &d->repo);
	docker_reg_opts(&d->ro, &x->opts);
	d->api = docker_api_host(d->host);
	return rc < 0 ? rc : reg_open(&d->r, d->api, &d->ro, err);
}

const char *docker_api_host(const char *host)
{
	return host && strcmp(host, DOCKER_HUB) ? host : DOCKER_HUB_API;
}

static void docker_close(struct xport *x)
{
	struct docker *d = x->priv;

	if (!d)
		return;
	reg_close(d->r);
	for (size_t i = 0; i < d->npool; i++)
		reg_close(d->pool[i]);
	free(d->pool);
	free(d->busy);
	pthread_mutex_destroy(&d->mu);
	free(d->host);
	free(d->repo);
	free(d->pending.raw);
	free(d);
	x->priv = NULL;
}

/* The registry's manifest into the transport's shape (raw taken over). */
static void take(struct xport_manifest *out, struct reg_manifest *m)
{
	memset(out, 0, sizeof(*out));
	out->raw = m->raw;
	out->len = m->len;
	memcpy(out->digest, m->digest, 32);
	snprintf(out->media_type, sizeof(out->media_type), "%s", m->media_type);
	m->raw = NULL;
}

static int docker_get_manifest(struct xport *x, struct xport_manifest *out, struct dimg_err *err)
{
	struct docker *d = x->priv;
	const char *ref = x->name.digest ? x->name.digest : x->name.ref ? x->name.ref : "latest";
	struct reg_manifest m;
	int rc = x->opts.all_platforms
	             ? reg_manifest_get(d->r, d->repo, ref, &m, err)
	             : reg_manifest_resolve(d->r, d->repo, ref, x->opts.platform, &m, err);

	if (rc == 0)
		take(out, &m);
	/* the name the image goes by in a layout or archive it is copied to */
	if (rc == 0 && asprintf(&out->ref, "%s/%s%s%s", d->host, d->repo, x->name.ref ? ":" : "",
	                        x->name.ref ? x->name.ref : "") < 0) {
		out->ref = NULL;
		rc = -ENOMEM;
	}
	return rc;
}

/* A config-sized JSON blob by digest (the registry keeps configs as blobs). */
static int json_blob(struct docker *d, const uint8_t digest[32], struct xport_manifest *out,
                     struct dimg_err *err)
{
	struct dimg_buf b = {0};
	uint64_t size = 0;
	int rc = reg_blob_head(d->r, d->repo, digest, &size, err);

	if (rc == 0)
		return -ENOENT;
	if (rc > 0 && size > OCI_JSON_MAX)
		return dimg_err_set(err, -EFBIG, d->repo, "a JSON blob larger than %u bytes",
		                    OCI_JSON_MAX);
	if (rc > 0)
		rc = reg_blob_get(d->r, d->repo, digest, size, 0, dimg_write_buf, &b, err);
	if (rc < 0) {
		dimg_buf_free(&b);
		return rc;
	}
	memset(out, 0, sizeof(*out));
	out->raw = b.data;
	out->len = b.len;
	memcpy(out->digest, digest, 32);
	return 0;
}

static int docker_get_manifest_digest(struct xport *x, const uint8_t digest[32],
                                      struct xport_manifest *out, struct dimg_err *err)
{
	struct docker *d = x->priv;
	struct dimg_err first = {0};
	char ds[OCI_DIGEST_LEN];
	struct reg_manifest m;
	int rc;

	oci_digest_str(ds, digest);
	rc = reg_manifest_get(d->r, d->repo, ds, &m, &first);
	if (rc == 0) {
		take(out, &m);
		return 0;
	}
	if (rc == -ENOENT || rc == -ENOTSUP)
		rc = json_blob(d, digest, out, err);
	if (rc < 0) /* the manifest's error says most */
		dimg_err_set(err, rc, first.what, first.why[0] ? "%s" : NULL, first.why);
	return rc;
}

static int docker_has_blob(struct xport *x, const struct oci_desc *desc, struct dimg_err *err)
{
	struct docker *d = x->priv;

	return reg_blob_head(d->r, d->repo, desc->digest, NULL, err);
}

static int docker_get_blob(struct xport *x, const struct oci_desc *desc, uint64_t offset,
                           dimg_write_fn sink, void *ctx, struct dimg_err *err)
{
	struct docker *d = x->priv;
	struct reg *r;
	int rc = docker_get(d, &r, err);

	if (rc == 0) {
		rc = reg_blob_get(r, d->repo, desc->digest, desc->size, offset, sink, ctx, err);
		docker_put(d, r);
	}
	return rc;
}

static int docker_put_blob(struct xport *x, const struct oci_desc *desc, xport_read_fn src,
                           void *ctx, struct dimg_err *err)
{
	struct docker *d = x->priv;
	struct reg *r;
	int rc = docker_get(d, &r, err);

	if (rc == 0) {
		rc = reg_blob_put(r, d->repo, desc->digest, desc->size, src, ctx, err);
		docker_put(d, r);
	}
	return rc;
}

static int docker_mount_blob(struct xport *x, const struct oci_desc *desc, const struct xport *src,
                             struct dimg_err *err)
{
	struct docker *d = x->priv;
	const struct docker *s = src && src->ops == x->ops ? src->priv : NULL;
	struct reg *r;
	int rc;

	/* a mount is within one registry */
	if (!s || strcmp(s->host, d->host) != 0)
		return 0;
	if ((rc = docker_get(d, &r, err)) < 0)
		return rc;
	if (strcmp(s->repo, d->repo) == 0)
		rc = reg_blob_head(r, d->repo, desc->digest, NULL, err);
	else
		rc = reg_blob_mount(r, d->repo, desc->digest, s->repo, err);
	docker_put(d, r);
	return rc;
}

/* ref NULL: the destination's own name (PUT at commit); "": by digest
 * only (an index's child); else under that tag. */
static int docker_put_manifest_ref(struct xport *x, const struct xport_manifest *m, const char *ref,
                                   struct dimg_err *err)
{
	struct docker *d = x->priv;
	char ds[OCI_DIGEST_LEN];
	uint8_t want[32];

	if (ref)
		return reg_manifest_put(d->r, d->repo, ref[0] ? ref : NULL, m->raw, m->len,
		                        m->media_type, err);
	oci_digest_str(ds, m->digest);
	if (x->name.digest && oci_digest_parse(want, x->name.digest) == 0 &&
	    memcmp(want, m->digest, 32) != 0)
		return dimg_err_set(err, -EINVAL, ds, "the destination names another digest (%s)",
		                    x->name.digest);
	free(d->pending.raw);
	d->pending = *m;
	d->pending.raw = malloc(m->len ? m->len : 1);
	if (!d->pending.raw) {
		memset(&d->pending, 0, sizeof(d->pending));
		return -ENOMEM;
	}
	memcpy(d->pending.raw, m->raw, m->len);
	d->has_pending = 1;
	return 0;
}

static int docker_put_manifest(struct xport *x, const struct xport_manifest *m,
                               struct dimg_err *err)
{
	return docker_put_manifest_ref(x, m, NULL, err);
}

static int docker_commit(struct xport *x, struct dimg_err *err)
{
	struct docker *d = x->priv;
	const char *tag = x->name.digest ? NULL : x->name.ref ? x->name.ref : "latest";
	int rc;

	if (!d->has_pending)
		return 0;
	rc = reg_manifest_put(d->r, d->repo, tag, d->pending.raw, d->pending.len,
	                      d->pending.media_type, err);
	if (rc == 0) {
		free(d->pending.raw);
		memset(&d->pending, 0, sizeof(d->pending));
		d->has_pending = 0;
	}
	return rc;
}

const struct xport_ops xport_docker_ops = {
    .kind = XPORT_DOCKER,
    .open = docker_open,
    .close = docker_close,
    .get_manifest = docker_get_manifest,
    .get_manifest_digest = docker_get_manifest_digest,
    .has_blob = docker_has_blob,
    .get_blob = docker_get_blob,
    .put_blob = docker_put_blob,
    .mount_blob = docker_mount_blob,
    .put_manifest = docker_put_manifest,
    .commit = docker_commit,
    .put_manifest_ref = docker_put_manifest_ref,
};
