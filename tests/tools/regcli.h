/* regcli: the test driver of the registry client and the docker://
 * transport. An image place is a small table (direct calls to registry.h,
 * or the transport's xport_docker_ops), so that the same push and pull
 * walks exercise both. */
#ifndef DI3FS_REGCLI_H
#define DI3FS_REGCLI_H

#include "di3fs/registry.h"

struct img_io {
	void *ctx;
	/* ref NULL: the name's own (platform-resolved unless all) */
	int (*get_manifest)(void *ctx, const char *ref, struct reg_manifest *out,
	                    struct dimg_err *err);
	int (*has_blob)(void *ctx, const struct oci_desc *d, struct dimg_err *err);
	int (*get_blob)(void *ctx, const struct oci_desc *d, uint64_t off, dimg_write_fn sink,
	                void *sctx, struct dimg_err *err);
	int (*put_blob)(void *ctx, const struct oci_desc *d, reg_read_fn src, void *sctx,
	                struct dimg_err *err);
	/* named 1: under the name's own tag; 0: by digest */
	int (*put_manifest)(void *ctx, int named, const struct reg_manifest *m,
	                    struct dimg_err *err);
	int (*commit)(void *ctx, struct dimg_err *err);
	int (*mount)(void *ctx, const struct oci_desc *d, const char *from, struct dimg_err *err);
	void (*close)(void *ctx);
};

struct img_name {
	char host[256], repo[256], tag[129], digest[OCI_DIGEST_LEN];
};
int img_name_parse(struct img_name *n, const char *s);

struct cli_opts {
	struct reg_opts reg;
	const char *platform;
	int all;
	int transport; /* through xport_docker_ops */
	int stats;
};

/* The direct table over registry.h, and the one over the transport. */
int io_open_direct(struct img_io *io, const struct img_name *n, const struct cli_opts *o,
                   struct dimg_err *err);
int io_open_transport(struct img_io *io, const struct img_name *n, const struct cli_opts *o,
                      int write, struct dimg_err *err);
/* The registry behind a direct table (for stats). */
struct reg *io_direct_reg(const struct img_io *io);

/* Pushes the image of an OCI layout (its index.json's one manifest, or
 * the whole index) with only the missing blobs; pulls one into a layout. */
int img_push(struct img_io *io, const char *layout, struct dimg_err *err);
int img_pull(struct img_io *io, const char *layout, const char *tag, struct dimg_err *err);

#endif
