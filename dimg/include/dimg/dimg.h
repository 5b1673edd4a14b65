/* The .dimg delta format (docs/FORMAT.md): header, blobs, a compressed index
 * of the complete target tree encoded against the base tree, trailer.
 * Writer streams; reader maps the file and reaches any blob directly. */
#ifndef DIMG_DIMG_H
#define DIMG_DIMG_H

#include <stddef.h>
#include <stdint.h>

#include "dimg/codec.h"
#include "dimg/tree.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DIMG_FORMAT_VERSION 1u
#define DIMG_HEADER_SIZE    96u
#define DIMG_TRAILER_SIZE   64u
/* Largest decompressed index a reader accepts. */
#define DIMG_INDEX_MAX (1u << 30)
/* Largest shared zstd dictionary a reader accepts. */
#define DIMG_DICT_MAX (1u << 20)

/* ---- writer ---- */
struct dimg_writer;

/* Starts a .dimg on fd (positioned at 0, owned by the caller): writes the
 * header. Ids are dimg_tree_id() of base and target. */
int dimg_writer_new(struct dimg_writer **out, int fd, const uint8_t base_id[32],
                    const uint8_t target_id[32]);
/* Stores the delta's zstd dictionary (docs/FORMAT.md "Dictionary"): only
 * as the very first blob, at most once, 8..DIMG_DICT_MAX bytes (-EINVAL
 * otherwise). FULL entries with DIMG_ENTRY_ZDICT are compressed with it. */
int dimg_writer_add_dict(struct dimg_writer *w, const void *p, size_t n);
/* Appends a blob; gives back its offset and XXH3-64. */
int dimg_writer_add_blob(struct dimg_writer *w, const void *p, size_t n, uint64_t *off,
                         uint64_t *xxh3);
/* Writes the index and trailer. target's REG entries carry payload, codec,
 * flags, src, blob_* as planned; entries equal to the base entry at the same path
 * (metadata and content, payload SAME from that path) are encoded as runs.
 * Does not fsync or close fd. */
int dimg_writer_finish(struct dimg_writer *w, const struct dimg_tree *base,
                       const struct dimg_tree *target);
/* One op of a .dimg index (docs/FORMAT.md "Index"); kinds are the op
 * bytes. */
enum dimg_index_kind {
	DIMG_INDEX_KEEP = 1,  /* count base entries kept */
	DIMG_INDEX_SKIP = 2,  /* count base entries dropped */
	DIMG_INDEX_ENTRY = 3, /* count: position in the explicit entries */
};
struct dimg_index_op {
	uint8_t kind;
	uint32_t count;
};

/* Writes the index and trailer from ops as given, for a caller that knows
 * the target only relative to the base (merging deltas): explicit holds
 * the ENTRY records in ops order, with payloads and blob fields set;
 * entries is the target's entry count. Ops are checked for shape (counts
 * non-zero, ENTRY positions in range, in order, each used once, KEEP +
 * ENTRY = entries), not against any base. */
int dimg_writer_finish_ops(struct dimg_writer *w, const struct dimg_index_op *ops, size_t nops,
                           const struct dimg_tree *explicit_, uint64_t entries);
void dimg_writer_free(struct dimg_writer *w);
/* Bytes written so far. */
uint64_t dimg_writer_offset(const struct dimg_writer *w);

/* ---- reader ---- */
struct dimg_reader;

/* Index statistics, known without the base. */
struct dimg_index_stats {
	uint64_t entries;   /* entries of the complete target tree */
	uint64_t kept;      /* entries carried unchanged from the base */
	uint64_t dropped;   /* base entries not kept: changed, removed or renamed */
	uint64_t explicit_; /* entries stored in full */
	uint64_t index_len, index_raw_len, blobs_len, file_len;
	uint64_t dict_len;   /* bytes of the shared zstd dictionary, 0 if none */
	uint64_t dict_blobs; /* stored entries whose blob uses it */
};

/* Opens and maps a .dimg, checks header, trailer, index checksum, and
 * decodes the index (every offset and length bounds-checked).
 * -ENOTSUP unknown version, -EBADMSG corrupt, -EOVERFLOW out of range. */
int dimg_reader_open(struct dimg_reader **out, const char *path);
int dimg_reader_open_mem(struct dimg_reader **out, const uint8_t *buf, size_t len);
void dimg_reader_free(struct dimg_reader *r);

const uint8_t *dimg_reader_base_id(const struct dimg_reader *r);
const uint8_t *dimg_reader_target_id(const struct dimg_reader *r);
void dimg_reader_stats(const struct dimg_reader *r, struct dimg_index_stats *st);
/* The explicitly stored entries (sorted), with payload fields; SAME
 * entries have sha256 zero until resolved. Borrowed from r. */
const struct dimg_tree *dimg_reader_explicit(const struct dimg_reader *r);
/* The index ops in order (ENTRY counts index dimg_reader_explicit());
 * borrowed from r, *n gets their number. */
