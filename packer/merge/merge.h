/* Merging a chain of deltas v1->v2->...->vN into one delta v1->vN without
 * any of the images (docs/merge.md): index runs composed position by
 * position, per-file payloads composed (bsdiff patches composed in place). */
#ifndef DI3FS_MERGE_H
#define DI3FS_MERGE_H

#include <stdint.h>

#include "differ.h"
#include "dimg/dimg.h"
#include "dimg/image.h"

#ifdef __cplusplus
extern "C" {
#endif

struct merge_opts {
	unsigned out_flags; /* PACKER_REPLACE: over a file at the output's path */
	int level;          /* zstd level of re-compressed blobs and composed patches */
	/* ... for files of large_size bytes or more: zstd's high levels cost
	 * seconds on multi-MiB streams and gain little on composed ones. */
	int large_level;
	uint64_t large_size;
	/* The first delta's base, optional (NULL: merge without it). With it,
	 * files the codecs cannot compose are rebuilt and re-encoded against
	 * it, and composed patches larger than reencode_ratio x the chain's
	 * last patch of that file are re-encoded too (smaller one kept). */
	const struct dimg_tree *base;
	const struct dimg_files *base_files;
	/* ... for merge_write: the first delta's base as an image (or the
	 * directory standing for it), which sets base and base_files. */
	struct dimg_image *base_image;
	struct differ_opts diff;
	double reencode_ratio;
	/* Called now and then with entries done / to do (NULL: none). */
	void (*progress)(void *ctx, const char *what, uint64_t done, uint64_t total);
	void *progress_ctx;
};

struct merge_stats {
	struct dimg_counts counts; /* what the merged delta changes (from its index) */
	uint64_t copied;           /* blobs carried over as they were */
	uint64_t remapped;         /* SAME/PATCH whose source was moved to the first base */
	uint64_t composed;         /* patch pairs composed into one (bsdiff, gzip-recompress) */
	uint64_t decoded;          /* patches applied to a full blob, stored full */
	uint64_t reencoded;        /* files rebuilt from --base and re-encoded */
	uint64_t undict;           /* full copies of another delta's dictionary made plain */
	uint64_t output_size;
};

void merge_opts_default(struct merge_opts *o);

/* Merges rds[0..n) (n >= 1; each delta's base tree must be the previous
 * one's target, checked by tree id) into one .dimg at out_path (temporary
 * name, renamed when complete). names[i] name the inputs in messages. On
 * failure err (NULL allowed) names the file (an input, or out_path) and
 * the problem: -EXDEV for a broken chain, -ENOTSUP for a file whose codecs
 * do not compose and no base was given, -EBADMSG for deltas that do not
 * fit each other. */
int merge_write_dimg(const char *out_path, struct dimg_reader *const *rds, const char *const *names,
                     size_t n, const struct merge_opts *o, struct merge_stats *st,
                     struct dimg_err *err);

struct merge_result {
	struct merge_stats st;
	uint64_t size; /* bytes of the output */
	/* layers of the target recorded against an intermediate image's tree
	 * (predicted entries) that stay "as in the base": without the first
	 * delta's base, apply gives back one squashed layer instead */
	size_t layers_lost;
};

/* Merges the delta files paths[0..n) (.dimg or .cdimg) into out: a .dimg
 * when raw, else a .cdimg, which needs the first and the last input to be
 * .cdimg files (-EINVAL otherwise, err naming the one that is not); it
 * names the first delta's base config, carries the last one's target
 * config and manifest, and the layer recipes composed along the chain.
 * err names what failed: an input, or out. */
int merge_write(const char *out, const char *const *paths, size_t n, int raw,
                const struct merge_opts *o, struct merge_result *res, struct dimg_err *err);

#ifdef __cplusplus
}
#endif
#endif
