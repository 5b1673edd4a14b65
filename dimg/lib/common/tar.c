/* Tar header fields: numbers (octal or base-256) and the checksum. */
#include "dimg/tar.h"

int dimg_tar_num(const uint8_t *f, size_t w, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	if (f[0] & 0x80) {
		if (f[0] != 0x80)
			return -1; /* negative or too large */
		for (i = 1; i < w; i++) {
			if (v >> 56)
				return -1;
			v = v << 8 | f[i];
		}
		*out = v;
		return 0;
	}
	while (i < w && f[i] == ' ')
		i++;
	for (; i < w && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return -1;
		v = v << 3 | (uint64_t)(f[i] - '0');
	}
	for (; i < w; i++) /* then only spaces and NULs */
		if (f[i] != ' ' && f[i] != '\0')
			return -1;
	*out = v;
	return 0;
}

int dimg_tar_checksum_ok(const uint8_t h[DIMG_TAR_BLOCK])
{
	uint64_t want;
	unsigned long us = 0;
	long ss = 0;
	if (dimg_tar_num(h + 148, 8, &want) < 0)
		return 0;
	for (size_t i = 0; i < DIMG_TAR_BLOCK; i++) {
		uint8_t b = i >= 148 && i < 156 ? ' ' : h[i];
		us += b;
		ss += (signed char)b;
	}
	return want == us || (long)want == ss;
}
