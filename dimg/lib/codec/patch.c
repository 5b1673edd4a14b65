/* The one dispatch from a patch entry's codec id to its decoder: every
 * reader (apply, merge, lazyfs) applies patches through it. */
#include <errno.h>
#include <stdint.h>

#include "dimg/codec.h"

int dimg_patch_apply(uint8_t codec, const uint8_t *old, size_t oldlen, const uint8_t *patch,
                     size_t patchlen, dimg_write_fn sink, void *sink_ctx, uint64_t *newlen)
{
	switch (codec) {
	case DIMG_CODEC_BSDIFF:
		return dimg_bspatch(old, oldlen, patch, patchlen, sink, sink_ctx, newlen);
	case DIMG_CODEC_ZSTDREF:
		return dimg_zstdref_decode(old, oldlen, patch, patchlen, sink, sink_ctx, newlen);
	case DIMG_CODEC_GZRE:
		return dimg_gzre_decode(old, oldlen, patch, patchlen, sink, sink_ctx, newlen);
	case DIMG_CODEC_CHAIN:
		return dimg_chain_apply(old, oldlen, patch, patchlen, sink, sink_ctx, newlen);
	default:
		/* DIMG_CODEC_NONE is not a patch either. */
		return -ENOTSUP;
	}
}
