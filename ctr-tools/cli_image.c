/* Images the commands read (diff, apply, plan, merge, show): by path as
 * dimg_image_open reads them, or by a transport name (oci:, oci-archive:,
 * docker-archive:, containerd:, docker://) whose image is first copied
 * into a temporary layout when it is not already one (xport_local_open). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "di3fs/xcopy.h"
#include "dimg/image.h"

static int cli_image_fetch(struct xport_local *loc, const char *name, const char *platform)
{
	const char *ns = getenv("CONTAINERD_NAMESPACE"), *addr = getenv("CONTAINERD_ADDRESS");
	struct xcopy_opts xo = {.x = {.platform = platform, .tls_verify = 1}};
	struct dimg_err e = {0};
	xo.x.ns = ns && ns[0] ? ns : NULL;
	xo.x.address = addr && addr[0] ? addr : NULL;
	int r = xport_local_open(loc, name, &xo, &e);
	if (r == 0)
		return 0;
	fprintf(stderr, "cdimg: %s: %s%s%s\n", name, e.what, e.what[0] ? ": " : "",
	        e.why[0] ? e.why : strerror(-r));
	return r == -ENODATA ? CLI_BADINPUT : cli_exit_code(r);
}

int cli_image_open(struct dimg_image **out, const char *name, const struct dimg_image_opts *o,
                   struct cli_progress *p)
{
	struct dimg_image_opts oo = *o;
	struct xport_local loc;
	char *err = NULL;
	int code = cli_image_fetch(&loc, name, o->platform);
	if (code)
		return code;
	if (loc.ref && o->ref && strcmp(loc.ref, o->ref) != 0) {
		fprintf(stderr, "cdimg: %s names image %s, --ref another (%s)\n", name, loc.ref,
		        o->ref);
		xport_local_free(&loc);
		return CLI_USAGE;
	}
	if (loc.ref)
		oo.ref = loc.ref;
	int r = dimg_image_open(out, loc.path, &oo, &err);
	cli_progress_done(p);
	xport_local_free(&loc); /* the image's contents are in its own store now */
	if (r >= 0)
		return 0;
	code = err ? cli_exit_code(r) : cli_fail(r, name, NULL);
	if (err)
		fprintf(stderr, "cdimg: %s: %s\n", name, err);
	free(err);
	return code;
}
