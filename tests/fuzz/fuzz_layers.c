/* libFuzzer target for the layer recipes reader (packer/layers.c): the
 * input is the decompressed blob, compressed here (the fuzzer then mutates
 * records, not zstd bits). Every layer is read in order into a sink;
 * contents come from no image (FILE records find nothing), so RAW, INLINE
 * and the refusals are what runs. Nothing may crash or read out of bounds. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <zstd.h>

#include "layers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_OUT_MAX (64u << 20)

static int count_sink(void *ctx, const void *p, size_t n)
{
	size_t *total = ctx;
	(void)p;
	if (n > FUZZ_OUT_MAX - *total)
		return -EFBIG;
	*total += n;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct layers_reader *r = NULL;
	struct layers_src src = {0};
	size_t cap = ZSTD_compressBound(size), total = 0;
	uint8_t *z = malloc(cap ? cap : 1);
	if (!z)
		return 0;
	size_t zn = ZSTD_compress(z, cap, data, size, 1);
	struct dimg_err why = {0};
	int rc = ZSTD_isError(zn) ? 0 : layers_open(&r, z, zn, &why);
	for (size_t i = 0; r && rc == 0 && i < layers_count(r); i++) {
		struct layers_layer l;
		if ((rc = layers_next(r, i, &l, &why)) == 0)
			rc = layers_write(r, &src, count_sink, &total, &why);
	}
	if (rc < 0 && rc != -ENOMEM && !why.why[0])
		abort(); /* a refusal always says why */
	layers_free(r);
	free(z);
	return 0;
}
