/* xcopy: plan, exclusions, what the destination has, the blobs, then the
 * manifests (an index's before the index) and the commit. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copy-internal.h"

void xcopy_result_clear(struct xcopy_result *res)
{
	if (!res)
		return;
	free(res->missing);
	memset(res, 0, sizeof(*res));
}

char *xcopy_default_cache_dir(void)
{
	const char *env = getenv("DI3FS_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	char *s = NULL;
	if (env && env[0])
		return strdup(env);
	if (geteuid() == 0)
		return strdup("/var/cache/di3fs/blobs");
	if (xdg && xdg[0] == '/')
		return asprintf(&s, "%s/di3fs/blobs", xdg) < 0 ? NULL : s;
	if (asprintf(&s, "%s/.cache/di3fs/blobs", home && home[0] ? home : "/tmp") < 0)
		return NULL;
	return s;
}

static int xc_layoutish(enum xport_kind k)
{
	return k == XPORT_OCI || k == XPORT_OCI_ARCHIVE || k == XPORT_DOCKER_ARCHIVE;
}

static int xc_check(const struct xport_name *src, size_t nsrc, const struct xport_name *dst,
                    const struct xcopy_opts *o, struct dimg_err *err)
{
	char s[512];
	xport_name_str(s, sizeof(s), dst);
	if (nsrc == 0)
		return dimg_err_set(err, -EINVAL, NULL, "no image to copy");
	if (nsrc > 1 && !xc_layoutish(dst->kind))
		return dimg_err_set(err, -EINVAL, s,
		                    "several images go into a layout or an archive (oci:, "
		                    "oci-archive:, docker-archive:)");
	if (nsrc > 1 && dst->ref)
		return dimg_err_set(err, -EINVAL, s,
		                    "several images keep their own names: give the destination "
		                    "without one");
	if (o->nexclude && !xc_layoutish(dst->kind))
		return dimg_err_set(
		    err, -EINVAL, s,
		    "a partial image (--exclude-from) goes into a layout or an archive");
	for (size_t i = 0; i < nsrc; i++)
		if (src[i].kind == dst->kind && strcmp(src[i].where, dst->where) == 0 &&
		    dst->kind != XPORT_OCI && dst->kind != XPORT_CONTAINERD &&
		    dst->kind != XPORT_DOCKER && dst->kind != XPORT_SSH)
			return dimg_err_set(err, -EINVAL, s, "is also a source");
	return 0;
}

static void xc_event_manifest(struct xc *c, const struct xport_manifest *m, const char *ref)
{
	struct oci_desc d = {.size = m->len, .media_type = m->media_type};
	struct xcopy_event ev = {.kind = XCOPY_EV_MANIFEST, .desc = &d, .ref = ref};
	memcpy(d.digest, m->digest, 32);
	if (c->o->event)
		c->o->event(c->o->ectx, &ev);
}

/* An index's manifests first, then each image's top one under its name:
 * the destination's own for one image, each source's for several. */
static int xc_manifests(struct xc *c, struct dimg_err *err)
{
	int own = c->nimg == 1 && (c->dst->name.ref || !xc_layoutish(c->dst->name.kind));
	int r = 0;
	for (size_t i = 0; r == 0 && i < c->nimg; i++) {
		struct xc_image *img = &c->img[i];
		for (size_t j = 0; r == 0 && j < img->nsub; j++) {
			r = xport_put_manifest_ref(c->dst, &img->sub[j], "", err);
			if (r == 0)
				xc_event_manifest(c, &img->sub[j], NULL);
		}
		const char *ref = own ? NULL : img->top.ref;
		if (r == 0 && (r = xport_put_manifest_ref(c->dst, &img->top, ref, err)) == 0)
			xc_event_manifest(c, &img->top, own ? c->dst->name.ref : ref);
		if (r == 0)
			oci_digest_str(c->res->manifest_digest, img->top.digest);
	}
	for (size_t i = 0; r == 0 && i < c->nb; i++)
		if (c->b[i].st == XCOPY_EXCLUDED)
			r = xport_note_excluded(c->dst, &c->b[i].d, err);
	return r;
}

static void xc_result(struct xc *c)
{
	struct xcopy_result *res = c->res;
	res->images = c->nimg;
	res->blobs = c->nb;
	for (size_t i = 0; i < c->nb; i++) {
		const struct xc_blob *b = &c->b[i];
		res->bytes += b->d.size;
		res->copied += b->st == XCOPY_COPIED;
		res->existing += b->st == XCOPY_EXISTS;
		res->mounted += b->st == XCOPY_MOUNTED;
		res->excluded += b->st == XCOPY_EXCLUDED;
		res->copied_bytes += b->st == XCOPY_COPIED ? b->d.size : 0;
		res->resumed_bytes += b->st == XCOPY_COPIED ? b->resumed : 0;
	}
}

int xcopy(const struct xport_name *src, size_t nsrc, const struct xport_name *dst,
          const struct xcopy_opts *o, struct xcopy_result *res, struct dimg_err *err)
{
	struct xc c = {.o = o, .res = res};
	memset(res, 0, sizeof(*res));
	int r = xc_check(src, nsrc, dst, o, err);
	if (r == 0 &&
	    !(c.cache_dir = o->x.cache_dir ? strdup(o->x.cache_dir) : xcopy_default_cache_dir()))
		r = -ENOMEM;
	if (r == 0)
		r = xc_plan(&c, src, nsrc, err);
	if (r == 0)
		r = xc_exclusions(&c, err);
	if (r == 0)
		r = xport_open(&c.dst, dst, 1, &o->x, err);
	if (r == 0)
		r = xc_classify(&c, err);
	if (r == 0) {
		xc_event(&c, XCOPY_EV_PLAN, 0);
		for (size_t i = 0; i < c.nb; i++)
			xc_event(&c, XCOPY_EV_BLOB, i);
		r = xc_run(&c, err);
	}
	if (r == 0)
		r = xc_manifests(&c, err);
	if (r == 0)
		r = xport_commit(c.dst, err);
	xc_result(&c);
	for (size_t i = 0; r == 0 && i < c.nb; i++)
		if (xc_via_cache_kind(c.img[c.b[i].src].x->name.kind))
			xcache_drop(c.cache_dir, &c.b[i].d);
	xc_free(&c);
	return r;
}
