/* Shared by the fuzz targets that read layer recipes (fuzz_layers,
 * fuzz_cdimg): every layer of a recipes blob is streamed in order into a
 * counting sink; predicted entries are read against the small tree of
 * fuzz-recipes-tree.h, whose contents are the only ones found (no image),
 * so RAW, INLINE, predicted entries and the refusals are what runs. A
 * refusal must say why. */
#ifndef DI3FS_FUZZ_LAYERS_READ_H
#define DI3FS_FUZZ_LAYERS_READ_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz-recipes-tree.h"
#include "layers.h"

#define FUZZ_OUT_MAX (64u << 20)

static inline int fuzz_count_sink(void *ctx, const void *p, size_t n)
{
	size_t *total = ctx;
	(void)p;
	if (n > FUZZ_OUT_MAX - *total)
		return -EFBIG;
	*total += n;
	return 0;
}

static inline int fuzz_tree_content(void *ctx, const uint8_t sha256[32], uint64_t size,
                                    dimg_write_fn sink, void *sink_ctx)
{
	const char *c = recipes_content(sha256, size);
	(void)ctx;
	return c ? sink(sink_ctx, c, (size_t)size) : -ENOENT;
}

static inline void fuzz_read_layers(const uint8_t *blob, size_t len)
{
	struct layers_reader *r = NULL;
	struct layers_src src = {.content = fuzz_tree_content};
	struct dimg_tree *tree = NULL;
	size_t total = 0;
	struct dimg_err why = {0};
	if (recipes_tree_new(&tree) < 0)
		abort();
	src.tree = tree;
	int rc = layers_open(&r, blob, len, &why);
	for (size_t i = 0; r && rc == 0 && i < layers_count(r); i++) {
		struct layers_layer l;
		if ((rc = layers_next(r, i, &l, &why)) == 0)
			rc = layers_write(r, &src, fuzz_count_sink, &total, &why);
	}
	/* A refusal always says why; the sink's own (-EFBIG) is the sink's. */
	if (rc < 0 && rc != -ENOMEM && rc != -EFBIG && !why.why[0])
		abort();
	layers_free(r);
	dimg_tree_free(tree);
}

#endif
