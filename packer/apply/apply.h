/* Applying a delta to its base: the base checked (tree id), the target tree
 * resolved, and every file rebuilt, verified, into a directory or into an
 * OCI image (its original layers from the .cdimg's recipes when the delta
 * and the base allow, else one squashed layer). */
#ifndef DI3FS_APPLY_H
#define DI3FS_APPLY_H

#include <stdint.h>

#include "cdimg.h"
#include "dimg/dimg.h"
#include "dimg/image.h"
#include "ociwrite.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A delta and the base it is applied to (all borrowed). */
struct apply_src {
	const char *delta_name; /* names the delta in messages */
	const struct dimg_reader *rd;
	const struct cdimg_info *ci; /* NULL for a raw .dimg */
	const char *base_name;       /* names the base in messages */
	struct dimg_image *base;
};

/* Whether the base is best opened with its layers recorded
 * (dimg_image_opts.record_layers): a .cdimg with recipes, written as an
 * image with its original layers. */
int apply_base_needs_recipes(const struct cdimg_info *ci, int to_image, int squash);

/* The complete target tree of the delta over the base (*out, the caller
 * frees it). A plain directory standing for an image's base is accepted
 * (dimg_image_match). -EXDEV when the base is another tree: err names the
 * delta and says both tree ids (and configs, for a .cdimg). */
int apply_resolve(const struct apply_src *s, struct dimg_tree **out, struct dimg_err *err);

/* Rebuilds every file of target as directory out (dimg_tree_write_dir,
 * flags DIMG_WRITE_*, DIMG_WRITE_REPLACE to replace a directory there). err names the delta and the
 * entry when a file cannot be rebuilt from it, else what of out failed. */
int apply_write_dir(const char *out, const struct apply_src *s, const struct dimg_tree *target,
                    unsigned flags, dimg_progress_fn progress, void *pctx, struct dimg_err *err);

struct apply_image_opts {
	int squash;         /* one squashed layer even when the original layers could be had */
	int gzip;           /* every layer gzip-compressed */
	const char *ref;    /* the image's name; NULL: the one the .cdimg records */
	unsigned out_flags; /* PACKER_REPLACE: over a file at out */
	dimg_progress_fn progress;
	void *pctx;
};

struct apply_image_result {
	int original;    /* the original layers and config were given back */
	size_t layers;   /* how many layers the image has */
	const char *ref; /* the name it got (borrowed), NULL when none */
	/* Why the original layers were not given back (original == 0 and
	 * not asked to squash). */
	char squash_why[DIMG_ERR_WHY_MAX];
	uint64_t file_size;
	char manifest_digest[OCI_DIGEST_LEN], config_digest[OCI_DIGEST_LEN];
	/* the squashed layer, when original == 0 */
	char layer_digest[OCI_DIGEST_LEN], diff_id[OCI_DIGEST_LEN];
	uint64_t layer_size;
};

/* Writes the target as an OCI image layout tar at out (a .cdimg only:
 * -EINVAL for a raw .dimg, which carries no config). */
int apply_write_image(const char *out, const struct apply_src *s, const struct dimg_tree *target,
                      const struct apply_image_opts *o, struct apply_image_result *res,
                      struct dimg_err *err);

#ifdef __cplusplus
}
#endif
#endif
