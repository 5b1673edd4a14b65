/* regcli's two image places (registry.h called directly, and the docker://
 * transport's table) and the push and pull walks over either. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "dimg/hash.h"
#include "regcli.h"
#include "transport-internal.h"

int img_name_parse(struct img_name *n, const char *s)
{
	const char *slash = strchr(s, '/'), *at = strchr(s, '@'), *colon;
	size_t rl;

	memset(n, 0, sizeof(*n));
	if (!slash || (size_t)(slash - s) >= sizeof(n->host))
		return -EINVAL;
	memcpy(n->host, s, (size_t)(slash - s));
	rl = at ? (size_t)(at - slash - 1) : strlen(slash + 1);
	colon = memchr(slash + 1, ':', rl);
	if (colon) {
		snprintf(n->tag, sizeof(n->tag), "%.*s", (int)(rl - (size_t)(colon - slash)),
		         colon + 1);
		rl = (size_t)(colon - slash - 1);
	}
	if (rl == 0 || rl >= sizeof(n->repo) || (at && !oci_digest_valid(at + 1)))
		return -EINVAL;
	memcpy(n->repo, slash + 1, rl);
	if (at)
		snprintf(n->digest, sizeof(n->digest), "%s", at + 1);
	return 0;
}

/* ---- direct ---- */
struct direct {
	struct reg *r;
	struct img_name n;
	const struct cli_opts *o;
};

static int d_get_manifest(void *ctx, const char *ref, struct reg_manifest *out,
                          struct dimg_err *err)
{
	struct direct *d = ctx;
	const char *own = d->n.digest[0] ? d->n.digest : d->n.tag[0] ? d->n.tag : "latest";

	if (ref || d->o->all)
		return reg_manifest_get(d->r, d->n.repo, ref ? ref : own, out, err);
	return reg_manifest_resolve(d->r, d->n.repo, own, d->o->platform, out, err);
}

static int d_has_blob(void *ctx, const struct oci_desc *desc, struct dimg_err *err)
{
	struct direct *d = ctx;
	return reg_blob_head(d->r, d->n.repo, desc->digest, NULL, err);
}

static int d_get_blob(void *ctx, const struct oci_desc *desc, uint64_t off, dimg_write_fn sink,
                      void *sctx, struct dimg_err *err)
{
	struct direct *d = ctx;
	return reg_blob_get(d->r, d->n.repo, desc->digest, desc->size, off, sink, sctx, err);
}

static int d_put_blob(void *ctx, const struct oci_desc *desc, reg_read_fn src, void *sctx,
                      struct dimg_err *err)
{
	struct direct *d = ctx;
	return reg_blob_put(d->r, d->n.repo, desc->digest, desc->size, src, sctx, err);
}

static int d_put_manifest(void *ctx, int named, const struct reg_manifest *m, struct dimg_err *err)
{
	struct direct *d = ctx;
	const char *tag = d->n.tag[0] ? d->n.tag : "latest";
	return reg_manifest_put(d->r, d->n.repo, named ? tag : NULL, m->raw, m->len, m->media_type,
	                        err);
}

static int d_commit(void *ctx, struct dimg_err *err)
{
	return 0;
}

static int d_mount(void *ctx, const struct oci_desc *desc, const char *from, struct dimg_err *err)
{
	struct direct *d = ctx;
	return reg_blob_mount(d->r, d->n.repo, desc->digest, from, err);
}

static void d_close(void *ctx)
{
	struct direct *d = ctx;
	reg_close(d->r);
	free(d);
}

int io_open_direct(struct img_io *io, const struct img_name *n, const struct cli_opts *o,
                   struct dimg_err *err)
{
	struct direct *d = calloc(1, sizeof(*d));
	int rc = d ? reg_open(&d->r, n->host, &o->reg, err) : -ENOMEM;

	if (rc < 0) {
		free(d);
		return rc;
	}
	d->n = *n;
	d->o = o;
	*io = (struct img_io){d,          d_get_manifest, d_has_blob,
	                      d_get_blob, d_put_blob,     d_put_manifest,
	                      d_commit,   d_mount,        d_close};
	return 0;
}

struct reg *io_direct_reg(const struct img_io *io)
{
	return io->close == d_close ? ((struct direct *)io->ctx)->r : NULL;
}

/* ---- through the docker:// transport ---- */
struct tport {
	struct xport x;
	char where[600];
};

/* Takes m's bytes; the rest of m (the source's name for it) is freed. */
static void from_xm(struct reg_manifest *out, struct xport_manifest *m)
{
	memset(out, 0, sizeof(*out));
	out->raw = m->raw;
	out->len = m->len;
	memcpy(out->digest, m->digest, 32);
	snprintf(out->media_type, sizeof(out->media_type), "%s", m->media_type);
	m->raw = NULL;
	free(m->ref);
	m->ref = NULL;
}

