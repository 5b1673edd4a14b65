/* OCI image layouts in a tar, written deterministically: the ustar framing
 * and canonical JSON shared with .cdimg, and a runnable image whose one layer
 * is a whole tree streamed from a content callback. */
#ifndef DI3FS_OCIWRITE_H
#define DI3FS_OCIWRITE_H

#include <stddef.h>
#include <stdint.h>

#include "dimg/codec.h"
#include "dimg/oci.h"
#include "dimg/tree.h"
#include "dimg/write.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- tar framing ----
 * Every header is ustar with fixed fields: mtime 0, uid/gid 0, no owner
 * names, mode 0644 (files) or 0755 (directories). Sizes of 8 GiB and more
 * use the base-256 size encoding (GNU; read by GNU tar, bsdtar, Go). */
#define OCITAR_BLOCK 512u

struct ocitar {
	int fd;       /* owned by the caller */
	uint64_t off; /* bytes written so far */
};

/* Encodes one header; name must be shorter than 100 bytes. type is '0'
 * (file) or '5' (directory). -ENAMETOOLONG, or 0. */
int ocitar_header_encode(uint8_t hdr[OCITAR_BLOCK], const char *name, char type, uint64_t size);
int ocitar_write(struct ocitar *t, const void *p, size_t n);
/* Zero-fills to the next block boundary. */
int ocitar_pad(struct ocitar *t);
int ocitar_dir(struct ocitar *t, const char *name);
/* Header, data, padding of a regular file held in memory. */
int ocitar_file(struct ocitar *t, const char *name, const void *p, size_t n);
/* The same, named blobs/sha256/<hex of digest>. */
int ocitar_blob(struct ocitar *t, const char *digest, const void *p, size_t n);
/* The two zero blocks that end an archive. */
int ocitar_finish(struct ocitar *t);

/* ---- digests and JSON ---- */

/* Canonical JSON of o appended to out: object keys sorted (byte order), no
 * whitespace, '/' not escaped. The same value gives the same bytes. */
int oci_json_dump(struct json_object *o, struct dimg_buf *out);
/* {"digest","mediaType","size"} (plus "artifactType"/"annotations" when
 * given non-NULL by the caller afterwards). Returns NULL on ENOMEM. */
struct json_object *oci_descriptor(const char *media_type, const char *digest, uint64_t size);

/* Rewrites an image config for a single squashed layer: rootfs.diff_ids =
 * [diff_id]; history entries that made layers, but the last, are marked
 * empty_layer, the last one says it holds the squashed layer (one is added
 * if none did); everything else (entrypoint, env, labels, ...) is kept.
 * Output is canonical JSON. -EBADMSG if cfg is not a JSON object. */
int oci_config_squash(const uint8_t *cfg, size_t len, const char *diff_id, struct dimg_buf *out);

/* ---- a runnable image from a tree ---- */

struct oci_image_opts {
	int gzip;           /* layer compressed with gzip (else a plain tar) */
	int gzip_level;     /* 1..9; 0 = 6 */
	const char *ref;    /* name in index.json (both annotations); NULL: none */
	unsigned out_flags; /* PACKER_REPLACE: over a file at out_path */
	dimg_progress_fn progress;
	void *pctx;
};

struct oci_image_result {
	char layer_digest[OCI_DIGEST_LEN];
	char diff_id[OCI_DIGEST_LEN];
	char config_digest[OCI_DIGEST_LEN];
	char manifest_digest[OCI_DIGEST_LEN];
	uint64_t layer_size, layer_raw_size, file_size;
};

/* Writes out_path: an OCI image layout tar (oci-layout, index.json,
 * blobs/sha256/...) of one image whose only layer is tree t as a PAX tar
 * (xattrs as SCHILY.xattr.*, nanosecond mtimes, hardlinks, devices, fifos,
 * exact modes and owners, tree order), each regular file's bytes produced
 * by content() straight into its entry; the layer's digest and diff_id are
 * computed while it is written, then its header is patched in place. The
 * config is the image config cfg rewritten by oci_config_squash. Written to
 * a temporary name next to out_path, renamed when complete; on failure
 * nothing is left. On error err (NULL allowed) names out_path, or the
 * entry that failed (unless content() said first what failed). */
int oci_image_write(const char *out_path, const struct dimg_tree *t, dimg_content_fn content,
                    void *ctx, const uint8_t *cfg, size_t cfg_len, const struct oci_image_opts *o,
                    struct oci_image_result *res, struct dimg_err *err);

/* ---- a runnable image of given layers with the original config ---- */

/* Produces layer i's uncompressed tar bytes into sink. */
typedef int (*oci_layer_fn)(void *ctx, size_t i, dimg_write_fn sink, void *sink_ctx);

struct oci_layers_opts {
	size_t n; /* layers */
	/* called before layer i is produced: sets *gzip to compress it with
	 * gzip (mtime 0, no name) or not; -errno stops the write */
	int (*begin)(void *ctx, size_t i, int *gzip);
	const char *ref;    /* name in index.json; NULL: none */
	unsigned out_flags; /* PACKER_REPLACE: over a file at out_path */
};

struct oci_layers_result {
	char config_digest[OCI_DIGEST_LEN]; /* the digest of cfg as given */
	char manifest_digest[OCI_DIGEST_LEN];
	uint64_t file_size;
	size_t failed; /* the layer that failed, or n */
};

/* Writes out_path: an OCI image layout tar whose config is cfg, byte for
 * byte, and whose layers are produced in order by fn, each checked while
 * written against cfg's rootfs.diff_ids[i]: a count or a diff_id that
 * differs is -EBADMSG (err says which), and nothing is left at out_path.
 * Written to a temporary name, renamed when complete. err (NULL allowed)
 * names out_path unless fn or begin said first what failed. */
int oci_image_write_layers(const char *out_path, oci_layer_fn fn, void *ctx, const uint8_t *cfg,
                           size_t cfg_len, const struct oci_layers_opts *o,
                           struct oci_layers_result *res, struct dimg_err *err);

#ifdef __cplusplus
}
#endif
#endif
