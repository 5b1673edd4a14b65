/* Images for the commands that read them with dimg_image_open (diff,
 * apply, plan): layouts and archives by their own path, images elsewhere
 * (containerd, registries) copied into a temporary OCI layout first. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "copy-internal.h"
#include "layout.h"

int xport_name_has_transport(const char *s)
{
	static const char *const p[] = {
	    "docker://", "containerd:", "oci:", "oci-archive:", "docker-archive:", "ssh://"};
	for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
		if (strncmp(s, p[i], strlen(p[i])) == 0)
			return 1;
	return 0;
}

void xport_local_free(struct xport_local *l)
{
	if (!l)
		return;
	if (l->tmpdir)
		lay_rmtree(l->tmpdir);
	free(l->path);
	free(l->ref);
	free(l->tmpdir);
	memset(l, 0, sizeof(*l));
}

/* The image copied into <tmpdir>/layout. */
static int xport_local_copy(struct xport_local *out, const struct xport_name *n,
                            const struct xcopy_opts *o, struct dimg_err *err)
{
	const char *tmp = getenv("TMPDIR");
	struct xport_name dst = {.kind = XPORT_OCI};
	struct xcopy_opts co = *o;
	struct xcopy_result res;
	if (asprintf(&out->tmpdir, "%s/cdimg-image-XXXXXX", tmp && tmp[0] ? tmp : "/var/tmp") < 0) {
		out->tmpdir = NULL;
		return -ENOMEM;
	}
	if (!mkdtemp(out->tmpdir)) {
		int r = dimg_err_set(err, -errno, out->tmpdir, "a temporary directory");
		free(out->tmpdir);
		out->tmpdir = NULL;
		return r;
	}
	if (asprintf(&out->path, "%s/layout", out->tmpdir) < 0) {
		out->path = NULL;
		return -ENOMEM;
	}
	dst.where = out->path;
	co.x.all_platforms = 0; /* one image, the platform's */
	co.nexclude = 0;
	int r = xcopy(n, 1, &dst, &co, &res, err);
	xcopy_result_clear(&res);
	return r;
}

int xport_local_open(struct xport_local *out, const char *name, const struct xcopy_opts *o,
                     struct dimg_err *err)
{
	struct xport_name n;
	memset(out, 0, sizeof(*out));
	if (!xport_name_has_transport(name))
		return (out->path = strdup(name)) ? 0 : -ENOMEM;
	int r = xport_name_parse(&n, name, err);
	if (r < 0)
		return r;
	if ((n.kind == XPORT_OCI || n.kind == XPORT_OCI_ARCHIVE ||
	     n.kind == XPORT_DOCKER_ARCHIVE) &&
	    !n.digest) {
		out->path = n.where;
		out->ref = n.ref;
		n.where = n.ref = NULL;
	} else {
		r = xport_local_copy(out, &n, o, err);
	}
	xport_name_clear(&n);
	if (r < 0)
		xport_local_free(out);
	return r;
}
