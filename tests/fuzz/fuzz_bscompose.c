/* libFuzzer target for bsdiff composition: the input holds the raw streams
 * of two patches, AB (against a fixed old buffer) and BC (against AB's
 * result), wrapped into valid containers. Oracle: composition succeeds
 * exactly when both patches apply, and then its patch applied to old gives
 * the same bytes as applying AB then BC. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dimg/codec.h"

#define FUZZ_OLD_LEN 512
#define FUZZ_HDR     64u

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* One raw-block zstd frame of n bytes (n < 2^16). */
static void raw_frame(struct dimg_buf *z, const uint8_t *p, size_t n)
{
	uint8_t h[4 + 1 + 4 + 3] = {0x28, 0xb5, 0x2f, 0xfd, 0xa0};
	uint32_t block = (uint32_t)n << 3 | 1;

	for (int i = 0; i < 4; i++)
		h[5 + i] = (uint8_t)(n >> (8 * i));
	for (int i = 0; i < 3; i++)
		h[9 + i] = (uint8_t)(block >> (8 * i));
	if (dimg_buf_append(z, h, sizeof(h)) < 0 || dimg_buf_append(z, p, n) < 0)
		abort();
}

/* Takes "u8 ctrl len, u8 diff len, u16 extra len, ctrl, diff, extra" from
 * *data and builds a patch against an old file of oldlen bytes. */
static int take_patch(const uint8_t **data, size_t *size, uint64_t oldlen, struct dimg_buf *out)
{
	uint8_t hdr[FUZZ_HDR] = "DI3FSBSD";
	size_t len[3], zoff = FUZZ_HDR;

	if (*size < 4)
		return -1;
	len[0] = (*data)[0];
	len[1] = (*data)[1];
	len[2] = (size_t)((*data)[2] | (*data)[3] << 8);
	*data += 4, *size -= 4;
	if (len[0] + len[1] + len[2] > *size)
		return -1;
	hdr[8] = 1;
	put64(hdr + 16, oldlen);
	put64(hdr + 24, len[1] + len[2]);
	if (dimg_buf_append(out, hdr, sizeof(hdr)) < 0)
		abort();
	for (int i = 0; i < 3; i++) {
		raw_frame(out, *data, len[i]);
		*data += len[i], *size -= len[i];
		put64(out->data + 32 + 8 * i, out->len - zoff);
		zoff = out->len;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t old[FUZZ_OLD_LEN];
	struct dimg_buf ab = {0}, bc = {0}, ac = {0}, mid = {0}, seq = {0}, one = {0};
	int ra, rb = -1, rc;

	for (size_t i = 0; i < FUZZ_OLD_LEN; i++)
		old[i] = (uint8_t)(i * 7 ^ i >> 3);
	if (take_patch(&data, &size, FUZZ_OLD_LEN, &ab) < 0)
		goto out;
	/* BC is made against a file of AB's new size. */
	if (take_patch(&data, &size,
	               ab.len >= 32
	                   ? ab.data[24] | (uint64_t)ab.data[25] << 8 | (uint64_t)ab.data[26] << 16
	                   : 0,
	               &bc) < 0)
		goto out;
	ra = dimg_bspatch(old, FUZZ_OLD_LEN, ab.data, ab.len, dimg_write_buf, &mid, NULL);
	if (ra == 0)
		rb = dimg_bspatch(mid.data ? mid.data : old, mid.len, bc.data, bc.len,
		                  dimg_write_buf, &seq, NULL);
	rc = dimg_bsdiff_compose(ab.data, ab.len, bc.data, bc.len, 1, &ac);
	if ((rc == 0) != (ra == 0 && rb == 0))
		abort();
	if (rc == 0) {
		if (dimg_bspatch(old, FUZZ_OLD_LEN, ac.data, ac.len, dimg_write_buf, &one, NULL) !=
		    0)
			abort();
		if (one.len != seq.len || (one.len && memcmp(one.data, seq.data, one.len) != 0))
			abort();
	}
out:
	dimg_buf_free(&ab), dimg_buf_free(&bc), dimg_buf_free(&ac);
	dimg_buf_free(&mid), dimg_buf_free(&seq), dimg_buf_free(&one);
	return 0;
}
