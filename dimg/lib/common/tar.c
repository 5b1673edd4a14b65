/* Reading tar header fields and PAX records (dimg/tar.h). */
#include <string.h>

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
	if (dimg_tar_num(h + DIMG_TAR_CHKSUM, 8, &want) < 0)
		return 0;
	for (size_t i = 0; i < DIMG_TAR_BLOCK; i++) {
		uint8_t b = i >= DIMG_TAR_CHKSUM && i < DIMG_TAR_CHKSUM + 8 ? ' ' : h[i];
		us += b;
		ss += (signed char)b;
	}
	return want == us || (long)want == ss;
}

int dimg_tar_pax_next(const uint8_t *p, size_t n, size_t *i, const uint8_t **kv, size_t *kvn)
{
	uint64_t len = 0;
	size_t j = *i;
	while (j < n && p[j] >= '0' && p[j] <= '9' && len < (1u << 30))
		len = len * 10 + (uint64_t)(p[j++] - '0');
	if (j >= n || p[j] != ' ' || len == 0 || len > n - *i)
		return 0;
	const uint8_t *end = p + *i + len - 1; /* the newline */
	*kv = p + j + 1;
	*kvn = end > *kv ? (size_t)(end - *kv) : 0;
	*i += (size_t)len;
	return 1;
}

int64_t dimg_tar_pax_size(const uint8_t *p, size_t n, int *sparse)
{
	const uint8_t *kv;
	size_t kvn, i = 0;
	int64_t size = -1;
	*sparse = 0;
	while (dimg_tar_pax_next(p, n, &i, &kv, &kvn)) {
		if (kvn > 5 && memcmp(kv, "size=", 5) == 0) {
			uint64_t v = 0;
			size_t c = 5;
			for (; c < kvn && kv[c] >= '0' && kv[c] <= '9' && v < (1ULL << 60); c++)
				v = v * 10 + (uint64_t)(kv[c] - '0');
			size = c == kvn ? (int64_t)v : -1;
		}
		if (kvn > 11 && memcmp(kv, "GNU.sparse.", 11) == 0)
			*sparse = 1;
	}
	return size;
}
