/* A small client of containerd's own gRPC API (content, images, leases and
 * snapshots services) over its unix socket, with gRPC core's C API and
 * protobuf-c. Every call carries the namespace (gRPC metadata
 * "containerd-namespace") and, once ctrd_lease_create has run, the lease
 * ("containerd-lease").
 *
 * Calls return 0 or -errno, mapping gRPC status codes: NOT_FOUND -ENOENT,
 * ALREADY_EXISTS -EEXIST, FAILED_PRECONDITION -EBUSY, INVALID_ARGUMENT
 * -EINVAL, UNAVAILABLE -ECONNREFUSED, DEADLINE_EXCEEDED -ETIMEDOUT, others
 * -EIO. On failure err (NULL allowed) says why: the call and containerd's
 * own words. Once connected (and leased), a struct ctrd may serve calls
 * from several threads at once: each call has its own completion queue,
 * and gRPC channels are thread-safe. */
#ifndef DI3FS_CTRD_H
#define DI3FS_CTRD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dimg/types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CTRD_DEFAULT_ADDRESS   "/run/containerd/containerd.sock"
#define CTRD_DEFAULT_NAMESPACE "default"

struct ctrd;

struct ctrd_label {
	const char *key;
	const char *value;
};

/* Connects to containerd at address (a socket path); waits up to timeout_ms
 * for the channel. */
int ctrd_connect(struct ctrd **out, const char *address, const char *ns, int timeout_ms,
                 struct dimg_err *err);
void ctrd_close(struct ctrd *c);

/* A lease (containerd.io/gc.expire set expire_s ahead) that protects what
 * the following calls write from garbage collection until deleted. */
int ctrd_lease_create(struct ctrd *c, unsigned expire_s, struct dimg_err *err);
int ctrd_lease_delete(struct ctrd *c, struct dimg_err *err);

/* Size of the blob digest ("sha256:<hex>") in the content store; -ENOENT. */
int ctrd_content_info(struct ctrd *c, const char *digest, int64_t *size, struct dimg_err *err);
/* Writes n bytes as blob digest with labels (streamed in chunks, committed
 * with expected size and digest). A blob already present is success. */
int ctrd_content_write(struct ctrd *c, const char *digest, const void *p, size_t n,
                       const struct ctrd_label *labels, size_t n_labels, struct dimg_err *err);
/* The same, calling progress (if not NULL) after each chunk with the bytes
 * sent so far and n. */
typedef void (*ctrd_progress_fn)(void *ctx, const char *what, uint64_t done, uint64_t total);
int ctrd_content_write_progress(struct ctrd *c, const char *digest, const void *p, size_t n,
                                const struct ctrd_label *labels, size_t n_labels,
                                ctrd_progress_fn progress, void *pctx, struct dimg_err *err);
/* The same, streamed: size bytes pulled from src (which fills up to n
 * bytes and returns the count, 0 at its end, or -errno). After the last
 * byte src is read once more and must be at its end, so that a source
 * that checks what it gives can refuse before the commit; its -errno
 * (-EBADMSG, ...) is returned as it is. */
typedef ssize_t (*ctrd_read_fn)(void *ctx, void *p, size_t n);
int ctrd_content_write_from(struct ctrd *c, const char *digest, uint64_t size, ctrd_read_fn src,
                            void *ctx, const struct ctrd_label *labels, size_t n_labels,
                            struct dimg_err *err);
/* Streams blob digest to sink in order; sink returns 0 or -errno to stop. */
typedef int (*ctrd_sink_fn)(void *ctx, const void *p, size_t n);
int ctrd_content_read(struct ctrd *c, const char *digest, ctrd_sink_fn sink, void *ctx,
                      struct dimg_err *err);
/* The same from byte offset on. */
int ctrd_content_read_at(struct ctrd *c, const char *digest, int64_t offset, ctrd_sink_fn sink,
                         void *ctx, struct dimg_err *err);
/* Reads a whole (small) blob into malloc'd memory; -EFBIG past max. */
int ctrd_content_get(struct ctrd *c, const char *digest, size_t max, uint8_t **out, size_t *n,
                     struct dimg_err *err);

struct ctrd_image {
	char *name;
	char *media_type; /* of the target descriptor */
	char *digest;
	int64_t size;
};
void ctrd_image_clear(struct ctrd_image *img);
/* All image records of the namespace; free with ctrd_images_free. */
int ctrd_images_list(struct ctrd *c, struct ctrd_image **out, size_t *n, struct dimg_err *err);
void ctrd_images_free(struct ctrd_image *v, size_t n);
int ctrd_image_get(struct ctrd *c, const char *name, struct ctrd_image *out, struct dimg_err *err);
/* Creates the record, or updates its target when it exists. */
int ctrd_image_put(struct ctrd *c, const struct ctrd_image *img, const struct ctrd_label *labels,
                   size_t n_labels, struct dimg_err *err);

/* Snapshots through containerd (never the snapshotter directly). */
int ctrd_snapshot_stat(struct ctrd *c, const char *snapshotter, const char *key,
                       struct dimg_err *err);
int ctrd_snapshot_prepare(struct ctrd *c, const char *snapshotter, const char *key,
                          const char *parent, const struct ctrd_label *labels, size_t n_labels,
                          struct dimg_err *err);
int ctrd_snapshot_commit(struct ctrd *c, const char *snapshotter, const char *name, const char *key,
                         const struct ctrd_label *labels, size_t n_labels, struct dimg_err *err);
int ctrd_snapshot_remove(struct ctrd *c, const char *snapshotter, const char *key,
                         struct dimg_err *err);

#ifdef __cplusplus
}
#endif
#endif
