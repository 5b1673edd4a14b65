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
	const char *ref;      /* NAME:TAG or name to pick from an index; NULL: the only one */
	const char *platform; /* "os/arch[/variant]"; NULL: this machine's */
	const char *cas_dir;  /* content store directory; NULL: a private temporary
	                         one removed by dimg_image_free */
	unsigned jobs;        /* threads for hashing (0 = one per core) */
	dimg_progress_fn progress;
	void *pctx;
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
	char *ref;  /* the name the image was picked by, if any */
	void *priv; /* owned by the implementation */
};

/* Opens an image: an OCI image layout directory, an OCI layout tar, a
 * `docker save` tar, or a plain directory (walked as a rootfs). Layers are
 * squashed in order, streaming with libarchive (OCI whiteouts delete,
 * opaque directories clear), their digests and the config's diff_ids
 * verified while read; regular files' contents go to the content store.
 * Hostile archives (.. or absolute paths, entries through symlinks,
 * hardlinks to outside, absurd sizes, truncation, digest mismatch) are
 * refused: -EBADMSG / -ELOOP / -EOVERFLOW, with *err (if non-NULL) a
 * malloc'd message naming the layer and entry. */
int dimg_image_open(struct dimg_image **out, const char *path, const struct dimg_image_opts *o,
                    char **err);
void dimg_image_free(struct dimg_image *img);

#ifdef __cplusplus
}
#endif
#endif
