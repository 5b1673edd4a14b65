/* bsdiff composition: for random old/mid/new triples (edits, inserts,
 * deletes, moves, empty files), compose(old->mid, mid->new) applied to old
 * gives new exactly; corrupt or mismatched inputs are refused. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dimg/codec.h"

static unsigned long long seed = 0x6d657267650a;

/* A variant of src: random edits, inserted and deleted runs, a moved block. */
static uint8_t *mutate(const uint8_t *src, size_t n, size_t *outn)
{
	size_t cap = n * 2 + 4096, len = 0, i = 0;
	uint8_t *d = malloc(cap);
	CHECK(d);
	while (i < n) {
		unsigned op = (unsigned)(test_rand(&seed) % 100);
		size_t run = 1 + (size_t)(test_rand(&seed) % 300);
		if (op < 70) { /* copy */
			if (run > n - i)
				run = n - i;
			if (len + run > cap)
				break;
			memcpy(d + len, src + i, run);
			len += run, i += run;
		} else if (op < 85) { /* change bytes in place */
			for (size_t k = 0; k < run && i < n && len < cap; k++, i++)
				d[len++] = (uint8_t)(src[i] + 1 + test_rand(&seed) % 3);
		} else if (op < 93) { /* insert random bytes */
			for (size_t k = 0; k < run && len < cap; k++)
				d[len++] = (uint8_t)test_rand(&seed);
		} else if (op < 97) { /* delete */
			i += run < n - i ? run : n - i;
		} else if (n > 0) { /* copy a block from elsewhere */
			size_t at = (size_t)(test_rand(&seed) % n);
			if (run > n - at)
				run = n - at;
			if (len + run > cap)
				break;
			memcpy(d + len, src + at, run);
			len += run;
		}
	}
	*outn = len;
	return d;
}

static uint8_t *random_bytes(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	CHECK(p);
	/* Text-like: a small alphabet, so matches are plentiful. */
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)("abcdefgh\n\0\x01\x7f"[test_rand(&seed) % 12]);
	return p;
}

static void check_apply(const uint8_t *old, size_t oldn, const struct dimg_buf *patch,
                        const uint8_t *want, size_t wantn)
{
	struct dimg_buf got = {0};
	uint64_t n = 0;
	CHECK_RC(dimg_bspatch(old, oldn, patch->data, patch->len, dimg_write_buf, &got, &n));
	CHECK(n == wantn && got.len == wantn);
	CHECK(wantn == 0 || memcmp(got.data, want, wantn) == 0);
	dimg_buf_free(&got);
}

static void one_triple(size_t size)
{
	size_t n1 = size, n2, n3;
	uint8_t *v1 = random_bytes(n1), *v2 = mutate(v1, n1, &n2), *v3 = mutate(v2, n2, &n3);
	struct dimg_buf ab = {0}, bc = {0}, ac = {0};
	CHECK_RC(dimg_bsdiff(v1, n1, v2, n2, 3, &ab));
	CHECK_RC(dimg_bsdiff(v2, n2, v3, n3, 3, &bc));
	CHECK_RC(dimg_bsdiff_compose(ab.data, ab.len, bc.data, bc.len, 3, &ac));
	check_apply(v1, n1, &ac, v3, n3);
	/* Composing again with a third step still gives the end. */
	size_t n4;
	uint8_t *v4 = mutate(v3, n3, &n4);
	struct dimg_buf cd = {0}, ad = {0};
	CHECK_RC(dimg_bsdiff(v3, n3, v4, n4, 3, &cd));
	CHECK_RC(dimg_bsdiff_compose(ac.data, ac.len, cd.data, cd.len, 3, &ad));
	check_apply(v1, n1, &ad, v4, n4);
	dimg_buf_free(&ab), dimg_buf_free(&bc), dimg_buf_free(&ac);
	dimg_buf_free(&cd), dimg_buf_free(&ad);
	free(v1), free(v2), free(v3), free(v4);
}

/* Unrelated files: everything lands in extra bytes on one side or both. */
static void unrelated(void)
{
	uint8_t *v1 = random_bytes(5000), *v2 = random_bytes(7000), *v3 = random_bytes(100);
	struct dimg_buf ab = {0}, bc = {0}, ac = {0}, e = {0};
	CHECK_RC(dimg_bsdiff(v1, 5000, v2, 7000, 3, &ab));
	CHECK_RC(dimg_bsdiff(v2, 7000, v3, 100, 3, &bc));
	CHECK_RC(dimg_bsdiff_compose(ab.data, ab.len, bc.data, bc.len, 3, &ac));
	check_apply(v1, 5000, &ac, v3, 100);
	/* To and from empty files. */
	dimg_buf_free(&ab), dimg_buf_free(&bc), dimg_buf_free(&ac);
	CHECK_RC(dimg_bsdiff(v1, 5000, v1, 0, 3, &ab));
	CHECK_RC(dimg_bsdiff(v1, 0, v2, 7000, 3, &bc));
	CHECK_RC(dimg_bsdiff_compose(ab.data, ab.len, bc.data, bc.len, 3, &ac));
	check_apply(v1, 5000, &ac, v2, 7000);
	/* Mismatched middle: bc made against a file of another size. */
	CHECK_RC(dimg_bsdiff(v3, 100, v2, 7000, 3, &e));
	dimg_buf_free(&ac);
	CHECK(dimg_bsdiff_compose(ab.data, ab.len, e.data, e.len, 3, &ac) == -EXDEV);
	dimg_buf_free(&ab), dimg_buf_free(&bc), dimg_buf_free(&ac), dimg_buf_free(&e);
	free(v1), free(v2), free(v3);
}

/* Every single-byte corruption of either input is refused or still
 * composes into a patch that applies cleanly (never a crash). */
static void corrupt(void)
{
	size_t n2, n3;
	uint8_t *v1 = random_bytes(3000), *v2 = mutate(v1, 3000, &n2), *v3 = mutate(v2, n2, &n3);
	struct dimg_buf ab = {0}, bc = {0};
	int refused = 0;
	CHECK_RC(dimg_bsdiff(v1, 3000, v2, n2, 3, &ab));
	CHECK_RC(dimg_bsdiff(v2, n2, v3, n3, 3, &bc));
	for (size_t i = 0; i < ab.len; i += 1 + i / 8) {
		struct dimg_buf ac = {0};
		ab.data[i] ^= 0x5a;
		int r = dimg_bsdiff_compose(ab.data, ab.len, bc.data, bc.len, 3, &ac);
		ab.data[i] ^= 0x5a;
		if (r < 0) {
			CHECK(r == -EBADMSG || r == -EOVERFLOW || r == -ENOTSUP || r == -EXDEV);
			refused++;
		}
		dimg_buf_free(&ac);
	}
	CHECK(refused > 0);
	CHECK(dimg_bsdiff_compose(ab.data, 10, bc.data, bc.len, 3, &(struct dimg_buf){0}) ==
	      -EBADMSG);
	dimg_buf_free(&ab), dimg_buf_free(&bc);
	free(v1), free(v2), free(v3);
}

int main(void)
{
	static const size_t sizes[] = {0, 1, 17, 300, 4096, 65536, 200000};
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
		for (int rep = 0; rep < 6; rep++)
			one_triple(sizes[k]);
	unrelated();
	corrupt();
	printf("bscompose: ok\n");
	return 0;
}