static int t_get_manifest(void *ctx, const char *ref, struct reg_manifest *out,
                          struct dimg_err *err)
{
	struct tport *t = ctx;
	struct xport_manifest m = {0};
	uint8_t d[32];
	int rc = ref ? oci_digest_parse(d, ref) : 0;

	if (rc == 0)
		rc = ref ? t->x.ops->get_manifest_digest(&t->x, d, &m, err)
		         : t->x.ops->get_manifest(&t->x, &m, err);
	if (rc == 0)
		from_xm(out, &m);
	return rc;
}

static int t_has_blob(void *ctx, const struct oci_desc *desc, struct dimg_err *err)
{
	struct tport *t = ctx;
	return t->x.ops->has_blob(&t->x, desc, err);
}

static int t_get_blob(void *ctx, const struct oci_desc *desc, uint64_t off, dimg_write_fn sink,
                      void *sctx, struct dimg_err *err)
{
	struct tport *t = ctx;
	return t->x.ops->get_blob(&t->x, desc, off, sink, sctx, err);
}

static int t_put_blob(void *ctx, const struct oci_desc *desc, reg_read_fn src, void *sctx,
                      struct dimg_err *err)
{
	struct tport *t = ctx;
	return t->x.ops->put_blob(&t->x, desc, src, sctx, err);
}

static int t_put_manifest(void *ctx, int named, const struct reg_manifest *m, struct dimg_err *err)
{
	struct tport *t = ctx;
	struct xport_manifest xm = {.raw = m->raw, .len = m->len};
	char ds[OCI_DIGEST_LEN];
	struct xport *x;
	int rc;

	memcpy(xm.digest, m->digest, 32);
	snprintf(xm.media_type, sizeof(xm.media_type), "%s", m->media_type);
	if (named)
		return t->x.ops->put_manifest(&t->x, &xm, err);
	/* a child by digest: the transport writes to a name, so name it so */
	oci_digest_str(ds, m->digest);
	x = &t->x;
	char *saved_ref = x->name.ref, *saved_digest = x->name.digest;
	x->name.ref = NULL;
	x->name.digest = ds;
	rc = x->ops->put_manifest(x, &xm, err);
	if (rc == 0)
		rc = x->ops->commit(x, err);
	x->name.ref = saved_ref;
	x->name.digest = saved_digest;
	return rc;
}

static int t_commit(void *ctx, struct dimg_err *err)
{
	struct tport *t = ctx;
	return t->x.ops->commit(&t->x, err);
}

static int t_mount(void *ctx, const struct oci_desc *desc, const char *from, struct dimg_err *err)
{
	struct tport *t = ctx, src = *t;
	int rc;

	/* the source: the same registry, another repository */
	snprintf(src.where, sizeof(src.where), "%.*s/%s", (int)(strchr(t->where, '/') - t->where),
	         t->where, from);
	src.x.name.where = src.where;
	src.x.priv = NULL;
	rc = src.x.ops->open(&src.x, err);
	if (rc == 0) {
		rc = t->x.ops->mount_blob(&t->x, desc, &src.x, err);
		src.x.ops->close(&src.x);
	}
	return rc;
}

static void t_close(void *ctx)
{
	struct tport *t = ctx;
	t->x.ops->close(&t->x);
	free(t->x.name.ref);
	free(t->x.name.digest);
	free(t);
}

int io_open_transport(struct img_io *io, const struct img_name *n, const struct cli_opts *o,
                      int write, struct dimg_err *err)
{
	struct tport *t = calloc(1, sizeof(*t));
	int rc;

	if (!t)
		return -ENOMEM;
	snprintf(t->where, sizeof(t->where), "%s/%s", n->host, n->repo);
	t->x.ops = &xport_docker_ops;
	t->x.name.kind = XPORT_DOCKER;
	t->x.name.where = t->where;
	t->x.name.ref = n->tag[0] ? strdup(n->tag) : NULL;
	t->x.name.digest = n->digest[0] ? strdup(n->digest) : NULL;
	t->x.write = write;
	t->x.opts.platform = o->platform;
	t->x.opts.all_platforms = o->all;
	t->x.opts.creds = o->reg.creds;
	t->x.opts.authfile = o->reg.authfile;
	t->x.opts.tls_verify = o->reg.tls_insecure ? -1 : 0;
	t->x.opts.certs_dir = o->reg.cert_dir;
	t->x.opts.hosts_dir = o->reg.hosts_dir;
	rc = t->x.ops->open(&t->x, err);
	if (rc < 0) {
		free(t->x.name.ref);
		free(t->x.name.digest);
		free(t);
		return rc;
	}
	*io = (struct img_io){t,          t_get_manifest, t_has_blob,
	                      t_get_blob, t_put_blob,     t_put_manifest,
	                      t_commit,   t_mount,        t_close};
	return 0;
}
