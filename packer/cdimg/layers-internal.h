/* Shared by the layer recipe writer and reader (layers.c) and the
 * predicted records (layers_pred.c: reading, layers_enc.c: writing):
 * record types of version 2, record streams in and out, varints. */
#ifndef DI3FS_LAYERS_INTERNAL_H
#define DI3FS_LAYERS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dimg/image.h"
#include "dimg/tree.h"
#include "dimg/types.h"
#include "tarmodel.h"

/* Record types 0..3 are DIMG_RECIPE_* (dimg/image.h); version 2 adds: */
#define LAYERS_REC_MODEL   4 /* u8 writer, u8 order, u8 n, n bytes name prefix */
#define LAYERS_REC_ENTRY   5 /* varint zigzag skip, u8 flags, [patch] */
#define LAYERS_REC_ENTRIES 6 /* varint k: k entries as predicted */
#define LAYERS_REC_ZEROS   7 /* varint n: n zero bytes */

#define LAYERS_ENTRY_PATCH      0x01u /* a patch of the predicted bytes follows */
#define LAYERS_ENTRY_NO_CONTENT 0x02u /* the content is not the tree's: records follow */
#define LAYERS_ENTRY_CHECKSUM   0x04u /* main header checksum set after patching */
#define LAYERS_ENTRY_FLAGS      0x07u

#define LAYERS_ZEROS_MAX (1ull << 32)

/* Reads exactly n bytes, else -EBADMSG (or another -errno). */
struct lrec_in {
	int (*read)(void *ctx, void *p, size_t n);
	void *ctx;
};

/* Where decoded records go: tar bytes, and contents named by SHA-256. */
struct lrec_out {
	int (*bytes)(void *ctx, const void *p, size_t n);
	int (*content)(void *ctx, const uint8_t sha256[32], uint64_t size);
	void *ctx;
};

/* A record stream in memory. */
struct lrec_mem {
	const uint8_t *p;
	size_t n, at;
};
int lrec_mem_read(void *ctx, void *p, size_t n);

int lvar_get(const struct lrec_in *in, uint64_t *v);
int lvar_put(struct dimg_buf *b, uint64_t v);
uint64_t lvar_zigzag(int64_t v);
int64_t lvar_unzigzag(uint64_t v);

/* ---- reading predicted records (layers_pred.c) ---- */

struct lpred {
	const struct dimg_tree *tree;
	struct tarmodel m;
	struct tarmodel_dfs dfs;
	int have_dfs, have_model;
	struct dimg_buf pred, out;
};

/* Over tree t (borrowed); lpred_layer before each layer. */
int lpred_init(struct lpred *d, const struct dimg_tree *t);
void lpred_free(struct lpred *d);
void lpred_layer(struct lpred *d);
/* Decodes one record of type 4..7 (its type byte already read). -EBADMSG
 * for a damaged one. */
int lpred_record(struct lpred *d, uint8_t type, const struct lrec_in *in,
                 const struct lrec_out *out);
/* Length of the record of type 4..7 at p (n bytes), 0 if it runs past. */
size_t lpred_record_len(const uint8_t *p, size_t n);
/* The records rec[0..n) of one layer (up to its END), predicted against
 * tree from, appended to out predicted against tree to. */
int lpred_retarget(const uint8_t *rec, size_t n, const struct dimg_tree *from,
                   const struct dimg_tree *to, struct dimg_buf *out);
/* A digest of what one layer's records (up to END; predicted ones read
 * against t) stand for: the tar bytes with each content as its place, size
 * and SHA-256. Equal digests, equal layers. */
int lpred_digest(const struct lrec_in *in, const struct dimg_tree *t, uint8_t out[64]);
/* Applies the patch read from in to pred into out; -EBADMSG if damaged. */
int lpred_patch(const struct dimg_buf *pred, const struct lrec_in *in, struct dimg_buf *out);

/* ---- writing predicted records (layers_enc.c) ---- */

/* Where the encoder's records go: bytes of records, and each FILE record
 * of the input (41 bytes) whose content is not implied, to be written as
 * FILE or INLINE. */
struct lenc_out {
	int (*write)(void *ctx, const void *p, size_t n);
	int (*file)(void *ctx, const uint8_t rec[41]);
	void *ctx;
};

/* A layer's plain records (RAW, FILE, INLINE up to END), from the start
 * again after rewind. */
struct lenc_src {
	int (*read)(void *ctx, void *p, size_t n);
	int (*rewind)(void *ctx);
	void *ctx;
};

struct lenc_stats {
	uint64_t entries, exact, patched, raw; /* tar entries by how they were written */
	uint64_t raw_bytes;                    /* in RAW records */
};

/* Writes the layer's records (up to and including END) predicted against
 * tree t (dfs: its depth-first order, may be NULL) with the writer model
 * that predicts it best. Exact: the records give the same tar bytes. */
int lenc_layer(const struct lenc_src *src, const struct dimg_tree *t,
               const struct tarmodel_dfs *dfs, const struct lenc_out *out, struct lenc_stats *st);

#endif
