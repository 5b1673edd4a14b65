/* libFuzzer target for the gzip-recompress codec (codec 3): the input is
 * applied as a blob, through dimg_patch_apply, to a fixed small gzip file
 * and to a file that is not gzip; it is also wrapped in a valid blob
 * header (its first bytes choosing the zlib parameters and block ends, the
 * rest the content, as a raw zstd frame) so the deflate path is reached
 * with every parameter the format allows; and composed with itself or split
 * in two (dimg_gzre_compose), the result applied. Corpus: tests/fuzz/corpus/gzre,
 * blobs made against fuzz_gzre_old() (see its README). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "dimg/codec.h"

#define FUZZ_OUT_CAP (64u << 20)

static int count_sink(void *ctx, const void *p, size_t n)
{
	uint64_t *total = ctx;
	(void)p;
	*total += n;
	return *total > FUZZ_OUT_CAP ? -1 : 0;
}

static void apply(const uint8_t *old, size_t oldlen, const uint8_t *data, size_t size)
{
	uint64_t total = 0, newlen = 0;
	int r =
	    dimg_patch_apply(DIMG_CODEC_GZRE, old, oldlen, data, size, count_sink, &total, &newlen);
	if ((r == 0 && total != newlen) || r > 0)
		abort();
}

/* The old file: 200 numbered lines, gzip'd by zlib at level 9 with an
 * empty header (mtime 0, OS 3). Deterministic, so corpus blobs made
 * against it stay valid. */
static void fuzz_gzre_old(struct dimg_buf *out)
{
	char text[8192];
	size_t n = 0;
	for (int i = 0; i < 200; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "fuzz old line %d\n", i);
	z_stream z = {0};
	gz_header h = {.os = 3};
	if (deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK ||
	    deflateSetHeader(&z, &h) != Z_OK || dimg_buf_reserve(out, 16384) < 0)
		abort();
	z.next_in = (Bytef *)text;
	z.avail_in = (uInt)n;
	z.next_out = out->data;
	z.avail_out = 16384;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		abort();
	out->len = 16384 - z.avail_out;
	deflateEnd(&z);
}

static void put(struct dimg_buf *b, const void *p, size_t n)
{
	if (dimg_buf_append(b, p, n) < 0)
		abort();
}

static void put_varint(struct dimg_buf *b, uint64_t v)
{
	do {
		uint8_t c = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		put(b, &c, 1);
		v >>= 7;
	} while (v);
}

/* Input: level, wbits, memlevel, strategy, number of block ends (0..3),
 * that many bytes of block table, then the content (< 64 KiB). */
static void apply_structured(const uint8_t *data, size_t size)
{
	static const uint8_t gzhdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
	static const uint8_t head[2] = {1, 0}; /* version, inner: zstd frame */
	struct dimg_buf b = {0};
	if (size < 5 || data[4] > 3 || size - 5 < data[4])
		return;
	size_t nends = data[4], off = 5 + nends, n = size - off;
	if (n >= 1u << 16)
		return;
	/* A raw zstd frame of the content: magic, single segment with a
	 * 4-byte size, one last raw block. */
	uint32_t block = (uint32_t)n << 3 | 1;
	uint8_t zf[12] = {0x28,
	                  0xb5,
	                  0x2f,
	                  0xfd,
	                  0xa0,
	                  (uint8_t)n,
	                  (uint8_t)(n >> 8),
	                  0,
	                  0,
	                  (uint8_t)block,
	                  (uint8_t)(block >> 8),
	                  (uint8_t)(block >> 16)};
	put(&b, head, sizeof(head));
	put_varint(&b, 1);     /* members */
	put_varint(&b, 0);     /* old content */
	put_varint(&b, n);     /* new content */
	put_varint(&b, 0);     /* tail */
	put_varint(&b, nends); /* block table bytes */
	put(&b, data, 4);
	put_varint(&b, sizeof(gzhdr));
	put_varint(&b, n);
	put_varint(&b, nends);
	put(&b, gzhdr, sizeof(gzhdr));
	put(&b, data + 5, nends);
	put(&b, zf, sizeof(zf));
	put(&b, data + off, n);
	apply(NULL, 0, b.data, b.len);
	dimg_buf_free(&b);
}

/* Composition (cdimg merge): the input composed after itself and split in
 * two at its first byte; a composed blob is applied like any other. */
static void compose(const uint8_t *old, size_t oldlen, const uint8_t *data, size_t size)
{
	struct dimg_buf out = {0};
	size_t k = size ? 1 + (size_t)data[0] * size / 256 : 0;
	if (dimg_gzre_compose(data, size, data, size, 3, &out) == 0)
		apply(old, oldlen, out.data, out.len);
	out.len = 0;
	if (k <= size && dimg_gzre_compose(data, k, data + k, size - k, 3, &out) == 0)
		apply(old, oldlen, out.data, out.len);
	dimg_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dimg_buf old;
	static const uint8_t plain[] = "not a gzip file at all";
	if (!old.len)
		fuzz_gzre_old(&old);
	apply(old.data, old.len, data, size);
	apply(plain, sizeof(plain), data, size);
	apply_structured(data, size);
	compose(old.data, old.len, data, size);
	return 0;
}
