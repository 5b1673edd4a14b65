/* Little-endian field helpers: formats are read and written byte-wise,
 * never by casting a struct over a buffer. */
#ifndef DIMG_ENDIAN_INTERNAL_H
#define DIMG_ENDIAN_INTERNAL_H

#include <stdint.h>

static inline uint16_t le16dec(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t le32dec(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static inline uint64_t le64dec(const uint8_t *p)
{
	return (uint64_t)le32dec(p) | ((uint64_t)le32dec(p + 4) << 32);
}

static inline void le16enc(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void le32enc(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void le64enc(uint8_t *p, uint64_t v)
{
	le32enc(p, (uint32_t)v);
	le32enc(p + 4, (uint32_t)(v >> 32));
}

#endif
