/* libFuzzer target for the layer recipes reader (packer/layers.c): the
 * input is the decompressed blob, compressed here (the fuzzer then mutates
 * records, not zstd bits), then read as fuzz-layers-read.h says. Nothing
 * may crash or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <zstd.h>

#include "fuzz-layers-read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cap = ZSTD_compressBound(size);
	uint8_t *z = malloc(cap ? cap : 1);
	if (!z)
		return 0;
	size_t zn = ZSTD_compress(z, cap, data, size, 1);
	if (!ZSTD_isError(zn))
		fuzz_read_layers(z, zn);
	free(z);
	return 0;
}
