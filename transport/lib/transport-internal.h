/* What a transport backend implements: one table per transport kind. The
 * public functions of transport.h dispatch through it; a backend keeps its
 * own state behind struct xport's priv. */
#ifndef DI3FS_TRANSPORT_INTERNAL_H
#define DI3FS_TRANSPORT_INTERNAL_H

#include "di3fs/transport.h"

struct xport_ops {
	enum xport_kind kind;
	int (*open)(struct xport *x, struct dimg_err *err);
	void (*close)(struct xport *x);
	int (*get_manifest)(struct xport *x, struct xport_manifest *out, struct dimg_err *err);
	int (*get_manifest_digest)(struct xport *x, const uint8_t digest[32],
	                           struct xport_manifest *out, struct dimg_err *err);
	int (*has_blob)(struct xport *x, const struct oci_desc *d, struct dimg_err *err);
	int (*get_blob)(struct xport *x, const struct oci_desc *d, uint64_t offset,
	                dimg_write_fn sink, void *ctx, struct dimg_err *err);
	int (*put_blob)(struct xport *x, const struct oci_desc *d, xport_read_fn src, void *ctx,
	                struct dimg_err *err);
	/* NULL when the transport cannot mount */
	int (*mount_blob)(struct xport *x, const struct oci_desc *d, const struct xport *src,
	                  struct dimg_err *err);
	int (*put_manifest)(struct xport *x, const struct xport_manifest *m, struct dimg_err *err);
	int (*commit)(struct xport *x, struct dimg_err *err);
};

struct xport {
	const struct xport_ops *ops;
	struct xport_name name; /* owned */
	struct xport_opts opts; /* strings borrowed from the caller */
	int write;
	void *priv; /* the backend's */
};

/* The backends (one file or folder each). */
extern const struct xport_ops xport_docker_ops;         /* docker.c, over registry/ */
extern const struct xport_ops xport_containerd_ops;     /* containerd.c, over ctrd/ */
extern const struct xport_ops xport_oci_ops;            /* oci.c */
extern const struct xport_ops xport_oci_archive_ops;    /* ociarchive.c */
extern const struct xport_ops xport_docker_archive_ops; /* dockerarchive.c */

#endif
