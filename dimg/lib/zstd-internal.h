/* Private zstd helpers shared by the codecs. */
#ifndef DIMG_ZSTD_INTERNAL_H
#define DIMG_ZSTD_INTERNAL_H

#include <errno.h>
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

#endif
