/* Images the commands read (diff, apply, plan, merge, show): by path as
 * dimg_image_open reads them, or by a transport name (oci:, oci-archive:,
 * docker-archive:, containerd:, docker://) whose image is first copied
 * into a temporary layout when it is not already one (xport_local_open).
 * In cdimg only: cdimg-load does not link the transports. */
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
	struct xcopy_opts xo = {.x = {.platform = platform}};
	struct dimg_err e = {0};
	xo.x.ns = ns && ns[0] ? ns : NULL;
	xo.x.address = addr && addr[0] ? addr : NULL;
	int r = xport_local_open(loc, name, &xo, &e);
	if (r == 0)
		return 0;
	cli_report(r, &e, name);
	return r == -ENODATA ? CLI_BADINPUT : cli_exit_code(r);
}

int cli_open_image(struct dimg_image **out, const char *path, const struct dimg_image_opts *o,
                   int quiet)
{
	struct dimg_image_opts opts = o ? *o : (struct dimg_image_opts){0};
	struct dimg_err err = {0};
	struct xport_local loc;
	struct cli_progress p;
	int code = cli_image_fetch(&loc, path, opts.platform);
	if (code)
		return code;
	if (loc.ref && opts.ref && strcmp(loc.ref, opts.ref) != 0) {
		fprintf(stderr, "cdimg: %s names image %s, the ref option another (%s)\n", path,
		        loc.ref, opts.ref);
		xport_local_free(&loc);
		return CLI_USAGE;
	}
	if (loc.ref)
		opts.ref = loc.ref;
	cli_progress_init(&p, quiet);
	opts.progress = cli_progress_cb;
	opts.pctx = &p;
	int r = dimg_image_open(out, loc.path, &opts, &err);
	cli_progress_done(&p);
	xport_local_free(&loc); /* the image's contents are in its own store now */
	return r < 0 ? cli_report(r, &err, path) : 0;
}
