/* What the .cdimg reader and writer share (not installed). */
#ifndef DI3FS_CDIMG_INTERNAL_H
#define DI3FS_CDIMG_INTERNAL_H

#include <stdint.h>

/* The first bytes of a .dimg (docs/FORMAT.md "Header"). */
static const uint8_t cdimg_dimg_magic[8] = {0x89, 'D', 'I', 'M', '\r', '\n', 0x1a, '\n'};

static inline uint32_t cdimg_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif
