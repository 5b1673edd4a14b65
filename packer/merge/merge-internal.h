/* What the files of the merge room share (not installed): the in-memory
 * form of a delta, the merge's context, and the functions each file gives
 * the others. index.c composes index runs, payload.c one file's payload,
 * fold.c folds the chain and writes the result. */
#ifndef DI3FS_MERGE_INTERNAL_H
#define DI3FS_MERGE_INTERNAL_H

#include <stdint.h>

#include "dimg/dimg.h"
#include "merge.h"

/* A blob: borrowed bytes, or bytes owned in own. fast: compressed at
 * zstd level 1 by an intermediate fold, to be recompressed at the end.
 * dict: the input delta whose dictionary a FULL blob is compressed with
 * (its entry flagged DIMG_ENTRY_ZDICT), NULL for a plain frame. */
struct mblob {
	const uint8_t *p;
	size_t len;
	struct dimg_buf own;
	int fast;
	const struct dimg_reader *dict;
};

/* A delta in memory: its index ops and explicit entries, one blob each. */
struct mdelta {
	uint8_t base_id[32], target_id[32];
	uint64_t entries;
	struct dimg_index_op *ops;
	size_t nops, cap;
	struct dimg_tree *x;
	struct mblob *blobs;
	size_t bcap;
};

struct mctx {
	const struct merge_opts *o;
	struct merge_stats *st;
	const char *name; /* the delta being folded in */
	struct dimg_err *err;
	int final_;           /* folding in the last delta: blobs at their real level */
	uint64_t done, total; /* explicit entries composed, for progress */
};

/* ---- fold.c ---- */
void merge_progress(struct mctx *c, const char *what, uint64_t done, uint64_t total);
/* Sets c's error message (the delta being folded in, then fmt) unless one
 * is set; returns rc. */
int merge_fail(struct mctx *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* 1 when c's error context says something already. */
int merge_failed(const struct mctx *c);

/* ---- index.c ---- */
void mdelta_free(struct mdelta *d);
int mdelta_new(struct mdelta **out);
/* Appends an op, joining runs of the same kind. */
int mdelta_op(struct mdelta *d, uint8_t kind, uint32_t count);
/* An input delta in memory, its blobs borrowed from rd's mapping. */
int mdelta_from_reader(struct mdelta **out, const struct dimg_reader *rd, struct mctx *c);
/* A FULL or PATCH entry: one with a blob. */
int merge_has_blob(const struct dimg_entry *e);
/* C = A then B, as one delta from A's base to B's target. */
int merge_pair(struct mctx *c, const struct mdelta *A, const struct mdelta *B, struct mdelta **out);

/* ---- payload.c ---- */
/* One explicit entry of B (copied into e, blob b), made relative to v1. */
int merge_compose_entry(struct mctx *c, const struct mdelta *A, struct dimg_entry *e,
                        struct mblob *b);
const char *merge_src_of(const struct dimg_entry *e);
/* A FULL blob's content: a plain zstd frame, or one made with its delta's
 * dictionary. */
int merge_full_decode(const struct mblob *b, struct dimg_buf *out);
/* The zstd level a blob of e gets in this fold. */
int merge_level_for(const struct mctx *c, const struct dimg_entry *e);
/* Makes own (moved in) b's bytes. */
void merge_mblob_take(struct mblob *b, struct dimg_buf *own);
/* A patch an intermediate fold compressed fast, at level. */
int merge_repack(uint8_t codec, const uint8_t *p, size_t len, int level, struct dimg_buf *out);
/* e becomes SAME as v1's file src: no blob. */
int merge_make_same(struct mctx *c, struct dimg_entry *e, struct mblob *b, const char *src);
/* The composed v1-relative patch e holds in b, applied to the base:
 * re-encoded when that is smaller. */
int merge_maybe_reencode(struct mctx *c, struct dimg_entry *e, struct mblob *b);
/* A FULL blob made with another delta's dictionary, made a plain frame. */
int merge_undict(struct mctx *c, struct dimg_entry *e, struct mblob *b);

#endif
