/* Private zstd helpers shared by the codecs. */
#ifndef DIMG_ZSTD_INTERNAL_H
#define DIMG_ZSTD_INTERNAL_H

#include <errno.h>
#include <stdint.h>

#include "dimg/codec.h"
#include <zstd.h>
#include <zstd_errors.h>

/* A decoder error as -errno: a window too large for our limits is out of
 * range, anything but memory is corrupt input. */
static inline int dimg_zstd_derr(size_t r)
{
	switch (ZSTD_getErrorCode(r)) {
	case ZSTD_error_memory_allocation:
		return -ENOMEM;
	case ZSTD_error_frameParameter_windowTooLarge:
		return -EOVERFLOW;
	default:
		return -EBADMSG;
	}
}

/* A plain frame decoded with a delta's dictionary (docs/FORMAT.md
 * "Dictionary"), or none when dd is NULL (dimg_zstd_decode): one frame
 * exactly, window bounded by its stated size. */
int dimg_zstd_decode_ddict(const uint8_t *blob, size_t bloblen, const ZSTD_DDict *dd,
                           dimg_write_fn sink, void *sink_ctx, uint64_t *outlen);

#endif
