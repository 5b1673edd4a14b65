/* docker:// without the registry client (transport/lib/docker.c, built
 * when it is there): every name says so. */
#include <errno.h>

#include "transport-internal.h"

static int docker_none_open(struct xport *x, struct dimg_err *err)
{
	return dimg_err_set(err, -ENOTSUP, x->name.where, "registry transport not built");
}

static void docker_none_close(struct xport *x)
{
	(void)x;
}

const struct xport_ops xport_docker_ops = {
    .kind = XPORT_DOCKER, .open = docker_none_open, .close = docker_none_close};
