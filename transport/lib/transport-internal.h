/* What a transport backend implements: one table per transport kind. The
 * public functions of transport.h dispatch through it; a backend keeps its
 * own state behind struct xport's priv. */
#ifndef DI3FS_TRANSPORT_INTERNAL_H
#define DI3FS_TRANSPORT_INTERNAL_H

#include "di3fs/transport.h"
#include "dimg/hash.h"

struct json_object;

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
	/* Added for cdimg copy; NULL in a table that predates them. NULL
	 * put_manifest_ref: ref NULL goes to put_manifest, "" to put_blob (a
	 * layout stores a child manifest as a blob; a registry must implement
	 * it: PUT /manifests/<digest>), another name is -ENOTSUP. */
	int (*put_manifest_ref)(struct xport *x, const struct xport_manifest *m, const char *ref,
	                        struct dimg_err *err);
	/* NULL: the transport cannot hold a partial image (-ENOTSUP) */
	int (*note_excluded)(struct xport *x, const struct oci_desc *d, struct dimg_err *err);
	/* NULL: xport_has_blobs asks has_blob for each (one round trip each
	 * is cheap but for ssh://) */
	int (*has_blobs)(struct xport *x, const struct oci_desc *d, size_t n, uint8_t *have,
	                 struct dimg_err *err);
};

struct xport {
	const struct xport_ops *ops;
	struct xport_name name; /* owned */
	struct xport_opts opts; /* strings borrowed from the caller */
	int write;
	void *priv;   /* the backend's */
	void *module; /* dlopen handle of the backend's shared module, or NULL */
};

/* The backends (one file or folder each). */
extern const struct xport_ops xport_docker_ops; /* docker.c, over registry/ */
/* docker.c's helpers, for push.c: HOST/REPO as docker splits a name (a
 * first component with '.' or ':' or localhost is a host, else Docker Hub,
 * library/ for one name), malloc'd, -ENOMEM; the host a registry answers on
 * (Docker Hub's API host for docker.io); registry options from o. */
struct reg_opts;
int docker_split_where(const char *where, char **host, char **repo);
const char *docker_api_host(const char *host);
void docker_reg_opts(struct reg_opts *ro, const struct xport_opts *o);
/* pull.c's, for pull_fetch.c: the source of manifests and blobs, the
 * download cache. */
struct xpull;
struct xport *xpull_source(struct xpull *p);
const char *xpull_cache_dir(const struct xpull *p);
/* containerd/containerd.c over ctrd/, in a module of its own loaded on
 * first use (gRPC stays out of programs that do not talk to containerd) */
extern const struct xport_ops xport_containerd_ops;
#define XPORT_CONTAINERD_MODULE "di3fs-xport-containerd.so"
extern const struct xport_ops xport_oci_ops;            /* oci.c */
extern const struct xport_ops xport_oci_archive_ops;    /* ociarchive.c */
extern const struct xport_ops xport_docker_archive_ops; /* dockerarchive.c */
extern const struct xport_ops xport_ssh_ops;            /* ssh.c, the agent ssh_agent.c */

/* ---- helpers every backend shares (verify.c, manifest.c, select.c) ---- */

/* Checks a blob as it streams: size never past the descriptor's, and at
 * the end exactly it and the digest. */
struct xverify {
	struct dimg_sha256 *h;
	uint64_t n;
	uint64_t size;
	uint8_t digest[32];
};
int xverify_init(struct xverify *v, const struct oci_desc *d);
/* -EBADMSG once more bytes came than the descriptor states. */
int xverify_update(struct xverify *v, const void *p, size_t n);
/* 0, or -EBADMSG with err naming the blob and what differs. */
int xverify_final(struct xverify *v, struct dimg_err *err);
void xverify_free(struct xverify *v);
/* "sha256:<hex>: size N, got M" style errors name the blob this way. */
int xverify_fail(struct dimg_err *err, const uint8_t digest[32], const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An xport_read_fn over bytes in memory. */
struct xmem {
	const uint8_t *p;
	size_t n, off;
};
ssize_t xmem_read(void *ctx, void *p, size_t n);

/* Fills m from raw bytes it takes over (malloc'd): digest, and media type
 * from the document's mediaType, else hint, else its shape. want (may be
 * NULL): the digest it must have, else -EBADMSG naming it. */
int xman_take(struct xport_manifest *m, uint8_t *raw, size_t len, const char *hint,
              const uint8_t *want, struct dimg_err *err);
/* Copies src into dst (raw bytes, ref too). */
int xman_copy(struct xport_manifest *dst, const struct xport_manifest *src);

/* Reads a manifest by descriptor for xsel_platform (verified). */
typedef int (*xsel_fetch_fn)(void *ctx, const struct oci_desc *d, struct xport_manifest *out,
                             struct dimg_err *err);
/* m is what a name points at. An index is kept with o->all_platforms;
 * otherwise m becomes the manifest for o->platform (this machine's by
 * default), through nested indexes. A manifest is kept as it is. m->ref
 * is kept. */
int xsel_platform(struct xport_manifest *m, const struct xport_opts *o, xsel_fetch_fn fetch,
                  void *ctx, struct dimg_err *err);

/* Every descriptor a manifest or index refers to, in order: an index's
 * manifests, or a manifest's config then layers. *v (malloc'd) borrows
 * strings from *doc, which the caller puts. -EBADMSG naming m. */
int xman_children(const struct xport_manifest *m, struct json_object **doc, struct oci_desc **v,
                  size_t *n, struct dimg_err *err);

#endif
