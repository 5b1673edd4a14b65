/* Binary patch codecs: our bsdiff-family codec (suffix array by
 * libdivsufsort, zstd-compressed streams), zstd with the old file as a
 * prefix dictionary, and gzip-recompress (a patch of gzip files'
 * decompressed contents, recompressed by zlib on apply). All are
 * deterministic and apply in streaming form. */
#ifndef DIMG_CODEC_H
#define DIMG_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "dimg/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* On-disk codec ids (the `codec` byte of a patch entry). */
enum dimg_codec {
	DIMG_CODEC_NONE = 0,
	DIMG_CODEC_BSDIFF = 1,  /* docs/patch-format.md */
	DIMG_CODEC_ZSTDREF = 2, /* one zstd frame, old file as raw prefix */
	DIMG_CODEC_GZRE = 3,    /* gzip-recompress: patch of the decompressed contents */
	DIMG_CODEC_CHAIN = 4,   /* patches of codecs 1-3 applied in turn (made by merge) */
};

/* Produces a bsdiff patch turning old into new, appended to *out.
 * level: zstd level for the three streams (1..22). Memory: about
 * 4*oldlen (suffix array; 8*oldlen past 2 GiB) + the inputs.
 * Returns 0 or -errno (-ENOMEM, -EFBIG past limits). */
int dimg_bsdiff(const uint8_t *old, size_t oldlen, const uint8_t *new_, size_t newlen, int level,
                struct dimg_buf *out);

/* Applies a bsdiff patch to old, streaming the result to sink; the result
 * is never held whole in memory. Returns the new size through *newlen.
 * Corrupt patch -> -EBADMSG; unknown version -> -ENOTSUP. */
int dimg_bspatch(const uint8_t *old, size_t oldlen, const uint8_t *patch, size_t patchlen,
                 dimg_write_fn sink, void *sink_ctx, uint64_t *newlen);

/* Composes two bsdiff patches, ab (old -> mid) and bc (mid -> new), into
 * one patch old -> new appended to *out, without old, mid or new: each new
 * byte range is mapped through bc to mid, then through ab to old; diff
 * bytes add up modulo 256, ranges landing in ab's extra bytes become extra
 * bytes (docs/merge.md). Both patches are checked as apply checks them.
 * Memory: both patches decoded, plus the result's streams.
 * -EXDEV when bc was not made against a file of ab's new size. */
int dimg_bsdiff_compose(const uint8_t *ab, size_t ablen, const uint8_t *bc, size_t bclen, int level,
                        struct dimg_buf *out);

/* The same bsdiff patch with its streams recompressed at level (checked
 * as apply checks it), appended to *out. */
int dimg_bsdiff_repack(const uint8_t *patch, size_t len, int level, struct dimg_buf *out);

/* zstd frame of new compressed with old as a raw prefix (long-distance
 * matching, window large enough to see all of old). Appends to *out. */
/* The level to run zstdref at: the caller's, but at most
 * DIMG_ZSTDREF_LARGE_LEVEL once old + new reach DIMG_ZSTDREF_LARGE bytes.
 * On large near-identical files (Debian changelogs of 760 KiB) level 19
 * costs three times level 12 for a tenth fewer bytes of an already small
 * patch: some hundred bytes per file. */
#define DIMG_ZSTDREF_LARGE       ((uint64_t)1 << 20)
#define DIMG_ZSTDREF_LARGE_LEVEL 12
int dimg_zstdref_level(int level, uint64_t oldlen, uint64_t newlen);
int dimg_zstdref_encode(const uint8_t *old, size_t oldlen, const uint8_t *new_, size_t newlen,
                        int level, struct dimg_buf *out);
int dimg_zstdref_decode(const uint8_t *old, size_t oldlen, const uint8_t *patch, size_t patchlen,
                        dimg_write_fn sink, void *sink_ctx, uint64_t *newlen);

/* Plain zstd frame of data (for DIMG_PAYLOAD_FULL), deterministic,
 * single-threaded; appends to *out. */
int dimg_zstd_encode(const uint8_t *data, size_t len, int level, struct dimg_buf *out);
/* Streams the decompressed frame to sink; checks the frame holds exactly
 * one frame and no trailing bytes. */
int dimg_zstd_decode(const uint8_t *blob, size_t bloblen, dimg_write_fn sink, void *sink_ctx,
                     uint64_t *outlen);

/* A zstd dictionary trained on many small files (ZDICT), ready to compress
 * with. Shared read-only by any number of threads. */
struct dimg_zdict;
/* Trains a dictionary of at most cap bytes on n samples laid back to back
 * in samples (sizes[i] bytes each); level is the one frames will use.
 * Deterministic (single-threaded training). -ENODATA when zstd cannot
 * build one from these samples (too few, too small). */
int dimg_zdict_train(struct dimg_zdict **out, const uint8_t *samples, const size_t *sizes, size_t n,
                     size_t cap, int level);
