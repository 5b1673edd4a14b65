/* Layer recipes in a .cdimg (docs/FORMAT.md "Layer recipes"): what it takes
 * to rebuild each original layer tar of the target image byte for byte. The
 * blob is one zstd frame; the writer embeds contents neither image's tree
 * holds, the reader streams each layer's tar bytes in order. */
#ifndef DI3FS_LAYERS_H
#define DI3FS_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "dimg/codec.h"
#include "dimg/image.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LAYERS_VERSION     2u /* written by default: predicted entries */
#define LAYERS_VERSION_RAW 1u /* plain records only (--recipes=raw); still read */

enum layers_kind { LAYERS_RECIPE = 1, LAYERS_FROM_BASE = 2 };
enum layers_comp {
	LAYERS_COMP_NONE = 0,
	LAYERS_COMP_GZIP = 1,
	LAYERS_COMP_ZSTD = 2,
	LAYERS_COMP_XZ = 3,
	LAYERS_COMP_OTHER = 4 /* a compression none of the above names */
};

struct layers_stats {
	size_t layers, from_base;
	uint64_t raw_bytes;                  /* tar bytes kept as they are */
	uint64_t refs, ref_bytes;            /* contents referenced */
	uint64_t inline_files, inline_bytes; /* contents embedded */
	uint64_t blob_size;                  /* the compressed blob */
	unsigned version;                    /* of the blob */
	/* tar entries of the recorded layers: as the writer model predicts
	 * them, patched predictions, kept as they are */
	uint64_t entries, exact, patched, raw_entries;
	size_t unchecked; /* layers written as they are: their predictions failed the check */
};

/* Writes the recipe blob of target (opened with record_layers) against
 * base to out_fd: a layer whose diff_id is one of base's is "from base",
 * the others are recipes whose contents neither tree holds are embedded
 * (read from target's content store). Unless raw, each entry's tar
 * headers are recorded as what a writer model predicts from target's tree
 * (version 2), else as they are (version 1). Deterministic. -ENOTSUP,
 * with err saying so, when a layer cannot be recorded. */
int layers_build(int out_fd, const struct dimg_image *target, const struct dimg_image *base,
                 int level, int raw, struct layers_stats *st, struct dimg_err *err);

/* Where a rebuilt layer's contents come from, besides the embedded ones. */
struct layers_src {
	const struct dimg_image *base; /* opened with record_layers: its store, its recipes */
	/* the target file with this content into sink; -ENOENT if none */
	int (*content)(void *ctx, const uint8_t sha256[32], uint64_t size, dimg_write_fn sink,
	               void *sink_ctx);
	void *ctx;
	/* the target tree the delta rebuilt (predicted entries are read
	 * against it); NULL: a layer with predicted entries is refused */
	const struct dimg_tree *tree;
};

struct layers_layer {
	uint8_t kind, comp;
	uint8_t diff_id[32];
};

struct layers_reader;

/* Starts reading a recipe blob (borrowed, must outlive the reader):
 * checks the magic, version (1 or 2) and layer count. -EBADMSG / -ENOTSUP. */
int layers_open(struct layers_reader **out, const uint8_t *blob, size_t len, struct dimg_err *err);
void layers_free(struct layers_reader *r);
size_t layers_count(const struct layers_reader *r);
/* Layer i's header; layers are read in order, each once: i must be the
 * next one, and layers_write must follow before the next call. */
int layers_next(struct layers_reader *r, size_t i, struct layers_layer *out, struct dimg_err *err);
/* Streams the current layer's tar bytes into sink. Every content is
 * checked against its size and SHA-256; -EBADMSG with err on a mismatch
 * or a damaged record. */
int layers_write(struct layers_reader *r, const struct layers_src *src, dimg_write_fn sink,
                 void *sink_ctx, struct dimg_err *err);

/* Recipes for a merged delta (cdimg merge): b describes image vk+1 made
 * against vk, a describes vk (or anything holding vk's layers). The result
 * is b with each layer b takes "as in the base" replaced by a's recipe of
 * the layer with that diff_id, where a records one (*taken counts them);
 * the others stay as they are. A content either recipe names must still be
 * in the applier's base or target tree: layers_write says which is not.
 * a's recipes with predicted entries are read against a_tree (vk's tree)
 * and written again against b_tree (vk+1's); without both trees such a
 * layer stays "as in the base" (*lost counts them). Compressed at level
 * with a checksum, like layers_build. -EBADMSG with err for a damaged
 * blob. */
int layers_compose(const uint8_t *a, size_t alen, const struct dimg_tree *a_tree, const uint8_t *b,
                   size_t blen, const struct dimg_tree *b_tree, int level, struct dimg_buf *out,
                   size_t *taken, size_t *lost, struct dimg_err *err);

#ifdef __cplusplus
}
#endif
#endif
