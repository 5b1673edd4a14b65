/* The differ: matches each regular file of a target tree to base files
 * (same content anywhere, same path, or a similar version-named path) and
 * picks the smallest encoding of each changed file. */
#ifndef DI3FS_DIFFER_H
#define DI3FS_DIFFER_H

#include <stddef.h>
#include <stdint.h>

#include "dimg/codec.h"
#include "dimg/tree.h"

#ifdef __cplusplus
extern "C" {
#endif

struct differ_opts {
	int level;                   /* zstd level for blobs and patch streams */
	uint64_t max_diff_size;      /* larger old or new files are stored full */
	uint64_t max_zstdref_window; /* zstdref only while old+new fit this */
	unsigned codecs;             /* DIFFER_CODEC_* bits tried */
};

#define DIFFER_CODEC_BSDIFF  0x1u
#define DIFFER_CODEC_ZSTDREF 0x2u
#define DIFFER_CODEC_GZIP    0x4u /* gzip-recompress, for gzip files zlib recreates */

/* Defaults: level 19, max_diff_size 512 MiB, zstdref while old+new <= 1 GiB
 * (any pair max_diff_size lets through: on a major update of a large file
 * zstdref's window over all of old beats bsdiff; a fast probe skips its slow
 * level where bsdiff is far ahead), all codecs. */
void differ_opts_default(struct differ_opts *o);

/* Builds *out: a copy of target whose REG entries carry a plan:
 * EMPTY (size 0), SAME with src (content equal to a base file; the same
 * path preferred), or PATCH with src = the chosen patch source, or FULL when
 * no base file resembles it. PATCH entries are only a plan: the encoder may
 * turn them into FULL. */
int differ_plan(const struct dimg_tree *base, const struct dimg_tree *target,
                struct dimg_tree **out);

/* The key used to match version-named files: every run of decimal digits
 * becomes '#' ("usr/lib/libfoo.so.1.2" -> "usr/lib/libfoo.so.#.#").
 * Returns a malloc'd string or NULL. */
char *differ_version_key(const char *path);

struct differ_result {
	uint8_t payload; /* DIMG_PAYLOAD_FULL or DIMG_PAYLOAD_PATCH */
	uint8_t codec;
	struct dimg_buf blob;
};

/* Encodes new_ against old (old may be NULL: full copy only) with every
 * codec the options allow and keeps the smallest; a patch is never kept
 * when it is not smaller than the full copy. Deterministic. */
int differ_encode(const uint8_t *old, size_t oldlen, const uint8_t *new_, size_t newlen,
                  const struct differ_opts *o, struct differ_result *res);

#ifdef __cplusplus
}
#endif
#endif
