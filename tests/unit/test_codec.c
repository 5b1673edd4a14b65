/* Unit tests for the patch codecs (bsdiff, zstdref), plain zstd frames, the
 * buffer/sink plumbing and the hashes: round trips, determinism, limits and
 * corrupt input. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "dimg/codec.h"
#include "dimg/hash.h"

/* Must match tests/fuzz/fuzz_bspatch.c: the should-fail inputs are patches
 * against this buffer. */
#define FUZZ_OLD_LEN 1024

/* Output past this is a runaway decoder, not a valid result. */
#define SINK_CAP (256u << 20)

static unsigned long long seed = 0x9e3779b97f4a7c15ULL;

static int sink_buf(void *ctx, const void *p, size_t n)
{
	struct dimg_buf *b = ctx;

	if (b->len + n > SINK_CAP)
		return -EFBIG;
	return dimg_buf_append(b, p, n);
}

static uint8_t *xmalloc(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);

	CHECK(p != NULL);
	return p;
}

static uint8_t *random_bytes(size_t n)
{
	uint8_t *p = xmalloc(n);

	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(test_rand(&seed) >> 56);
	return p;
}

static uint8_t *copy_bytes(const uint8_t *src, size_t n)
{
	uint8_t *p = xmalloc(n);

	if (n)
		memcpy(p, src, n);
	return p;
}

static int encode(uint8_t codec, const uint8_t *old, size_t oldlen, const uint8_t *nw,
                  size_t newlen, int level, struct dimg_buf *out)
{
	if (codec == DIMG_CODEC_BSDIFF)
		return dimg_bsdiff(old, oldlen, nw, newlen, level, out);
	return dimg_zstdref_encode(old, oldlen, nw, newlen, level, out);
}

/* Encodes, applies, compares; returns the patch size. */
static size_t roundtrip(uint8_t codec, const uint8_t *old, size_t oldlen, const uint8_t *nw,
                        size_t newlen, int level)
{
	struct dimg_buf patch = {0}, out = {0};
	uint64_t got = UINT64_MAX;
	size_t size;

	CHECK_RC(encode(codec, old, oldlen, nw, newlen, level, &patch));
	CHECK_RC(dimg_patch_apply(codec, old, oldlen, patch.data, patch.len, sink_buf, &out, &got));
	CHECK(got == newlen);
	CHECK(out.len == newlen);
	CHECK(newlen == 0 || memcmp(out.data, nw, newlen) == 0);
	size = patch.len;
	dimg_buf_free(&patch);
	dimg_buf_free(&out);
	return size;
}

static void roundtrip_both(const uint8_t *old, size_t oldlen, const uint8_t *nw, size_t newlen)
{
	roundtrip(DIMG_CODEC_BSDIFF, old, oldlen, nw, newlen, 3);
	roundtrip(DIMG_CODEC_ZSTDREF, old, oldlen, nw, newlen, 3);
}

static void zstd_roundtrip(const uint8_t *data, size_t len, int level)
{
	struct dimg_buf blob = {0}, out = {0};
	uint64_t got = UINT64_MAX;

	CHECK_RC(dimg_zstd_encode(data, len, level, &blob));
	CHECK_RC(dimg_zstd_decode(blob.data, blob.len, sink_buf, &out, &got));
	CHECK(got == len && out.len == len);
	CHECK(len == 0 || memcmp(out.data, data, len) == 0);
	dimg_buf_free(&blob);
	dimg_buf_free(&out);
}

static void test_buf(void)
{
	struct dimg_buf b = {0};
	uint8_t byte = 0x5a;

	CHECK_RC(dimg_buf_append(&b, NULL, 0));
	CHECK(b.len == 0);
	for (int i = 0; i < 100000; i++)
		CHECK_RC(dimg_buf_append(&b, &byte, 1));
	CHECK(b.len == 100000 && b.cap >= b.len && b.data[99999] == 0x5a);
	CHECK(dimg_buf_reserve(&b, SIZE_MAX) == -ENOMEM);
	dimg_buf_free(&b);
	CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
	dimg_buf_free(NULL);
}

