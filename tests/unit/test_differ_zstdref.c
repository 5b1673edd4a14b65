/* The differ tries zstdref on large files: a new file that holds a part of
 * old and repeats itself is kept as a zstdref patch, with the window over
 * old and new, well past the old 32 MiB limit; with the limit lowered it is
 * not tried. (bsdiff is left out: its scan of 18 MiB of random bytes costs
 * minutes, and it is not what is tested.) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "differ.h"

#define MIB (1u << 20)

static unsigned long long seed = 0x7a7374647265660aULL;

static void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(test_rand(&seed) >> 56);
}

static int sink(void *ctx, const void *p, size_t n)
{
	return dimg_buf_append(ctx, p, n);
}

/* old: 16 MiB random. new: 9 MiB random R, old's first 8 MiB, R again
 * (26 MiB; old + new = 42 MiB). A full copy holds R and old's part, a
 * zstdref patch R alone. */
static void test_large_zstdref(void)
{
	size_t oldn = 16 * MIB, rn = 9 * MIB, newn = 2 * rn + 8 * MIB;
	uint8_t *old = malloc(oldn), *nw = malloc(newn);
	struct differ_opts o;
	struct differ_result res;
	struct dimg_buf out = {0};

	CHECK(old && nw);
	fill_random(old, oldn);
	fill_random(nw, rn);
	memcpy(nw + rn, old, 8 * MIB);
	memcpy(nw + rn + 8 * MIB, nw, rn);
	differ_opts_default(&o);
	o.level = 3;
	o.codecs = DIFFER_CODEC_ZSTDREF;
	CHECK(oldn + newn > 32 * MIB && oldn + newn <= o.max_zstdref_window);
	CHECK_RC(differ_encode(old, oldn, nw, newn, &o, &res));
	CHECK(res.payload == DIMG_PAYLOAD_PATCH && res.codec == DIMG_CODEC_ZSTDREF);
	CHECK(res.blob.len < rn + rn / 10);
	CHECK_RC(
	    dimg_patch_apply(res.codec, old, oldn, res.blob.data, res.blob.len, sink, &out, NULL));
	CHECK(out.len == newn && memcmp(out.data, nw, newn) == 0);
	dimg_buf_free(&res.blob);
	/* Past the limit: not tried, and the full copy is far larger. */
	o.max_zstdref_window = 32 * MIB;
	CHECK_RC(differ_encode(old, oldn, nw, newn, &o, &res));
	CHECK(res.payload == DIMG_PAYLOAD_FULL);
	CHECK(res.blob.len > rn + rn / 2);
	dimg_buf_free(&res.blob);
	dimg_buf_free(&out);
	free(old);
	free(nw);
}

int main(void)
{
	test_large_zstdref();
	return 0;
}
