/* The bsdiff container's stream methods (version 2): the encoder keeps
 * bzip2 where it is smaller (the sparse diff of an executable) and zstd
 * elsewhere, both apply and compose, version 1 blobs still apply, and
 * damaged method bytes or bzip2 streams are refused. */
#include <bzlib.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bsdiff-internal.h"
#include "check.h"
#include "dimg/codec.h"

static unsigned long long seed = 0x62737472656d73;

static uint8_t *xmalloc(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	CHECK(p);
	return p;
}

/* Code-like bytes: 8-byte words, many of them small offsets. */
static uint8_t *code_like(size_t n)
{
	uint8_t *p = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		p[i] =
		    (i % 8 < 3) ? (uint8_t)test_rand(&seed) : (uint8_t)(i % 8 == 3 ? i >> 12 : 0);
	return p;
}

/* old with a byte changed every ~300 bytes, as relinking shifts offsets. */
static uint8_t *sparse_edit(const uint8_t *old, size_t n)
{
	uint8_t *p = xmalloc(n);
	memcpy(p, old, n);
	for (size_t i = 0; i < n; i += 200 + test_rand(&seed) % 200)
		p[i] = (uint8_t)(p[i] + 0x20);
	return p;
}

static void check_apply(const uint8_t *old, size_t oldn, const uint8_t *patch, size_t len,
                        const uint8_t *want, size_t wantn)
{
	struct dimg_buf got = {0};
	uint64_t n = 0;
	CHECK_RC(dimg_bspatch(old, oldn, patch, len, dimg_write_buf, &got, &n));
	CHECK(n == wantn && got.len == wantn);
	CHECK(wantn == 0 || memcmp(got.data, want, wantn) == 0);
	dimg_buf_free(&got);
}

static void header(const struct dimg_buf *p, uint8_t m[3], uint64_t z[3])
{
	uint64_t o, n;
	CHECK_RC(dimg_bsd_header(p->data, p->len, &o, &n, m, z));
}

/* The size of a zstd frame of the same bytes at level (8 MiB window), as
 * the encoder would write it were it to run that level. */
static size_t zstd_size(const uint8_t *p, size_t n, int level)
{
	ZSTD_CCtx *zc = ZSTD_createCCtx();
	size_t bound = ZSTD_compressBound(n);
	uint8_t *out = xmalloc(bound);
	CHECK(zc);
	CHECK(!ZSTD_isError(ZSTD_CCtx_setParameter(zc, ZSTD_c_compressionLevel, level)));
	CHECK(!ZSTD_isError(ZSTD_CCtx_setParameter(zc, ZSTD_c_windowLog, 23)));
	size_t zlen = ZSTD_compress2(zc, out, bound, p, n);
	CHECK(!ZSTD_isError(zlen));
	ZSTD_freeCCtx(zc);
	free(out);
	return zlen;
}

/* A sparse diff goes to bzip2 and is smaller than zstd would make it; the
 * blob is version 2 and applies. */
static void test_sparse_picks_bzip2(void)
{
	size_t n = 4u << 20;
	uint8_t *old = code_like(n), *nw = sparse_edit(old, n), *diff = xmalloc(n);
	struct dimg_buf p = {0};
	uint8_t m[3];
	uint64_t z[3];

	CHECK_RC(dimg_bsdiff(old, n, nw, n, 19, &p));
	header(&p, m, z);
	CHECK(p.data[8] == 2);
	CHECK(m[1] == DIMG_BSD_BZIP2);
	for (size_t i = 0; i < n; i++)
		diff[i] = (uint8_t)(nw[i] - old[i]);
	CHECK(z[1] < zstd_size(diff, n, 19));
	check_apply(old, n, p.data, p.len, nw, n);
	free(old);
	free(nw);
	free(diff);
	dimg_buf_free(&p);
}

/* Repetitive new text has no counterpart in old: its extra stream stays
 * zstd (bzip2 is 2x larger on it), and the blob applies. */
static void test_text_extra_picks_zstd(void)
{
	static const char line[] = "the quick brown fox jumps over the lazy dog %u\n";
	size_t n = 256u << 10, len = 0;
	uint8_t *old = code_like(n), *nw = xmalloc(n);
	struct dimg_buf p = {0};
	uint8_t m[3];
	uint64_t z[3];

	while (len + sizeof(line) < n) {
		memcpy(nw + len, line, sizeof(line) - 1);
		nw[len + sizeof(line) - 4] = (uint8_t)('0' + len % 7);
		len += sizeof(line) - 1;
	}
	CHECK_RC(dimg_bsdiff(old, n, nw, len, 19, &p));
	header(&p, m, z);
	CHECK(m[2] == DIMG_BSD_ZSTD);
	check_apply(old, n, p.data, p.len, nw, len);
	free(old);
	free(nw);
	dimg_buf_free(&p);
}

/* Two version 2 patches with bzip2 streams compose; so do a version 1 and
 * a version 2 one (below, test_crafted), and a repack reads them too. */