static void test_write_fd(void)
{
	char path[] = "/tmp/test_codec.XXXXXX";
	uint8_t *data = random_bytes(300000), *back = xmalloc(300000);
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	unlink(path);
	CHECK_RC(dimg_write_fd(&fd, data, 300000));
	CHECK(pread(fd, back, 300000, 0) == 300000);
	CHECK(memcmp(data, back, 300000) == 0);
	close(fd);
	fd = -1;
	CHECK(dimg_write_fd(&fd, data, 1) == -EBADF);
	free(data);
	free(back);
}

static void test_hash(void)
{
	static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
	                                0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
	                                0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
	                                0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
	char path[] = "/tmp/test_codec.XXXXXX";
	uint8_t d1[32], d2[32], *data = random_bytes(3000000);
	struct dimg_sha256 *h;
	uint64_t size = 0;
	int fd;

	CHECK_RC(dimg_sha256_buf("abc", 3, d1));
	CHECK(memcmp(d1, abc, 32) == 0);
	CHECK_RC(dimg_sha256_new(&h));
	dimg_sha256_update(h, "a", 1);
	dimg_sha256_update(h, "bc", 2);
	dimg_sha256_final(h, d2);
	CHECK(memcmp(d2, abc, 32) == 0);
	/* final() resets, so the same object hashes again from scratch. */
	dimg_sha256_update(h, "abc", 3);
	dimg_sha256_final(h, d2);
	CHECK(memcmp(d2, abc, 32) == 0);
	dimg_sha256_free(h);
	dimg_sha256_free(NULL);

	fd = mkstemp(path);
	CHECK(fd >= 0);
	unlink(path);
	CHECK_RC(dimg_write_fd(&fd, data, 3000000));
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	CHECK_RC(dimg_sha256_fd(fd, d1, &size));
	CHECK(size == 3000000);
	CHECK_RC(dimg_sha256_buf(data, 3000000, d2));
	CHECK(memcmp(d1, d2, 32) == 0);
	close(fd);
	free(data);

	CHECK(dimg_xxh3("", 0) == 0x2D06800538D394C2ULL);
	CHECK(dimg_xxh3("abc", 3) != dimg_xxh3("abd", 3));
}

static void test_small_cases(void)
{
	uint8_t a[1] = {'a'}, b[1] = {'b'};
	uint8_t *r = random_bytes(5000);

	roundtrip_both(NULL, 0, NULL, 0);
	roundtrip_both(r, 5000, NULL, 0);
	roundtrip_both(NULL, 0, r, 5000);
	roundtrip_both(a, 1, b, 1);
	roundtrip_both(a, 1, a, 1);
	roundtrip_both(a, 1, r, 5000);
	roundtrip_both(r, 5000, a, 1);
	roundtrip_both(r, 5000, r, 5000);
	free(r);
	zstd_roundtrip(NULL, 0, 3);
	zstd_roundtrip(a, 1, 1);
}

static void test_random(void)
{
	for (int round = 0; round < 8; round++) {
		size_t oldlen = (size_t)(test_rand(&seed) % 200000);
		size_t newlen = (size_t)(test_rand(&seed) % 200000);
		uint8_t *old = random_bytes(oldlen), *nw = random_bytes(newlen);

		roundtrip_both(old, oldlen, nw, newlen);
		zstd_roundtrip(nw, newlen, 1 + round);
		free(old);
		free(nw);
	}
}