/* The dictionary's bytes, borrowed from d. */
void dimg_zdict_bytes(const struct dimg_zdict *d, const uint8_t **p, size_t *len);
void dimg_zdict_free(struct dimg_zdict *d);
/* Like dimg_zstd_encode, with the dictionary (no dictionary id in the
 * frame: the delta holds exactly one). */
int dimg_zstd_encode_dict(const struct dimg_zdict *d, const uint8_t *data, size_t len,
                          struct dimg_buf *out);

/* gzip-recompress: new_ must be a gzip file (one or more members) that
 * zlib recreates byte for byte with some parameters; the blob records the
 * member headers and parameters and a patch (or, when old is not gzip, a
 * zstd frame) of the decompressed content. Either side's content is at
 * most 64 MiB. Appends to *out; -ENODATA when new_ does not qualify (the
 * caller uses another codec). The blob is decoded and compared before it
 * is returned. */
int dimg_gzre_encode(const uint8_t *old, size_t oldlen, const uint8_t *new_, size_t newlen,
                     int level, unsigned inner_codecs, struct dimg_buf *out);
/* inner_codecs of dimg_gzre_encode: the patch codecs the inner payload may
 * use (a zstd frame of the new content is always allowed). bsdiff alone
 * gives blobs `cdimg merge` composes without the files. */
#define DIMG_GZRE_INNER_BSDIFF  (1u << DIMG_CODEC_BSDIFF)
#define DIMG_GZRE_INNER_ZSTDREF (1u << DIMG_CODEC_ZSTDREF)
#define DIMG_GZRE_INNER_ALL     (DIMG_GZRE_INNER_BSDIFF | DIMG_GZRE_INNER_ZSTDREF)
/* Decompresses old (held whole, at most 64 MiB), applies the inner patch
 * and deflates the result member by member, streaming to sink. Corrupt
 * blob -> -EBADMSG; old not the file the blob was made against -> -EXDEV. */
int dimg_gzre_decode(const uint8_t *old, size_t oldlen, const uint8_t *patch, size_t patchlen,
                     dimg_write_fn sink, void *sink_ctx, uint64_t *newlen);

/* Composes two gzip-recompress blobs ab (old -> mid) and bc (mid -> new)
 * into one blob old -> new, appended to *out, without any of the files:
 * bc's member records and headers, ab's old content length, and an inner
 * payload that composes: bc's own when it is a zstd frame; the two inner
 * bsdiff patches composed (dimg_bsdiff_compose); or, when ab's inner is a
 * zstd frame (mid's whole content), bc's inner applied to it and stored as
 * a zstd frame. -ENOTSUP for the other pairs (a zstdref inner over a
 * patch); -EXDEV when bc was not made against ab's content length. level:
 * zstd level of what is recompressed. */
int dimg_gzre_compose(const uint8_t *ab, size_t ablen, const uint8_t *bc, size_t bclen, int level,
                      struct dimg_buf *out);

/* The same gzip-recompress blob with its inner payload recompressed at
 * level (a bsdiff patch's streams, or a zstd frame), checked as apply
 * checks it; appended to *out. */
int dimg_gzre_repack(const uint8_t *patch, size_t len, int level, struct dimg_buf *out);

/* Codec 4, chain: one file's patches of codecs 1-3 applied in turn, each
 * intermediate content checked by its size and SHA-256 (the last step's
 * output is the new file, checked by whoever checks the file). Made by
 * `cdimg merge` where two patches do not compose; at most DIMG_CHAIN_MAX
 * steps. */
#define DIMG_CHAIN_MAX 64
struct dimg_chain_step {
	uint8_t codec;      /* DIMG_CODEC_BSDIFF .. DIMG_CODEC_GZRE */
	uint64_t size;      /* this step's output length (not stored for the last) */
	uint8_t sha256[32]; /* its SHA-256 (not stored for the last) */
	const uint8_t *blob;
	size_t len;
};
/* Writes n (2 .. DIMG_CHAIN_MAX) steps as a chain blob appended to *out. */
int dimg_chain_encode(const struct dimg_chain_step *s, size_t n, struct dimg_buf *out);
/* Splits a chain blob into its steps (s has room for DIMG_CHAIN_MAX);
 * blobs point into patch. -EBADMSG when malformed, -ENOTSUP for another
 * version. */
int dimg_chain_parse(const uint8_t *patch, size_t len, struct dimg_chain_step *s, size_t *n);
/* Applies the steps to old; intermediates are held in memory (two at a
 * time), the last step streams to sink. An intermediate that is not what
 * the blob says -> -EBADMSG; errors of the steps' codecs pass through. */
int dimg_chain_apply(const uint8_t *old, size_t oldlen, const uint8_t *patch, size_t patchlen,
                     dimg_write_fn sink, void *sink_ctx, uint64_t *newlen);

/* Dispatch on codec id: patch apply for DIMG_CODEC_* values. */
int dimg_patch_apply(uint8_t codec, const uint8_t *old, size_t oldlen, const uint8_t *patch,
                     size_t patchlen, dimg_write_fn sink, void *sink_ctx, uint64_t *newlen);

#ifdef __cplusplus
}
#endif
#endif