static void test_compose_bzip2(void)
{
	size_t n = 1u << 20;
	uint8_t *v1 = code_like(n), *v2 = sparse_edit(v1, n), *v3 = sparse_edit(v2, n);
	struct dimg_buf ab = {0}, bc = {0}, ac = {0}, re = {0};
	uint8_t m[3];
	uint64_t z[3];

	CHECK_RC(dimg_bsdiff(v1, n, v2, n, 19, &ab));
	CHECK_RC(dimg_bsdiff(v2, n, v3, n, 19, &bc));
	header(&ab, m, z);
	CHECK(m[1] == DIMG_BSD_BZIP2);
	CHECK_RC(dimg_bsdiff_compose(ab.data, ab.len, bc.data, bc.len, 19, &ac));
	check_apply(v1, n, ac.data, ac.len, v3, n);
	CHECK_RC(dimg_bsdiff_repack(ac.data, ac.len, 3, &re));
	check_apply(v1, n, re.data, re.len, v3, n);
	free(v1);
	free(v2);
	free(v3);
	dimg_buf_free(&ab);
	dimg_buf_free(&bc);
	dimg_buf_free(&ac);
	dimg_buf_free(&re);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void bzip2_of(const uint8_t *p, size_t n, struct dimg_buf *out)
{
	unsigned len = (unsigned)(n + n / 100 + 600);
	CHECK_RC(dimg_buf_reserve(out, len));
	CHECK(BZ2_bzBuffToBuffCompress((char *)out->data, &len, (char *)(uintptr_t)p, (unsigned)n,
	                               9, 0, 0) == BZ_OK);
	out->len = len;
}

/* A blob of the given version around raw streams, each compressed with
 * method m[i] (zstd as dimg_zstd_encode writes it). */
static void craft(struct dimg_buf *p, uint32_t version, const uint8_t m[3], uint64_t oldlen,
                  uint64_t newlen, const uint8_t *const s[3], const size_t n[3])
{
	uint8_t hdr[64] = "DI3FSBSD";
	hdr[8] = (uint8_t)version;
	put64(hdr + 16, oldlen);
	put64(hdr + 24, newlen);
	p->len = 0;
	CHECK_RC(dimg_buf_append(p, hdr, sizeof(hdr)));
	for (int i = 0; i < 3; i++) {
		struct dimg_buf z = {0};
		if (m[i] == DIMG_BSD_BZIP2)
			bzip2_of(s[i], n[i], &z);
		else
			CHECK_RC(dimg_zstd_encode(s[i], n[i], 3, &z));
		if (version == 2)
			p->data[12 + i] = m[i];
		put64(p->data + 32 + 8 * i, z.len);
		CHECK_RC(dimg_buf_append(p, z.data, z.len));
		dimg_buf_free(&z);
	}
}

static int apply(const uint8_t *old, const struct dimg_buf *p)
{
	struct dimg_buf out = {0};
	int r = dimg_bspatch(old, 64, p->data, p->len, dimg_write_buf, &out, NULL);
	dimg_buf_free(&out);
	return r;
}

/* Hand-made blobs: one record (seek 0, 16 diff, 16 extra) over a 64-byte
 * old file; every method mix applies, damage is refused. */
static void test_crafted(void)
{
	static const uint8_t ctrl[3] = {0, 16, 16};
	uint8_t old[64] = {0}, data[24] = {0};
	const uint8_t *s[3] = {ctrl, data, data};
	size_t n[3] = {3, 16, 16};
	uint8_t all_bz[3] = {1, 1, 1}, mixed[3] = {0, 1, 0}, all_z[3] = {0, 0, 0};
	struct dimg_buf p = {0}, re = {0};

	craft(&p, 1, all_z, 64, 32, s, n);
	CHECK(apply(old, &p) == 0);
	p.data[12] = 1; /* version 1 has no method bytes */
	CHECK(apply(old, &p) == -EBADMSG);
	craft(&p, 2, mixed, 64, 32, s, n);
	CHECK(apply(old, &p) == 0);
	craft(&p, 2, all_bz, 64, 32, s, n);
	CHECK(apply(old, &p) == 0);
	CHECK_RC(dimg_bsdiff_repack(p.data, p.len, 3, &re));
	CHECK(apply(old, &re) == 0);
	p.data[13] = 2; /* no such method */
	CHECK(apply(old, &p) == -EBADMSG);
	p.data[13] = 1;
	p.data[15] = 1; /* reserved */
	CHECK(apply(old, &p) == -EBADMSG);
	p.data[15] = 0;
	p.data[8] = 3;
	CHECK(apply(old, &p) == -ENOTSUP);
	p.data[8] = 2;
	/* a bzip2 stream named zstd, and the other way round */
	p.data[13] = 0;
	CHECK(apply(old, &p) == -EBADMSG);
	craft(&p, 2, all_z, 64, 32, s, n);
	p.data[13] = 1;
	CHECK(apply(old, &p) == -EBADMSG);
	/* bzip2 diff stream longer than the records use: apply and compose
	 * both refuse it */
	n[1] = 20;
	n[2] = 12;
	craft(&p, 2, all_bz, 64, 32, s, n);
	CHECK(apply(old, &p) == -EBADMSG);
	re.len = 0;
	CHECK(dimg_bsdiff_repack(p.data, p.len, 3, &re) == -EBADMSG);
	n[1] = 16;
	n[2] = 16;
	/* a bzip2 stream cut short, or followed by a byte */
	craft(&p, 2, all_bz, 64, 32, s, n);
	put64(p.data + 48, get64(p.data + 48) - 1);
	p.len--;
	CHECK(apply(old, &p) == -EBADMSG);
	craft(&p, 2, all_bz, 64, 32, s, n);
	put64(p.data + 48, get64(p.data + 48) + 1);
	CHECK_RC(dimg_buf_append(&p, "", 1));
	CHECK(apply(old, &p) == -EBADMSG);
	dimg_buf_free(&p);
	dimg_buf_free(&re);
}

int main(void)
{
	test_sparse_picks_bzip2();
	test_text_extra_picks_zstd();
	test_compose_bzip2();
	test_crafted();
	return 0;
}