/* new = old with runs inserted, deleted and overwritten at random places. */
static uint8_t *mutate(const uint8_t *old, size_t oldlen, size_t *newlen, int edits)
{
	struct dimg_buf b = {0};
	size_t pos = 0;

	for (int i = 0; i < edits && pos < oldlen; i++) {
		size_t keep = (size_t)(test_rand(&seed) % (2 * oldlen / (size_t)edits + 1));
		size_t n = (size_t)(test_rand(&seed) % 64) + 1;
		uint8_t *ins = random_bytes(n);

		keep = keep > oldlen - pos ? oldlen - pos : keep;
		CHECK_RC(dimg_buf_append(&b, old + pos, keep));
		pos += keep;
		switch (test_rand(&seed) % 3) {
		case 0: /* insert */
			CHECK_RC(dimg_buf_append(&b, ins, n));
			break;
		case 1: /* delete */
			pos += n > oldlen - pos ? oldlen - pos : n;
			break;
		default: /* overwrite */
			CHECK_RC(dimg_buf_append(&b, ins, n));
			pos += n > oldlen - pos ? oldlen - pos : n;
		}
		free(ins);
	}
	CHECK_RC(dimg_buf_append(&b, old + pos, oldlen - pos));
	*newlen = b.len;
	if (!b.data)
		b.data = xmalloc(1);
	return b.data;
}

