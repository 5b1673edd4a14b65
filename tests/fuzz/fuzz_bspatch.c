/* libFuzzer target for the patch codecs: the input is applied as a patch,
 * through dimg_patch_apply, to a small fixed old buffer with the bsdiff,
 * zstdref and chain codecs; it is also split into raw bsdiff streams and
 * wrapped in a valid container, so the control-record checks get reached
 * past the zstd layer; and, where it applies as a bsdiff patch, wrapped in a
 * valid chain whose second step is the input again as zstdref, so the chain
 * gets past its intermediate check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dimg/codec.h"
#include "dimg/hash.h"

/* Must match tests/unit/test_codec.c, which replays tests/assets/should-fail
 * against the same buffer. */
#define FUZZ_OLD_LEN 1024
/* The result of a patch this small is small; more is a runaway decoder. */
#define FUZZ_OUT_CAP (64u << 20)
#define FUZZ_HDR     64u

static uint8_t fuzz_old_byte(size_t i)
{
	return (uint8_t)((i * 2654435761u) >> 13 ^ (i >> 4));
}

static int count_sink(void *ctx, const void *p, size_t n)
{
	uint64_t *total = ctx;

	(void)p;
	*total += n;
	return *total > FUZZ_OUT_CAP ? -1 : 0;
}

static void apply(uint8_t codec, const uint8_t *old, const uint8_t *data, size_t size)
{
	uint64_t total = 0, newlen = 0;
	int r = dimg_patch_apply(codec, old, FUZZ_OLD_LEN, data, size, count_sink, &total, &newlen);

	/* Success must mean exactly the announced number of bytes came out. */
	if ((r == 0 && total != newlen) || r > 0)
		abort();
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A zstd frame holding n bytes (n < 2^16) as one raw block: building it
 * by hand costs nothing next to creating a compressor per input. */
static void raw_frame(struct dimg_buf *z, const uint8_t *p, size_t n)
{
	/* magic; single segment, 4-byte content size; size; last raw block */
	uint8_t h[4 + 1 + 4 + 3] = {0x28, 0xb5, 0x2f, 0xfd, 0xa0};
	uint32_t block = (uint32_t)n << 3 | 1;

	for (int i = 0; i < 4; i++)
		h[5 + i] = (uint8_t)(n >> (8 * i));
	for (int i = 0; i < 3; i++)
		h[9 + i] = (uint8_t)(block >> (8 * i));
	if (dimg_buf_append(z, h, sizeof(h)) < 0 || dimg_buf_append(z, p, n) < 0)
		abort();
}

/* Input: u16 control length, u16 diff length, then control, diff, extra. */
static void apply_structured(const uint8_t *old, const uint8_t *data, size_t size)
{
	uint8_t hdr[FUZZ_HDR] = "DI3FSBSD";
	struct dimg_buf patch = {0};
	size_t len[3], off = 4, zoff = FUZZ_HDR;

	if (size < 4)
		return;
	len[0] = (size_t)(data[0] | data[1] << 8);
	len[1] = (size_t)(data[2] | data[3] << 8);
	if (len[0] > size - off || len[1] > size - off - len[0])
		return;
	len[2] = size - off - len[0] - len[1];
	if (len[2] >= 1u << 16)
		return;
	hdr[8] = 1;
	put64(hdr + 16, FUZZ_OLD_LEN);
	put64(hdr + 24, len[1] + len[2]);
	if (dimg_buf_append(&patch, hdr, sizeof(hdr)) < 0)
		abort();
	for (int i = 0; i < 3; i++) {
		raw_frame(&patch, data + off, len[i]);
		off += len[i];
		put64(patch.data + 32 + 8 * i, patch.len - zoff);
		zoff = patch.len;
	}
	apply(DIMG_CODEC_BSDIFF, old, patch.data, patch.len);
	dimg_buf_free(&patch);
}

/* When data applies to old as a bsdiff patch: the chain [data as bsdiff,
 * data as zstdref over its result], with the true intermediate recorded. */
static void apply_chain(const uint8_t *old, const uint8_t *data, size_t size)
{
	struct dimg_buf mid = {0}, chain = {0};
	struct dimg_chain_step s[2] = {{.codec = DIMG_CODEC_BSDIFF, .blob = data, .len = size},
	                               {.codec = DIMG_CODEC_ZSTDREF, .blob = data, .len = size}};
	uint64_t total = 0, newlen = 0;
	if (dimg_patch_apply(DIMG_CODEC_BSDIFF, old, FUZZ_OLD_LEN, data, size, dimg_write_buf, &mid,
	                     NULL) == 0 &&
	    mid.len <= FUZZ_OUT_CAP) {
		s[0].size = mid.len;
		if (dimg_sha256_buf(mid.data, mid.len, s[0].sha256) < 0 ||
		    dimg_chain_encode(s, 2, &chain) < 0)
			abort();
		int r = dimg_patch_apply(DIMG_CODEC_CHAIN, old, FUZZ_OLD_LEN, chain.data, chain.len,
		                         count_sink, &total, &newlen);
		if ((r == 0 && total != newlen) || r > 0)
			abort();
	}
	dimg_buf_free(&mid);
	dimg_buf_free(&chain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t old[FUZZ_OLD_LEN];

	for (size_t i = 0; i < FUZZ_OLD_LEN; i++)
		old[i] = fuzz_old_byte(i);
	apply(DIMG_CODEC_BSDIFF, old, data, size);
	apply(DIMG_CODEC_ZSTDREF, old, data, size);
	apply(DIMG_CODEC_CHAIN, old, data, size);
	apply_structured(old, data, size);
	apply_chain(old, data, size);
	return 0;
}
