/* Shared by the fuzz targets that read layer recipes (fuzz_layers,
 * fuzz_cdimg): every layer of a recipes blob is streamed in order into a
 * counting sink; contents come from no image (FILE records find nothing),
 * so RAW, INLINE and the refusals are what runs. A refusal must say why. */
#ifndef DI3FS_FUZZ_LAYERS_READ_H
#define DI3FS_FUZZ_LAYERS_READ_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

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

static inline void fuzz_read_layers(const uint8_t *blob, size_t len)
{
	struct layers_reader *r = NULL;
	struct layers_src src = {0};
	size_t total = 0;
	struct dimg_err why = {0};
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
}

#endif