static void test_edits(void)
{
	size_t oldlen = 300000, newlen;
	uint8_t *old = random_bytes(oldlen), *nw;
	struct dimg_buf tail = {0};
	size_t bs, zr;

	nw = mutate(old, oldlen, &newlen, 40);
	bs = roundtrip(DIMG_CODEC_BSDIFF, old, oldlen, nw, newlen, 9);
	zr = roundtrip(DIMG_CODEC_ZSTDREF, old, oldlen, nw, newlen, 9);
	/* 40 edits of <= 64 bytes: a delta codec must not resend the file. */
	CHECK(bs < 20000 && zr < 20000);
	free(nw);

	/* shifted: one byte inserted at the front moves everything */
	nw = xmalloc(oldlen + 1);
	nw[0] = 0x42;
	memcpy(nw + 1, old, oldlen);
	CHECK(roundtrip(DIMG_CODEC_BSDIFF, old, oldlen, nw, oldlen + 1, 3) < 2000);
	CHECK(roundtrip(DIMG_CODEC_ZSTDREF, old, oldlen, nw, oldlen + 1, 3) < 2000);
	/* deleted from the front; truncated at the end */
	roundtrip_both(old, oldlen, old + 1000, oldlen - 1000);
	roundtrip_both(old, oldlen, old, oldlen / 3);
	free(nw);

	/* appended */
	CHECK_RC(dimg_buf_append(&tail, old, oldlen));
	nw = random_bytes(50000);
	CHECK_RC(dimg_buf_append(&tail, nw, 50000));
	roundtrip_both(old, oldlen, tail.data, tail.len);
	free(nw);
	dimg_buf_free(&tail);
	free(old);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	struct dimg_buf b = {0};
	uint8_t chunk[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return NULL;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		CHECK_RC(dimg_buf_append(&b, chunk, (size_t)n));
	close(fd);
	*len = b.len;
	return b.data;
}

/* Real executables: two different programs, and one with bytes patched. */
static void test_binaries(void)
{
	size_t alen, blen;
	uint8_t *a = read_file("/usr/bin/ls", &alen), *b = read_file("/usr/bin/cp", &blen);
	uint8_t *c;

	if (!a || !b) {
		fprintf(stderr, "test_binaries: /usr/bin/ls or cp missing, skipped\n");
		free(a);
		free(b);
		return;
	}
	roundtrip_both(a, alen, b, blen);
	c = copy_bytes(a, alen);
	for (int i = 0; i < 16; i++)
		c[test_rand(&seed) % alen] ^= 0x80;
	CHECK(roundtrip(DIMG_CODEC_BSDIFF, a, alen, c, alen, 19) < 1000);
	CHECK(roundtrip(DIMG_CODEC_ZSTDREF, a, alen, c, alen, 19) < 1000);
	zstd_roundtrip(a, alen, 19);
	free(a);
	free(b);
	free(c);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Long equal runs are where a naive bsdiff scan turns quadratic. */
static void test_pathological(void)
{
	size_t n = 8u << 20;
	uint8_t *zeros = calloc(1, n), *changed = calloc(1, n), *pat = xmalloc(n);
	uint8_t *pat2;
	double t0 = now();

	CHECK(zeros && changed);
	for (int i = 0; i < 7; i++)
		changed[test_rand(&seed) % n] = (uint8_t)(i + 1);
	CHECK(roundtrip(DIMG_CODEC_BSDIFF, zeros, n, changed, n, 3) < 4096);
	CHECK(roundtrip(DIMG_CODEC_BSDIFF, changed, n, zeros, n, 3) < 4096);
	CHECK(roundtrip(DIMG_CODEC_BSDIFF, zeros, n, zeros, n / 2, 3) < 4096);
	roundtrip(DIMG_CODEC_ZSTDREF, zeros, n, changed, n, 3);

	for (size_t i = 0; i < n; i++)
		pat[i] = (uint8_t) "abcdefghijklmnopq"[i % 17];
	pat2 = copy_bytes(pat, n);
	for (int i = 0; i < 50; i++)
		pat2[test_rand(&seed) % n] = 'z';
	CHECK(roundtrip(DIMG_CODEC_BSDIFF, pat, n, pat2, n, 3) < 16384);
	CHECK(roundtrip(DIMG_CODEC_BSDIFF, pat, n / 3, pat2, n, 3) < 16384);
	fprintf(stderr, "pathological cases: %.1f s\n", now() - t0);
	free(zeros);
	free(changed);
	free(pat);
	free(pat2);
}

static void test_determinism(void)
{
	size_t oldlen = 100000, newlen;
	uint8_t *old = random_bytes(oldlen), *nw = mutate(old, oldlen, &newlen, 20);

	for (uint8_t codec = DIMG_CODEC_BSDIFF; codec <= DIMG_CODEC_ZSTDREF; codec++) {
		struct dimg_buf p1 = {0}, p2 = {0};

		CHECK_RC(encode(codec, old, oldlen, nw, newlen, 19, &p1));
		CHECK_RC(encode(codec, old, oldlen, nw, newlen, 19, &p2));
		CHECK(p1.len == p2.len && memcmp(p1.data, p2.data, p1.len) == 0);
		dimg_buf_free(&p1);
		dimg_buf_free(&p2);
	}
	{
		struct dimg_buf z1 = {0}, z2 = {0};

		CHECK_RC(dimg_zstd_encode(nw, newlen, 19, &z1));
		CHECK_RC(dimg_zstd_encode(nw, newlen, 19, &z2));
		CHECK(z1.len == z2.len && memcmp(z1.data, z2.data, z1.len) == 0);
		dimg_buf_free(&z1);
		dimg_buf_free(&z2);
	}
	free(old);
	free(nw);
}

/* Appends go after whatever the buffer held; a failure leaves it alone. */
static void test_append_semantics(void)
{
	struct dimg_buf b = {0}, out = {0};
	uint8_t old[100], nw[120];

	memset(old, 1, sizeof(old));
	memset(nw, 2, sizeof(nw));
	CHECK_RC(dimg_buf_append(&b, "pre", 3));
	CHECK_RC(dimg_bsdiff(old, sizeof(old), nw, sizeof(nw), 3, &b));
	CHECK(memcmp(b.data, "pre", 3) == 0);
	CHECK_RC(dimg_bspatch(old, sizeof(old), b.data + 3, b.len - 3, sink_buf, &out, NULL));
	CHECK(out.len == sizeof(nw) && memcmp(out.data, nw, sizeof(nw)) == 0);
	b.len = 3;
	CHECK(dimg_bsdiff(old, sizeof(old), nw, sizeof(nw), 0, &b) == -EINVAL);
	CHECK(dimg_zstdref_encode(old, sizeof(old), nw, sizeof(nw), 23, &b) == -EINVAL);
	CHECK(dimg_zstd_encode(nw, sizeof(nw), -1, &b) == -EINVAL);
	CHECK(b.len == 3);
	dimg_buf_free(&b);
	dimg_buf_free(&out);
}

/* Runs a damaged patch; anything but a crash or a wrong success is fine. */
static void apply_damaged(uint8_t codec, const uint8_t *old, size_t oldlen, const uint8_t *p,
                          size_t len, int must_fail)
{
	struct dimg_buf out = {0};
	uint64_t got = UINT64_MAX;
	/* An exact-size copy lets ASan catch any read past the end. */
	uint8_t *q = copy_bytes(p, len);
	int r = dimg_patch_apply(codec, old, oldlen, q, len, sink_buf, &out, &got);

	if (must_fail)
		CHECK(r < 0);
	if (r == 0)
		CHECK(got == out.len);
	else
		CHECK(r == -EBADMSG || r == -EOVERFLOW || r == -ENOTSUP || r == -EXDEV ||
		      r == -EFBIG || r == -ENOMEM);
	free(q);
	dimg_buf_free(&out);
}

static void test_corruption(void)
{
	size_t oldlen = 3000, newlen;
	uint8_t *old = random_bytes(oldlen), *nw = mutate(old, oldlen, &newlen, 10);

	for (uint8_t codec = DIMG_CODEC_BSDIFF; codec <= DIMG_CODEC_ZSTDREF; codec++) {
		struct dimg_buf p = {0};

		CHECK_RC(encode(codec, old, oldlen, nw, newlen, 3, &p));
		for (size_t len = 0; len < p.len; len++)
			apply_damaged(codec, old, oldlen, p.data, len, 1);
		for (size_t i = 0; i < p.len; i++) {
			for (int bit = 0; bit < 8; bit++) {
				p.data[i] ^= (uint8_t)(1u << bit);
				apply_damaged(codec, old, oldlen, p.data, p.len, 0);
				p.data[i] ^= (uint8_t)(1u << bit);
			}
			p.data[i] ^= 0xff;
			apply_damaged(codec, old, oldlen, p.data, p.len, 0);
			p.data[i] ^= 0xff;
		}
		/* Trailing garbage and a patch for another base. */
		CHECK_RC(dimg_buf_append(&p, "", 1));
		apply_damaged(codec, old, oldlen, p.data, p.len, 1);
		p.len--;
		if (codec == DIMG_CODEC_BSDIFF)
			CHECK(dimg_patch_apply(codec, old, oldlen - 1, p.data, p.len, sink_buf,
			                       &(struct dimg_buf){0}, NULL) == -EXDEV);
		dimg_buf_free(&p);
	}
	free(old);
	free(nw);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int apply_bs(const uint8_t *old, size_t oldlen, const struct dimg_buf *p)
{
	struct dimg_buf out = {0};
	int r = dimg_bspatch(old, oldlen, p->data, p->len, sink_buf, &out, NULL);

	dimg_buf_free(&out);
	return r;
}

/* Builds a bsdiff container by hand around raw streams we choose. */
static void craft_bsdiff(struct dimg_buf *p, uint64_t oldlen, uint64_t newlen, const uint8_t *ctrl,
                         size_t ctrllen, const uint8_t *diff, size_t difflen, const uint8_t *extra,
                         size_t extralen)
{
	struct dimg_buf z[3] = {{0}};
	uint8_t hdr[64] = "DI3FSBSD";

	CHECK_RC(dimg_zstd_encode(ctrl, ctrllen, 3, &z[0]));
	CHECK_RC(dimg_zstd_encode(diff, difflen, 3, &z[1]));
	CHECK_RC(dimg_zstd_encode(extra, extralen, 3, &z[2]));
	hdr[8] = 1;
	put64(hdr + 16, oldlen);
	put64(hdr + 24, newlen);
	for (int i = 0; i < 3; i++)
		put64(hdr + 32 + 8 * i, z[i].len);
	p->len = 0;
	CHECK_RC(dimg_buf_append(p, hdr, sizeof(hdr)));
	for (int i = 0; i < 3; i++) {
		CHECK_RC(dimg_buf_append(p, z[i].data, z[i].len));
		dimg_buf_free(&z[i]);
	}
}

/* Appends one control record as the format stores it: zigzag seek, diff
 * and extra lengths, each a LEB128 varint. */
static size_t put_rec(uint8_t *p, int64_t seek, uint64_t diff, uint64_t extra)
{
	uint64_t v[3] = {((uint64_t)seek << 1) ^ (uint64_t)(seek >> 63), diff, extra};
	size_t n = 0;
	for (int k = 0; k < 3; k++) {
		while (v[k] >= 0x80) {
			p[n++] = (uint8_t)(v[k] | 0x80);
			v[k] >>= 7;
		}
		p[n++] = (uint8_t)v[k];
	}
	return n;
}

/* Control values pointing outside old or new must be refused. */
static void test_bsdiff_bounds(void)
{
	uint8_t old[64], data[64] = {0}, ctrl[64];
	struct dimg_buf p = {0};
	size_t n;

	memset(old, 7, sizeof(old));
	/* valid: seek 0, 16 diff, 16 extra */
	n = put_rec(ctrl, 0, 16, 16);
	craft_bsdiff(&p, 64, 32, ctrl, n, data, 16, data, 16);
	CHECK(apply_bs(old, 64, &p) == 0);
	/* diff past the end of old */
	n = put_rec(ctrl, 60, 16, 16);
	craft_bsdiff(&p, 64, 32, ctrl, n, data, 16, data, 16);
	CHECK(apply_bs(old, 64, &p) == -EOVERFLOW);
	/* seek before the start of old */
	n = put_rec(ctrl, -1, 16, 16);
	craft_bsdiff(&p, 64, 32, ctrl, n, data, 16, data, 16);
	CHECK(apply_bs(old, 64, &p) == -EOVERFLOW);
	n = put_rec(ctrl, INT64_MIN, 16, 16);
	craft_bsdiff(&p, 64, 32, ctrl, n, data, 16, data, 16);
	CHECK(apply_bs(old, 64, &p) == -EOVERFLOW);
	/* lengths that wrap around or overrun new */
	n = put_rec(ctrl, 0, UINT64_MAX, 16);
	craft_bsdiff(&p, 64, 32, ctrl, n, data, 16, data, 16);
	CHECK(apply_bs(old, 64, &p) == -EOVERFLOW);
	n = put_rec(ctrl, 0, 16, UINT64_MAX - 15);
	craft_bsdiff(&p, 64, 32, ctrl, n, data, 16, data, 16);
	CHECK(apply_bs(old, 64, &p) == -EOVERFLOW);
	/* varints: longer than 10 bytes, or not in their shortest form */
	memset(ctrl, 0x80, 11);
	ctrl[11] = 0;
	craft_bsdiff(&p, 64, 32, ctrl, 12, data, 16, data, 16);
	CHECK(apply_bs(old, 64, &p) == -EBADMSG);
	memcpy(ctrl, "\x80\x00\x10\x10", 4); /* seek 0 written in 2 bytes */
	craft_bsdiff(&p, 64, 32, ctrl, 4, data, 16, data, 16);
	CHECK(apply_bs(old, 64, &p) == -EBADMSG);
	/* an empty record, and a missing one */
	n = put_rec(ctrl, 0, 0, 0);
	n += put_rec(ctrl + n, 0, 16, 16);
	craft_bsdiff(&p, 64, 32, ctrl, n, data, 16, data, 16);
	CHECK(apply_bs(old, 64, &p) == -EBADMSG);
	n = put_rec(ctrl, 0, 16, 16);
	craft_bsdiff(&p, 64, 64, ctrl, n, data, 32, data, 32);
	CHECK(apply_bs(old, 64, &p) == -EBADMSG);
	/* streams longer than the records use */
	craft_bsdiff(&p, 64, 32, ctrl, n, data, 20, data, 12);
	CHECK(apply_bs(old, 64, &p) == -EBADMSG);
	/* records left over once new is complete */
	n = put_rec(ctrl, 0, 16, 16);
	n += put_rec(ctrl + n, 0, 16, 16);
	craft_bsdiff(&p, 64, 32, ctrl, n, data, 16, data, 16);
	CHECK(apply_bs(old, 64, &p) == -EBADMSG);
	n = put_rec(ctrl, 0, 16, 16);
	craft_bsdiff(&p, 64, 32, ctrl, n, data, 16, data, 16);
	/* header: version, reserved, stream lengths */
	CHECK(apply_bs(old, 64, &p) == 0);
	p.data[8] = 3;
	CHECK(apply_bs(old, 64, &p) == -ENOTSUP);
	p.data[8] = 1;
	p.data[60] = 1;
	CHECK(apply_bs(old, 64, &p) == -EBADMSG);
	p.data[60] = 0;
	p.data[32]++;
	CHECK(apply_bs(old, 64, &p) == -EBADMSG);
	p.data[32]--;
	p.data[0] = 'X';
	CHECK(apply_bs(old, 64, &p) == -EBADMSG);
	CHECK(dimg_patch_apply(DIMG_CODEC_NONE, old, 64, p.data, p.len, sink_buf, &p, NULL) ==
	      -ENOTSUP);
	CHECK(dimg_patch_apply(77, old, 64, p.data, p.len, sink_buf, &p, NULL) == -ENOTSUP);
	dimg_buf_free(&p);
}

/* Frames that would make a decoder allocate a huge window, or that are
 * not exactly one frame. The content must exceed the decoder's 64 KiB
 * output chunk: smaller frames are decoded straight into it, no window. */
static void test_zstd_frames(void)
{
	enum { RAW = 100000 };
	/* magic, FHD (4-byte content size), window 2^30, size, one raw block */
	static uint8_t frame[4 + 1 + 1 + 4 + 3 + RAW] = {0x28, 0xb5, 0x2f, 0xfd, 0x80, 0xa0, 0xa0,
	                                                 0x86, 0x01, 0x00, 0x01, 0x35, 0x0c};
	uint8_t old[16] = {0};
	struct dimg_buf out = {0}, z = {0};

	CHECK(dimg_zstd_decode(frame, sizeof(frame), sink_buf, &out, NULL) == -EOVERFLOW);
	CHECK(dimg_zstdref_decode(old, sizeof(old), frame, sizeof(frame), sink_buf, &out, NULL) ==
	      -EOVERFLOW);
	frame[5] = 0x38; /* window 2^17: now valid */
	out.len = 0;
	CHECK_RC(dimg_zstd_decode(frame, sizeof(frame), sink_buf, &out, NULL));
	CHECK(out.len == RAW);

	/* a stated size the frame's length cannot possibly hold */
	frame[4] = 0xc0; /* 8-byte content size */
	memset(frame + 6, 0, 8);
	frame[12] = 1; /* 2^48 */
	CHECK(dimg_zstd_decode(frame, 64, sink_buf, &out, NULL) == -EBADMSG);
	CHECK(dimg_zstdref_decode(old, sizeof(old), frame, 64, sink_buf, &out, NULL) == -EBADMSG);

	CHECK_RC(dimg_zstd_encode(old, sizeof(old), 3, &z));
	CHECK_RC(dimg_zstd_encode(old, sizeof(old), 3, &z)); /* two frames */
	out.len = 0;
	CHECK(dimg_zstd_decode(z.data, z.len, sink_buf, &out, NULL) == -EBADMSG);
	CHECK_RC(dimg_zstd_decode(z.data, z.len / 2, sink_buf, &out, NULL));
	CHECK(dimg_zstd_decode(z.data, 0, sink_buf, &out, NULL) == -EBADMSG);
	CHECK(dimg_zstd_decode(z.data, z.len / 2 - 1, sink_buf, &out, NULL) == -EBADMSG);
	dimg_buf_free(&z);
	dimg_buf_free(&out);
}

static int sink_fail(void *ctx, const void *p, size_t n)
{
	size_t *left = ctx;

	if (n > *left)
		return -EIO;
	*left -= n;
	return 0;
}

/* A sink error stops the decoder and comes back unchanged. */
static void test_sink_errors(void)
{
	size_t n = 300000, left;
	uint8_t *old = random_bytes(n), *nw = random_bytes(n);
	struct dimg_buf p = {0};

	for (uint8_t codec = DIMG_CODEC_BSDIFF; codec <= DIMG_CODEC_ZSTDREF; codec++) {
		p.len = 0;
		CHECK_RC(encode(codec, old, n, nw, n, 1, &p));
		left = 100000;
		CHECK(dimg_patch_apply(codec, old, n, p.data, p.len, sink_fail, &left, NULL) ==
		      -EIO);
	}
	p.len = 0;
	CHECK_RC(dimg_zstd_encode(nw, n, 1, &p));
	left = 100000;
	CHECK(dimg_zstd_decode(p.data, p.len, sink_fail, &left, NULL) == -EIO);
	dimg_buf_free(&p);
	free(old);
	free(nw);
}

/* Sizes around powers of two: the decoder's window limit must still admit
 * every frame the encoder writes. */
static void test_zstdref_windows(void)
{
	uint8_t *old = random_bytes(1 << 17), *nw = random_bytes(1 << 17);
	static const size_t sizes[][2] = {{512, 512},     {512, 513},     {1024, 0},  {0, 1025},
	                                  {65536, 65536}, {65537, 65535}, {131072, 1}};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		memcpy(nw + sizes[i][1] / 2, old, sizes[i][0] / 2);
		roundtrip(DIMG_CODEC_ZSTDREF, old, sizes[i][0], nw, sizes[i][1], 19);
		zstd_roundtrip(nw, sizes[i][1], 19);
	}
	free(old);
	free(nw);
}

static uint8_t fuzz_old_byte(size_t i)
{
	return (uint8_t)((i * 2654435761u) >> 13 ^ (i >> 4));
}

/* Every input a fuzzer once crashed on must now be refused cleanly. */
static void test_should_fail(void)
{
	char dir[4096];
	const char *src = __FILE__, *cut = strstr(src, "tests/unit/");
	uint8_t old[FUZZ_OLD_LEN];
	struct dirent *de;
	DIR *d;
	int n = 0;

	if (!cut || (size_t)(cut - src) + 32 > sizeof(dir)) {
		fprintf(stderr, "test_should_fail: source dir unknown, skipped\n");
		return;
	}
	memcpy(dir, src, (size_t)(cut - src));
	memcpy(dir + (cut - src), "tests/assets/should-fail", 25);
	d = opendir(dir);
	if (!d && errno == ENOENT) {
		/* git does not keep empty directories */
		fprintf(stderr, "test_should_fail: no %s, skipped\n", dir);
		return;
	}
	CHECK(d != NULL);
	for (size_t i = 0; i < FUZZ_OLD_LEN; i++)
		old[i] = fuzz_old_byte(i);
	while ((de = readdir(d)) != NULL) {
		char path[8192];
		size_t len;
		uint8_t *p;

		if (de->d_name[0] == '.')
			continue;
		CHECK(snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) < (int)sizeof(path));
		p = read_file(path, &len);
		CHECK(p != NULL);
		apply_damaged(DIMG_CODEC_BSDIFF, old, sizeof(old), p, len, 1);
		apply_damaged(DIMG_CODEC_ZSTDREF, old, sizeof(old), p, len, 1);
		free(p);
		n++;
	}
	closedir(d);
	fprintf(stderr, "should-fail inputs: %d\n", n);
}

int main(void)
{
	double t0 = now();

	test_buf();
	test_write_fd();
	test_hash();
	test_small_cases();
	test_random();
	test_edits();
	test_binaries();
	test_determinism();
	test_append_semantics();
	test_corruption();
	test_bsdiff_bounds();
	test_zstd_frames();
	test_zstdref_windows();
	test_sink_errors();
	test_pathological();
	test_should_fail();
	fprintf(stderr, "test_codec: ok (%.1f s)\n", now() - t0);
	return 0;
}
