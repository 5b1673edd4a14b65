/* Unsigned LEB128 varints as our blob formats use them (the bsdiff control
 * stream's rules, docs/patch-format.md; the layer recipes' records,
 * docs/FORMAT.md): 7 bits a byte, low first, the shortest form only, at
 * most 10 bytes. */
#ifndef DIMG_VARINT_H
#define DIMG_VARINT_H

#include <errno.h>
#include <stdint.h>

#include "dimg/types.h"

/* Reads one varint at *p (not past end), advancing *p. A truncated,
 * over-long or non-shortest varint is -EBADMSG. */
static inline int dimg_varint_get(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;
	for (int i = 0; i < 10; i++) {
		if (*p == end)
			return -EBADMSG;
		uint8_t b = *(*p)++;
		if (i == 9 && b > 1)
			return -EBADMSG;
		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			if (i > 0 && b == 0)
				return -EBADMSG;
			*v = x;
			return 0;
		}
	}
	return -EBADMSG;
}

/* Appends v in shortest form. */
static inline int dimg_varint_put(struct dimg_buf *out, uint64_t v)
{
	uint8_t b[10];
	size_t n = 0;
	do {
		b[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	return dimg_buf_append(out, b, n);
}

#endif