const struct dimg_index_op *dimg_reader_ops(const struct dimg_reader *r, size_t *n);
/* The delta's zstd dictionary (checked when the reader opened): *p and
 * *len point into the mapping, NULL and 0 when it has none. */
void dimg_reader_dict(const struct dimg_reader *r, const uint8_t **p, size_t *len);
/* Decodes a zstd frame compressed with this delta's dictionary (a FULL
 * blob of an entry flagged DIMG_ENTRY_ZDICT, wherever its bytes now are);
 * -EBADMSG when the delta has no dictionary. */
int dimg_reader_decode_dict(const struct dimg_reader *r, const uint8_t *blob, size_t len,
                            dimg_write_fn sink, void *sink_ctx);

/* Builds the complete target tree from the base tree. -EXDEV if base's
 * tree id is not the one the delta needs; -EBADMSG if the index does not
 * fit the base or the result's tree id differs from the header's. The
 * result's REG entries carry payloads (kept ones: SAME from their path). */
int dimg_reader_resolve(const struct dimg_reader *r, const struct dimg_tree *base,
                        struct dimg_tree **out);

/* Same decoding without the tree-id checks, for a base whose identity the
 * caller has established otherwise (e.g. walked with DIMG_WALK_NO_HASH
 * from a snapshot known by its chain id): still -EBADMSG if the index does
 * not fit the base (runs past its end, a SAME/PATCH source that is not a
 * base regular file, a SAME of another size, an invalid result). Kept and
 * SAME entries carry the base entry's sha256 (zero if base has none);
 * FULL and PATCH entries carry the delta's, which dimg_reader_rebuild
 * verifies, so every rebuilt file is still checked. */
int dimg_reader_resolve_unverified(const struct dimg_reader *r, const struct dimg_tree *base,
                                   struct dimg_tree **out);

/* The blob of an entry, bounds- and XXH3-checked; borrowed from r. */
int dimg_reader_blob(const struct dimg_reader *r, const struct dimg_entry *e, const uint8_t **p,
                     size_t *len);

/* Streams the content of a resolved REG entry to sink, from its payload and
 * the base files; checks size and SHA-256 at the end (-EBADMSG on
 * mismatch: the sink has then seen bad bytes and the caller discards
 * them). The new file is never held whole in memory. */
int dimg_reader_rebuild(const struct dimg_reader *r, const struct dimg_entry *e,
                        const struct dimg_files *base, dimg_write_fn sink, void *sink_ctx);

/* ---- what a delta changes ---- */

/* Every count a command reports about a delta, each defined here once.
 * Entries are counted by path: the base's and the target's entries pair
 * up at equal paths. The five parts add up both ways:
 *   base entries   = kept + changed + removed + renamed
 *   target entries = kept + changed + added   + renamed */
#define DIMG_COUNT_UNKNOWN UINT64_MAX
struct dimg_counts {
	uint64_t entries; /* entries of the target tree */
	uint64_t kept;    /* target entries equal to the base's at their path (metadata and
	                     content): the index's KEEP runs, costing nothing */
	uint64_t stored;  /* target entries the index stores: changed + added + renamed */
	uint64_t dropped; /* base entries not kept: changed + removed + renamed */
	/* Known when both trees are (dimg_counts_trees), or when the index
	 * leaves no doubt (nothing stored, or nothing dropped); otherwise
	 * DIMG_COUNT_UNKNOWN. */
	uint64_t changed; /* target entries at a path the base has, not kept */
	uint64_t added;   /* target entries at a path the base lacks, but renamed ones */
	uint64_t renamed; /* non-empty regular files at a path the base lacks with the
	                     content of a base file at a path the target lacks (each
	                     such base file pairs with one) */
	uint64_t removed; /* base entries at a path the target lacks, but renamed ones */
	/* The stored regular files, by enum dimg_payload; bytes are their
	 * blobs' (a blob two files share counts for each). */
	uint64_t files[5], bytes[5];
	uint64_t patches[5]; /* stored PATCH files by enum dimg_codec */
	uint64_t dict_files; /* stored FULL files compressed with the delta's dictionary */
};

/* From the base tree and the complete target tree with payloads and blob
 * fields (a plan the packer wrote, or a delta resolved): every count. */
int dimg_counts_trees(struct dimg_counts *c, const struct dimg_tree *base,
                      const struct dimg_tree *target);
/* From a delta's index alone. */
void dimg_counts_index(struct dimg_counts *c, const struct dimg_reader *r);
/* From index ops, as dimg_writer_finish_ops takes them. */
void dimg_counts_ops(struct dimg_counts *c, const struct dimg_index_op *ops, size_t nops,
                     const struct dimg_tree *explicit_, uint64_t entries);

#ifdef __cplusplus
}
#endif
#endif
