/* Container images as di3fs sees them: one squashed root filesystem tree
 * whose regular files live in a content-addressed store on disk, plus the
 * image's original config and manifest bytes. */
#ifndef DIMG_IMAGE_H
#define DIMG_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "dimg/dimg.h"
#include "dimg/tree.h"

#ifdef __cplusplus
extern "C" {
#endif

struct dimg_image_opts {
	const char *ref;        /* NAME:TAG or name to pick from an index; NULL: the only one */
	const char *platform;   /* "os/arch[/variant]"; NULL: this machine's */
	const char *cas_dir;    /* content store directory; NULL: a private temporary
	                           one removed by dimg_image_free */
	unsigned jobs;          /* threads for hashing (0 = one per core) */
	const char *hash_cache; /* plain directory trees: the walk's persistent hash
	                           cache directory (dimg_walk_opts), NULL: none */
	int record_layers;      /* keep a recipe of each layer (dimg_image_layer) */
	dimg_progress_fn progress;
	void *pctx;
};

/* Records of a layer recipe (docs/FORMAT.md "Layer recipes"): the layer's
 * uncompressed tar stream as raw bytes and references to contents. */
#define DIMG_RECIPE_END     0 /* end of the layer */
#define DIMG_RECIPE_RAW     1 /* u32 n (1..65536), n bytes of the stream */
#define DIMG_RECIPE_FILE    2 /* u64 size (>0), sha256: a content of that size and hash */
#define DIMG_RECIPE_INLINE  3 /* u64 size (>0), sha256, the size bytes (in .cdimg only) */
#define DIMG_RECIPE_RAW_MAX (64u << 10)

/* One layer of an image, in order. */
struct dimg_image_layer {
	uint8_t diff_id[32];             /* SHA-256 of the uncompressed tar, verified */
	uint8_t digest[32];              /* SHA-256 of the blob, verified */
	uint64_t size;                   /* blob bytes */
	const char *filter;              /* the blob's compression: "none", "gzip", "zstd", "xz" */
	int has_recipe;                  /* recorded (opts.record_layers) */
	uint64_t recipe_off, recipe_len; /* its records, see dimg_image_recipe_read */
};

struct dimg_image {
	struct dimg_tree *tree;  /* squashed rootfs, hashes set */
	struct dimg_files files; /* opens regular files' content by entry */
	uint8_t tree_id[32];
	/* Original image metadata; all NULL/0 for a plain directory input. */
	uint8_t *config; /* raw config JSON bytes */
	size_t config_len;
	char config_digest[72]; /* "sha256:<hex>" or "" */
	uint8_t *manifest;      /* raw OCI/docker manifest JSON bytes */
	size_t manifest_len;
	char manifest_digest[72];
	char *manifest_media_type;
	char *ref;      /* the name the image was picked by, if any */
	size_t nlayers; /* 0 for a plain directory */
	struct dimg_image_layer *layers;
	void *priv; /* owned by the implementation */
};

/* Opens an image: an OCI image layout directory, an OCI layout tar, a
 * `docker save` tar, or a plain directory (walked as a rootfs). Layers are
 * squashed in order, streaming with libarchive (OCI whiteouts delete,
 * opaque directories clear), their digests and the config's diff_ids
 * verified while read; regular files' contents go to the content store.
 * Hostile archives (.. or absolute paths, entries through symlinks,
 * hardlinks to outside, absurd sizes, truncation, digest mismatch) are
 * refused: -EBADMSG / -ELOOP / -EOVERFLOW. err (NULL allowed) names the
 * image (or, in a directory, the file) that failed and why: the layer and
 * entry, the blob, the document. */
int dimg_image_open(struct dimg_image **out, const char *path, const struct dimg_image_opts *o,
                    struct dimg_err *err);
void dimg_image_free(struct dimg_image *img);

/* The id img's tree would have with the root directory an image gets when
 * no layer sets it (mode 0755, owner 0:0, mtime 0, no xattrs): what a plain
 * directory holding an image's root filesystem stands for, whatever the
 * metadata of the directory itself. */
int dimg_image_implied_root_id(const struct dimg_image *img, uint8_t out[32]);
/* Checks that img is the tree want names: 0, or -EXDEV. A plain directory
 * also matches the tree it stands for (dimg_image_implied_root_id), and
 * then takes that root entry (and tree id) for good. */
int dimg_image_match(struct dimg_image *img, const uint8_t want[32]);

/* Reads exactly n bytes of the recorded recipes at off. -ENOENT when the
 * image recorded none, -EOVERFLOW past their end. */
int dimg_image_recipe_read(const struct dimg_image *img, uint64_t off, void *buf, size_t n);
/* Opens, read-only, a content of the image's layers by SHA-256 (including
 * files later layers replaced or deleted). -ENOENT if there is none. */
int dimg_image_open_content(const struct dimg_image *img, const uint8_t sha256[32], int *fd);

#ifdef __cplusplus
}
#endif
#endif
