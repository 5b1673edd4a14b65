/* The public face of the transports: names opened with the backend of
 * their kind (containerd's loaded from its module on first use), and
 * every call checked against how the location was opened. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport-internal.h"

#ifdef DI3FS_XPORT_CONTAINERD
/* Where the containerd module may be: $DI3FS_MODULE_DIR, beside the
 * program (the build tree), in ../lib/di3fs (an install, wherever its
 * prefix is). */
static void *xport_dlopen(const char *dir, char *why, size_t n)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s", dir, XPORT_CONTAINERD_MODULE) >=
	        (int)sizeof(path) ||
	    access(path, F_OK) < 0)
		return NULL;
	/* NODELETE: gRPC threads may outlive the last close */
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (!h)
		snprintf(why, n, "%s", dlerror());
	return h;
}

static int xport_containerd_load(struct xport *x, struct dimg_err *err)
{
	char self[PATH_MAX], dir[PATH_MAX + 16], why[DIMG_ERR_WHY_MAX] = "";
	const char *env = getenv("DI3FS_MODULE_DIR");
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash = n > 0 ? (self[n] = '\0', strrchr(self, '/')) : NULL;
	if (slash)
		*slash = '\0';
	if (env && env[0])
		x->module = xport_dlopen(env, why, sizeof(why));
	if (!x->module && slash && !why[0])
		x->module = xport_dlopen(self, why, sizeof(why));
	if (!x->module && slash && !why[0] &&
	    snprintf(dir, sizeof(dir), "%s/../lib/di3fs", self) < (int)sizeof(dir))
		x->module = xport_dlopen(dir, why, sizeof(why));
	if (!x->module)
		return dimg_err_set(err, -ENOTSUP, XPORT_CONTAINERD_MODULE, "%s",
		                    why[0] ? why
		                           : "not found beside the program nor in ../lib/di3fs");
	x->ops = dlsym(x->module, "xport_containerd_ops");
	if (!x->ops || x->ops->kind != XPORT_CONTAINERD)
		return dimg_err_set(err, -ENOTSUP, XPORT_CONTAINERD_MODULE,
		                    "not a containerd transport");
	return 0;
}
#else
static int xport_containerd_load(struct xport *x, struct dimg_err *err)
{
	(void)x;
	return dimg_err_set(err, -ENOTSUP, "containerd:", "containerd transport not built");
}
#endif

static int xport_backend(struct xport *x, struct dimg_err *err)
{
	switch (x->name.kind) {
	case XPORT_DOCKER:
		x->ops = &xport_docker_ops;
		return 0;
	case XPORT_CONTAINERD:
		return xport_containerd_load(x, err);
	case XPORT_OCI:
		x->ops = &xport_oci_ops;
		return 0;
	case XPORT_OCI_ARCHIVE:
		x->ops = &xport_oci_archive_ops;
		return 0;
	case XPORT_DOCKER_ARCHIVE:
		x->ops = &xport_docker_archive_ops;
		return 0;
	case XPORT_SSH:
		x->ops = &xport_ssh_ops;
		return 0;
	}
	return dimg_err_set(err, -EINVAL, NULL, "unknown transport kind %d", (int)x->name.kind);
}

static int xport_name_copy(struct xport_name *dst, const struct xport_name *src)
{
	dst->kind = src->kind;
	dst->where = src->where ? strdup(src->where) : NULL;
	dst->ref = src->ref ? strdup(src->ref) : NULL;
	dst->digest = src->digest ? strdup(src->digest) : NULL;
	if ((src->where && !dst->where) || (src->ref && !dst->ref) || (src->digest && !dst->digest))
		return -ENOMEM;
	return 0;
}

int xport_open(struct xport **out, const struct xport_name *n, int write,
               const struct xport_opts *o, struct dimg_err *err)
{
	struct xport *x = calloc(1, sizeof(*x));
	*out = NULL;
	if (!x)
		return -ENOMEM;
	if (o)
		x->opts = *o;
	x->write = write;
	int r = xport_name_copy(&x->name, n);
	if (r == 0)
		r = xport_backend(x, err);
	if (r == 0 && write && n->digest)
		r = dimg_err_set(err, -EINVAL, n->digest,
		                 "a destination is named by a tag, not a digest");
	if (r == 0 && (r = x->ops->open(x, err)) < 0) {
		char s[512];
		xport_name_str(s, sizeof(s), n);
		dimg_err_set(err, r, s, NULL);
	}
	if (r < 0) {
		xport_close(x);
		return r;
	}
	*out = x;
	return 0;
}

