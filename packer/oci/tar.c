/* OCI image layout tars: the ustar framing, every field fixed, so the
 * same files give the same archive. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ociwrite.h"

/* w-1 octal digits and a NUL; -EOVERFLOW if v does not fit. */
static int put_octal(uint8_t *f, size_t w, uint64_t v)
{
	f[w - 1] = '\0';
	for (size_t i = w - 1; i-- > 0;) {
		f[i] = (uint8_t)('0' + (v & 7));
		v >>= 3;
	}
	return v ? -EOVERFLOW : 0;
}

/* Base-256 (GNU): first byte 0x80, then the value big-endian. */
static void put_base256(uint8_t *f, size_t w, uint64_t v)
{
	memset(f, 0, w);
	f[0] = 0x80;
	for (size_t i = w; i-- > 1 && v;) {
		f[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

int ocitar_header_encode(uint8_t hdr[OCITAR_BLOCK], const char *name, char type, uint64_t size)
{
	size_t nlen = strlen(name);
	unsigned sum = 0;
	if (nlen == 0 || nlen >= 100)
		return -ENAMETOOLONG;
	memset(hdr, 0, OCITAR_BLOCK);
	memcpy(hdr, name, nlen);
	put_octal(hdr + 100, 8, type == '5' ? 0755 : 0644);
	put_octal(hdr + 108, 8, 0);
	put_octal(hdr + 116, 8, 0);
	if (put_octal(hdr + 124, 12, size) < 0)
		put_base256(hdr + 124, 12, size);
	put_octal(hdr + 136, 12, 0);
	hdr[156] = (uint8_t)type;
	memcpy(hdr + 257, "ustar", 6);
	memcpy(hdr + 263, "00", 2);
	put_octal(hdr + 329, 8, 0);
	put_octal(hdr + 337, 8, 0);
	memset(hdr + 148, ' ', 8);
	for (size_t i = 0; i < OCITAR_BLOCK; i++)
		sum += hdr[i];
	put_octal(hdr + 148, 7, sum);
	hdr[155] = ' ';
	return 0;
}

int ocitar_write(struct ocitar *t, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = write(t->fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		b += w;
		n -= (size_t)w;
		t->off += (uint64_t)w;
	}
	return 0;
}

int ocitar_pad(struct ocitar *t)
{
	static const uint8_t zero[OCITAR_BLOCK];
	size_t rem = (size_t)(t->off % OCITAR_BLOCK);
	return rem ? ocitar_write(t, zero, OCITAR_BLOCK - rem) : 0;
}

int ocitar_dir(struct ocitar *t, const char *name)
{
	uint8_t hdr[OCITAR_BLOCK];
	int r = ocitar_header_encode(hdr, name, '5', 0);
	return r < 0 ? r : ocitar_write(t, hdr, sizeof(hdr));
}

int ocitar_file(struct ocitar *t, const char *name, const void *p, size_t n)
{
	uint8_t hdr[OCITAR_BLOCK];
	int r = ocitar_header_encode(hdr, name, '0', n);
	if (r < 0 || (r = ocitar_write(t, hdr, sizeof(hdr))) < 0 || (r = ocitar_write(t, p, n)) < 0)
		return r;
	return ocitar_pad(t);
}

int ocitar_blob(struct ocitar *t, const char *digest, const void *p, size_t n)
{
	char name[100];
	if (!oci_digest_valid(digest))
		return -EINVAL;
	snprintf(name, sizeof(name), "blobs/sha256/%s", digest + 7);
	return ocitar_file(t, name, p, n);
}

int ocitar_finish(struct ocitar *t)
{
	static const uint8_t zero[2 * OCITAR_BLOCK];
	return ocitar_write(t, zero, sizeof(zero));
}