void xport_close(struct xport *x)
{
	if (!x)
		return;
	if (x->ops && x->ops->close)
		x->ops->close(x);
	if (x->module)
		dlclose(x->module);
	xport_name_clear(&x->name);
	free(x);
}

/* Reading calls on a writer and writing calls on a reader are refused. */
static int xport_mode(const struct xport *x, int write, struct dimg_err *err)
{
	if (x->write == write)
		return 0;
	return dimg_err_set(err, -EBADF, x->name.where, "opened for %s",
	                    x->write ? "writing" : "reading");
}

int xport_get_manifest(struct xport *x, struct xport_manifest *out, struct dimg_err *err)
{
	memset(out, 0, sizeof(*out));
	int r = xport_mode(x, 0, err);
	return r < 0 ? r : x->ops->get_manifest(x, out, err);
}

int xport_get_manifest_digest(struct xport *x, const uint8_t digest[32], struct xport_manifest *out,
                              struct dimg_err *err)
{
	memset(out, 0, sizeof(*out));
	int r = xport_mode(x, 0, err);
	return r < 0 ? r : x->ops->get_manifest_digest(x, digest, out, err);
}

int xport_has_blob(struct xport *x, const struct oci_desc *d, struct dimg_err *err)
{
	return x->ops->has_blob(x, d, err);
}

int xport_has_blobs(struct xport *x, const struct oci_desc *d, size_t n, uint8_t *have,
                    struct dimg_err *err)
{
	if (x->ops->has_blobs)
		return x->ops->has_blobs(x, d, n, have, err);
	for (size_t i = 0; i < n; i++) {
		int r = x->ops->has_blob(x, &d[i], err);
		if (r < 0)
			return r;
		have[i] = r > 0;
	}
	return 0;
}

int xport_get_blob(struct xport *x, const struct oci_desc *d, uint64_t offset, dimg_write_fn sink,
                   void *ctx, struct dimg_err *err)
{
	int r = xport_mode(x, 0, err);
	return r < 0 ? r : x->ops->get_blob(x, d, offset, sink, ctx, err);
}

int xport_put_blob(struct xport *x, const struct oci_desc *d, xport_read_fn src, void *ctx,
                   struct dimg_err *err)
{
	int r = xport_mode(x, 1, err);
	return r < 0 ? r : x->ops->put_blob(x, d, src, ctx, err);
}

int xport_mount_blob(struct xport *x, const struct oci_desc *d, const struct xport *src,
                     struct dimg_err *err)
{
	int r = xport_mode(x, 1, err);
	if (r < 0 || !x->ops->mount_blob)
		return r;
	return x->ops->mount_blob(x, d, src, err);
}

int xport_put_manifest(struct xport *x, const struct xport_manifest *m, struct dimg_err *err)
{
	return xport_put_manifest_ref(x, m, NULL, err);
}

int xport_put_manifest_ref(struct xport *x, const struct xport_manifest *m, const char *ref,
                           struct dimg_err *err)
{
	struct oci_desc d = {.size = m->len, .media_type = m->media_type};
	struct xmem mem = {m->raw, m->len, 0};
	int r = xport_mode(x, 1, err);
	if (r < 0)
		return r;
	if (x->ops->put_manifest_ref)
		return x->ops->put_manifest_ref(x, m, ref, err);
	if (!ref)
		return x->ops->put_manifest(x, m, err);
	if (ref[0])
		return dimg_err_set(err, -ENOTSUP, x->name.where, "holds one image name");
	memcpy(d.digest, m->digest, 32);
	return x->ops->put_blob(x, &d, xmem_read, &mem, err);
}

int xport_note_excluded(struct xport *x, const struct oci_desc *d, struct dimg_err *err)
{
	int r = xport_mode(x, 1, err);
	if (r < 0)
		return r;
	if (!x->ops->note_excluded)
		return dimg_err_set(
		    err, -ENOTSUP, x->name.where,
		    "cannot hold a partial image (use oci:, oci-archive: or docker-archive:)");
	return x->ops->note_excluded(x, d, err);
}

int xport_commit(struct xport *x, struct dimg_err *err)
{
	int r = xport_mode(x, 1, err);
	return r < 0 ? r : x->ops->commit(x, err);
}
