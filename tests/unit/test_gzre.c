/* Unit tests for the gzip-recompress codec (codec 3): round trips on gzip
 * files made by zlib with every level, header field and member layout,
 * block ends forced where zlib would not end a block, files that only look
 * like gzip, corrupt blobs, and determinism. Files made by other tools
 * (GNU gzip, pigz, busybox, Python) are covered by
 * tests/integration/gzip_recompress.sh. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zlib.h>

#include "check.h"
#include "dimg/codec.h"
#include "dimg/dimg.h"
#include "dimg/hash.h"
#include "endian-internal.h"

static unsigned long long seed = 0x5eed5eed12345678ULL;

static int sink_buf(void *ctx, const void *p, size_t n)
{
	struct dimg_buf *b = ctx;
	if (b->len + n > (256u << 20))
		return -EFBIG;
	return dimg_buf_append(b, p, n);
}

/* Text-like content: words from a small vocabulary, so deflate finds
 * matches and makes several blocks on larger sizes. */
static void make_text(struct dimg_buf *b, size_t n, unsigned long long *s)
{
	static const char *words[] = {"the",   "package", "update",  "security", "fix",
	                              "nginx", "openssl", "release", "upstream", "debian",
	                              "man",   "page",    "CVE-",    "\n",       "  * "};
	while (b->len < n) {
		const char *w = words[test_rand(s) % 15];
		CHECK_RC(dimg_buf_append(b, w, strlen(w)));
		if (test_rand(s) % 7 == 0) {
			char num[24];
			int k = snprintf(num, sizeof(num), "%llu", test_rand(s) % 100000);
			CHECK_RC(dimg_buf_append(b, num, (size_t)k));
		}
		CHECK_RC(dimg_buf_append(b, " ", 1));
	}
	b->len = n;
}

struct gzopt {
	int level, memlevel, strategy;
	const char *name, *comment;
	int extra, hcrc;
	unsigned long mtime;
	size_t block_every; /* force a block end every this many bytes (0: none) */
};

/* Appends one gzip member of data made with zlib's gzip wrapper. */
static void gz_member(struct dimg_buf *out, const uint8_t *data, size_t len, const struct gzopt *o)
{
	z_stream z = {0};
	gz_header h = {0};
	uint8_t extra[6] = {'d', 'i', 2, 0, 'o', 'k'};
	CHECK(deflateInit2(&z, o->level, Z_DEFLATED, 31, o->memlevel, o->strategy) == Z_OK);
	h.time = o->mtime;
	h.os = 3;
	h.name = (Bytef *)o->name;
	h.comment = (Bytef *)o->comment;
	h.extra = o->extra ? extra : Z_NULL;
	h.extra_len = o->extra ? sizeof(extra) : 0;
	h.hcrc = o->hcrc;
	CHECK(deflateSetHeader(&z, &h) == Z_OK);
	size_t pos = 0;
	int zr;
	do {
		size_t k = len - pos;
		int flush = Z_FINISH;
		if (o->block_every && k > o->block_every) {
			k = o->block_every;
			flush = Z_BLOCK;
		}
		z.next_in = (Bytef *)data + pos;
		z.avail_in = (uInt)k;
		pos += k;
		do {
			CHECK_RC(dimg_buf_reserve(out, 1 << 16));
			z.next_out = out->data + out->len;
			z.avail_out = 1 << 16;
			zr = deflate(&z, flush);
			CHECK(zr != Z_STREAM_ERROR);
			out->len += (1 << 16) - z.avail_out;
		} while (z.avail_out == 0);
	} while (zr != Z_STREAM_END);
	deflateEnd(&z);
}

static void apply_ok(const struct dimg_buf *old, const struct dimg_buf *nw,
                     const struct dimg_buf *blob)
{
	struct dimg_buf got = {0};
	uint64_t n = 0;
	CHECK_RC(dimg_gzre_decode(old->data, old->len, blob->data, blob->len, sink_buf, &got, &n));
	CHECK(n == nw->len && got.len == nw->len && memcmp(got.data, nw->data, nw->len) == 0);
	dimg_buf_free(&got);
}

/* Encodes new against old, applies, compares; returns the blob's inner
 * codec byte. */
static int round_trip(const struct dimg_buf *old, const struct dimg_buf *nw, size_t *bloblen)
{
	struct dimg_buf blob = {0}, again = {0};
	CHECK_RC(dimg_gzre_encode(old->data, old->len, nw->data, nw->len, 19, DIMG_GZRE_INNER_ALL,
	                          &blob));
	CHECK(blob.len >= 20 && blob.data[0] == 1);
	apply_ok(old, nw, &blob);
	CHECK_RC(dimg_gzre_encode(old->data, old->len, nw->data, nw->len, 19, DIMG_GZRE_INNER_ALL,
	                          &again));
	CHECK(again.len == blob.len && memcmp(again.data, blob.data, blob.len) == 0);
	int inner = blob.data[1];
	if (bloblen)
		*bloblen = blob.len;
	dimg_buf_free(&blob);
	dimg_buf_free(&again);
	return inner;
}

/* A text and an edited copy (a new entry at the top, a changed line). */
static void text_pair(struct dimg_buf *a, struct dimg_buf *b, size_t n)
{
	make_text(a, n, &seed);
	make_text(b, 300, &seed);
	CHECK_RC(dimg_buf_append(b, a->data, a->len));
	if (b->len > 1000)
		memcpy(b->data + b->len / 2, "CHANGED LINE", 12);
}

static void test_levels(void)
{
	struct dimg_buf ta = {0}, tb = {0};
	text_pair(&ta, &tb, 80000);
	for (int level = 1; level <= 9; level++) {
		for (int mem = 8; mem <= 9; mem++) {
			struct gzopt o = {.level = level, .memlevel = mem};
			struct dimg_buf ga = {0}, gb = {0};
			size_t bl;
			gz_member(&ga, ta.data, ta.len, &o);
			gz_member(&gb, tb.data, tb.len, &o);
			CHECK(round_trip(&ga, &gb, &bl) != 0); /* a patch of the texts */
			/* The point of it all: far smaller than zstd of the gzip. */
			struct dimg_buf z = {0};
			CHECK_RC(dimg_zstd_encode(gb.data, gb.len, 19, &z));
			CHECK(bl * 10 < z.len);
			dimg_buf_free(&z);
			dimg_buf_free(&ga);
			dimg_buf_free(&gb);
		}
	}
	dimg_buf_free(&ta);
	dimg_buf_free(&tb);
}

static void test_header_fields(void)
{
	struct dimg_buf ta = {0}, tb = {0};
	text_pair(&ta, &tb, 20000);
	struct gzopt opts[] = {
	    {.level = 9, .memlevel = 8, .name = "changelog.Debian", .mtime = 1700000000},
	    {.level = 6, .memlevel = 8, .comment = "a comment", .extra = 1, .hcrc = 1},
	    {.level = 9,
	     .memlevel = 8,
	     .name = "x",
	     .comment = "y",
	     .extra = 1,
	     .hcrc = 1,
	     .mtime = 1}};
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		struct dimg_buf ga = {0}, gb = {0};
		gz_member(&ga, ta.data, ta.len, &opts[i]);
		gz_member(&gb, tb.data, tb.len, &opts[i]);
		CHECK(round_trip(&ga, &gb, NULL) != 0);
		dimg_buf_free(&ga);
		dimg_buf_free(&gb);
	}
	dimg_buf_free(&ta);
	dimg_buf_free(&tb);
}

/* Several members with different settings, an empty member, trailing
 * zeros after the last member (as tar padding leaves them). */
static void test_members(void)
{
	struct dimg_buf ta = {0}, tb = {0}, ga = {0}, gb = {0};
	struct gzopt o9 = {.level = 9, .memlevel = 8}, o1 = {.level = 1, .memlevel = 9};
	text_pair(&ta, &tb, 60000);
	gz_member(&ga, ta.data, ta.len, &o9);
	gz_member(&gb, tb.data, 1000, &o9);
	gz_member(&gb, tb.data, 0, &o1);
	gz_member(&gb, tb.data + 1000, tb.len - 1000, &o1);
	gz_member(&gb, tb.data, 5, &o9);
	CHECK(round_trip(&ga, &gb, NULL) != 0);
	uint8_t zeros[300] = {0};
	CHECK_RC(dimg_buf_append(&gb, zeros, sizeof(zeros)));
	CHECK(round_trip(&ga, &gb, NULL) != 0);
	/* Old with several members too; its content is their concatenation. */
	CHECK(round_trip(&gb, &ga, NULL) != 0);
	dimg_buf_free(&ta);
	dimg_buf_free(&tb);
	dimg_buf_free(&ga);
	dimg_buf_free(&gb);
}

/* Block ends zlib would not choose (GNU gzip's early flushes look like
 * this to zlib) are found and recorded. */
static void test_block_ends(void)
{
	struct dimg_buf ta = {0}, tb = {0}, ga = {0}, gb = {0};
	struct gzopt o = {.level = 9, .memlevel = 9, .block_every = 7777};
	text_pair(&ta, &tb, 100000);
	gz_member(&ga, ta.data, ta.len, &o);
	gz_member(&gb, tb.data, tb.len, &o);
	CHECK(round_trip(&ga, &gb, NULL) != 0);
	dimg_buf_free(&ta);
	dimg_buf_free(&tb);
	dimg_buf_free(&ga);
	dimg_buf_free(&gb);
}

/* New is gzip, old is not: the content goes as one zstd frame. */
static void test_old_not_gzip(void)
{
	struct dimg_buf ta = {0}, tb = {0}, gb = {0};
	struct gzopt o = {.level = 6, .memlevel = 8};
	text_pair(&ta, &tb, 30000);
	gz_member(&gb, tb.data, tb.len, &o);
	CHECK(round_trip(&ta, &gb, NULL) == 0);
	struct dimg_buf none = {0};
	CHECK(round_trip(&none, &gb, NULL) == 0);
	dimg_buf_free(&ta);
	dimg_buf_free(&tb);
	dimg_buf_free(&gb);
}

static void expect_nodata(const uint8_t *p, size_t n)
{
	struct dimg_buf blob = {0};
	CHECK(dimg_gzre_encode(NULL, 0, p, n, 3, DIMG_GZRE_INNER_ALL, &blob) == -ENODATA);
	CHECK(blob.len == 0);
}

/* Files that merely look like gzip, or that zlib cannot recreate. */
static void test_lookalikes(void)
{
	struct dimg_buf t = {0}, g = {0};
	struct gzopt o = {.level = 9, .memlevel = 8};
	make_text(&t, 5000, &seed);
	gz_member(&g, t.data, t.len, &o);
	uint8_t fake[64] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 'n', 'o', 't', ' ', 'd'};
	expect_nodata(fake, sizeof(fake));
	expect_nodata(t.data, t.len);
	expect_nodata(g.data, g.len - 1); /* truncated trailer */
	expect_nodata(g.data, g.len / 2); /* truncated stream */
	g.data[g.len - 5] ^= 1;           /* bad CRC-32 */
	expect_nodata(g.data, g.len);
	g.data[g.len - 5] ^= 1;
	g.data[3] = 0x80; /* reserved flag bit */
	expect_nodata(g.data, g.len);
	dimg_buf_free(&g);
	struct gzopt stored = {.level = 0, .memlevel = 8};
	gz_member(&g, t.data, t.len, &stored); /* level 0 is never recreated */
	expect_nodata(g.data, g.len);
	dimg_buf_free(&g);
	struct gzopt huff = {.level = 6, .memlevel = 8, .strategy = Z_HUFFMAN_ONLY};
	gz_member(&g, t.data, t.len, &huff); /* not among the candidates */
	expect_nodata(g.data, g.len);
	dimg_buf_free(&g);
	dimg_buf_free(&t);
}

/* Where things are in a one-member blob (docs/patch-format.md). */
struct layout {
	size_t params, gzhdr, blocks;
};

static size_t skip_varint(const uint8_t *b, size_t pos, uint64_t *v)
{
	*v = 0;
	for (int i = 0;; i++) {
		*v |= (uint64_t)(b[pos] & 0x7f) << (7 * i);
		if (!(b[pos++] & 0x80))
			return pos;
	}
}

static struct layout blob_layout(const uint8_t *b)
{
	struct layout l;
	uint64_t v, hdrlen;
	size_t pos = 2;
	for (int i = 0; i < 5; i++)
		pos = skip_varint(b, pos, &v);
	l.params = pos;
	pos = skip_varint(b, pos + 4, &hdrlen);
	pos = skip_varint(b, pos, &v);
	pos = skip_varint(b, pos, &v);
	l.gzhdr = pos;
	l.blocks = pos + hdrlen;
	return l;
}

static int decode_rc(const struct dimg_buf *old, const uint8_t *blob, size_t len,
                     struct dimg_buf *got)
{
	uint64_t n = 0;
	got->len = 0;
	return dimg_gzre_decode(old->data, old->len, blob, len, sink_buf, got, &n);
}

/* Every single-bit change of the blob's fixed part is decoded without a
 * crash, an overread or runaway output (what it yields is for the
 * rebuild's SHA-256 check: test_rebuild_refuses); parameters out of range
 * are refused outright; a wrong old is EXDEV. */
static void test_corrupt(void)
{
	struct dimg_buf ta = {0}, tb = {0}, ga = {0}, gb = {0}, blob = {0}, got = {0};
	struct gzopt o = {.level = 9, .memlevel = 8, .name = "n", .block_every = 3000};
	text_pair(&ta, &tb, 20000);
	gz_member(&ga, ta.data, ta.len, &o);
	gz_member(&gb, tb.data, tb.len, &o);
	CHECK_RC(
	    dimg_gzre_encode(ga.data, ga.len, gb.data, gb.len, 19, DIMG_GZRE_INNER_ALL, &blob));
	struct layout l = blob_layout(blob.data);
	size_t fixed = l.blocks + 8; /* header, record, gzip header, some block ends */
	CHECK(blob.len > fixed);
	for (size_t i = 0; i < fixed; i++) {
		for (int bit = 0; bit < 8; bit++) {
			blob.data[i] ^= (uint8_t)(1 << bit);
			int r = decode_rc(&ga, blob.data, blob.len, &got);
			CHECK(r < 0 || got.len < 2 * gb.len + 4096);
			blob.data[i] ^= (uint8_t)(1 << bit);
		}
	}
	const uint8_t bad[][4] = {{0, 15, 8, 0}, {10, 15, 8, 0}, {9, 16, 8, 0}, {9, 8, 8, 0},
	                          {9, 15, 0, 0}, {9, 15, 10, 0}, {9, 15, 8, 5}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t keep[4];
		memcpy(keep, blob.data + l.params, 4);
		memcpy(blob.data + l.params, bad[i], 4);
		CHECK(decode_rc(&ga, blob.data, blob.len, &got) == -EBADMSG);
		memcpy(blob.data + l.params, keep, 4);
	}
	for (size_t cut = 0; cut < blob.len; cut += 7)
		CHECK(decode_rc(&ga, blob.data, cut, &got) < 0);
	CHECK(decode_rc(&tb, blob.data, blob.len, &got) == -EXDEV); /* old not gzip */
	CHECK(decode_rc(&gb, blob.data, blob.len, &got) == -EXDEV); /* other content */
	blob.data[0] = 2;
	CHECK(decode_rc(&ga, blob.data, blob.len, &got) == -ENOTSUP);
	CHECK(dimg_patch_apply(DIMG_CODEC_GZRE + 1, ga.data, ga.len, blob.data, blob.len, sink_buf,
	                       &got, NULL) == -ENOTSUP);
	dimg_buf_free(&ta);
	dimg_buf_free(&tb);
	dimg_buf_free(&ga);
	dimg_buf_free(&gb);
	dimg_buf_free(&blob);
	dimg_buf_free(&got);
}

/* Content past 64 MiB is not taken (apply would hold old's whole). */
static void test_too_large(void)
{
	size_t n = (64u << 20) + 1;
	uint8_t *zeros = calloc(1, n);
	struct dimg_buf g = {0};
	struct gzopt o = {.level = 1, .memlevel = 8};
	CHECK(zeros != NULL);
	gz_member(&g, zeros, n, &o);
	expect_nodata(g.data, g.len);
	dimg_buf_free(&g);
	gz_member(&g, zeros, n - 1, &o);
	struct dimg_buf blob = {0};
	CHECK_RC(dimg_gzre_encode(NULL, 0, g.data, g.len, 3, DIMG_GZRE_INNER_ALL, &blob));
	dimg_buf_free(&blob);
	dimg_buf_free(&g);
	free(zeros);
}

/* The base of test_rebuild_refuses: one file, in a memfd. */
static int one_file_open(void *ctx, const struct dimg_entry *e, int *fd)
{
	const struct dimg_buf *b = ctx;
	int f = memfd_create("base", MFD_CLOEXEC);
	(void)e;
	if (f < 0 || write(f, b->data, b->len) != (ssize_t)b->len)
		return -EIO;
	lseek(f, 0, SEEK_SET);
	*fd = f;
	return 0;
}

static void tree_with(struct dimg_tree **out, const struct dimg_buf *content)
{
	struct dimg_entry root = {.path = "", .type = DIMG_TYPE_DIR, .mode = 0755};
	struct dimg_entry f = {.path = "f.gz", .type = DIMG_TYPE_REG, .mode = 0644};
	f.size = content->len;
	f.payload = DIMG_PAYLOAD_SAME;
	CHECK_RC(dimg_sha256_buf(content->data, content->len, f.sha256));
	CHECK_RC(dimg_tree_new(out));
	CHECK_RC(dimg_tree_append(*out, &root));
	CHECK_RC(dimg_tree_append(*out, &f));
}

/* Rebuilds f.gz through a .dimg whose patch is blob. */
static int rebuild_with(const struct dimg_buf *old, const struct dimg_buf *nw,
                        const struct dimg_buf *blob)
{
	struct dimg_tree *base, *target, *t = NULL;
	struct dimg_writer *w;
	struct dimg_reader *rd;
	struct dimg_buf got = {0};
	uint8_t bid[32], tid[32];
	int fd = memfd_create("delta", MFD_CLOEXEC);
	CHECK(fd >= 0);
	tree_with(&base, old);
	tree_with(&target, nw);
	struct dimg_entry *e = &target->v[1];
	CHECK_RC(dimg_tree_id(base, bid));
	CHECK_RC(dimg_tree_id(target, tid));
	CHECK_RC(dimg_writer_new(&w, fd, bid, tid));
	CHECK_RC(dimg_writer_add_blob(w, blob->data, blob->len, &e->blob_off, &e->blob_xxh3));
	e->blob_len = blob->len;
	e->payload = DIMG_PAYLOAD_PATCH;
	e->codec = DIMG_CODEC_GZRE;
	CHECK_RC(dimg_writer_finish(w, base, target));
	size_t len = (size_t)dimg_writer_offset(w);
	dimg_writer_free(w);
	uint8_t *buf = malloc(len);
	CHECK(buf && pread(fd, buf, len, 0) == (ssize_t)len);
	close(fd);
	struct dimg_files files = {one_file_open, (void *)old};
	CHECK_RC(dimg_reader_open_mem(&rd, buf, len));
	CHECK_RC(dimg_reader_resolve(rd, base, &t));
	int r = dimg_reader_rebuild(rd, &t->v[1], &files, sink_buf, &got);
	if (r == 0)
		CHECK(got.len == nw->len && memcmp(got.data, nw->data, nw->len) == 0);
	dimg_tree_free(t);
	dimg_reader_free(rd);
	free(buf);
	dimg_tree_free(base);
	dimg_tree_free(target);
	dimg_buf_free(&got);
	return r;
}

/* Through the rebuild every apply uses (cdimg apply, the lazy tree):
 * the good blob gives the file; valid but wrong parameters, a wrong
 * gzip header byte or a wrong block end give an error, never bytes. */
static void test_rebuild_refuses(void)
{
	struct dimg_buf ta = {0}, tb = {0}, ga = {0}, gb = {0}, blob = {0};
	struct gzopt o = {.level = 9, .memlevel = 8, .name = "n", .block_every = 3000};
	text_pair(&ta, &tb, 40000);
	gz_member(&ga, ta.data, ta.len, &o);
	gz_member(&gb, tb.data, tb.len, &o);
	CHECK_RC(
	    dimg_gzre_encode(ga.data, ga.len, gb.data, gb.len, 19, DIMG_GZRE_INNER_ALL, &blob));
	CHECK(rebuild_with(&ga, &gb, &blob) == 0);
	/* Level 9 -> 8 happens to give the same bytes here, 9 -> 1 does not. */
	struct layout l = blob_layout(blob.data);
	CHECK(blob.data[l.params] == 9);
	blob.data[l.params] = 1;
	CHECK(rebuild_with(&ga, &gb, &blob) == -EBADMSG);
	blob.data[l.params] = 9;
	size_t at[] = {l.gzhdr + 4, l.blocks + 1}; /* gzip mtime, first block gap */
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		blob.data[at[i]] ^= 1;
		CHECK(rebuild_with(&ga, &gb, &blob) == -EBADMSG);
		blob.data[at[i]] ^= 1;
	}
	dimg_buf_free(&ta);
	dimg_buf_free(&tb);
	dimg_buf_free(&ga);
	dimg_buf_free(&gb);
	dimg_buf_free(&blob);
}

/* Composition (cdimg merge): gzip v1 -> v2 -> v3 blobs composed into one
 * v1 -> v3 blob that gives v3, for each pair of inner payloads that
 * composes; a zstdref inner over a patch is -ENOTSUP, a mismatched middle
 * -EXDEV, damaged inputs are refused or give a blob that fails its apply. */
static struct dimg_buf gz_of(const struct dimg_buf *text)
{
	struct dimg_buf g = {0};
	struct gzopt o = {.level = 9, .memlevel = 8};
	gz_member(&g, text->data, text->len, &o);
	return g;
}

static void encode_inner(const struct dimg_buf *a, const struct dimg_buf *b, unsigned inner,
                         struct dimg_buf *blob)
{
	blob->len = 0;
	CHECK_RC(dimg_gzre_encode(a->data, a->len, b->data, b->len, 12, inner, blob));
}

static void test_compose(void)
{
	struct dimg_buf t1 = {0}, t2 = {0}, t3 = {0}, junk = {0};
	text_pair(&t1, &t2, 40000);
	make_text(&t3, 500, &seed);
	CHECK_RC(dimg_buf_append(&t3, t2.data, t2.len));
	memcpy(t3.data + 9000, "ANOTHER EDIT", 12);
	make_text(&junk, 3000, &seed);
	struct dimg_buf g1 = gz_of(&t1), g2 = gz_of(&t2), g3 = gz_of(&t3);
	struct dimg_buf ab = {0}, bc = {0}, ac = {0};
	/* bsdiff over bsdiff: composed into one bsdiff inner patch. */
	encode_inner(&g1, &g2, DIMG_GZRE_INNER_BSDIFF, &ab);
	encode_inner(&g2, &g3, DIMG_GZRE_INNER_BSDIFF, &bc);
	CHECK(ab.data[1] == DIMG_CODEC_BSDIFF && bc.data[1] == DIMG_CODEC_BSDIFF);
	CHECK_RC(dimg_gzre_compose(ab.data, ab.len, bc.data, bc.len, 12, &ac));
	CHECK(ac.data[1] == DIMG_CODEC_BSDIFF);
	apply_ok(&g1, &g3, &ac);
	/* ... and that over a third step. */
	struct dimg_buf g4 = gz_of(&junk), cd = {0}, ad = {0};
	encode_inner(&g3, &g4, DIMG_GZRE_INNER_BSDIFF, &cd);
	CHECK_RC(dimg_gzre_compose(ac.data, ac.len, cd.data, cd.len, 12, &ad));
	apply_ok(&g1, &g4, &ad);
	/* ab's inner a zstd frame (old not gzip): bc applied to it, a frame. */
	struct dimg_buf plain = {0}, pz = {0};
	CHECK_RC(dimg_buf_append(&plain, "not gzip at all", 15));
	CHECK_RC(
	    dimg_gzre_encode(plain.data, plain.len, g2.data, g2.len, 12, DIMG_GZRE_INNER_ALL, &pz));
	CHECK(pz.data[1] == 0);
	ac.len = 0;
	CHECK_RC(dimg_gzre_compose(pz.data, pz.len, bc.data, bc.len, 12, &ac));
	CHECK(ac.data[1] == 0);
	apply_ok(&plain, &g3, &ac);
	/* zstdref inner: composes only as the second of a frame... */
	struct dimg_buf zr = {0};
	encode_inner(&g2, &g3, DIMG_GZRE_INNER_ZSTDREF, &zr);
	CHECK(zr.data[1] == DIMG_CODEC_ZSTDREF);
	ac.len = 0;
	CHECK_RC(dimg_gzre_compose(pz.data, pz.len, zr.data, zr.len, 12, &ac));
	apply_ok(&plain, &g3, &ac);
	/* ... not over a patch. */
	ac.len = 0;
	CHECK(dimg_gzre_compose(ab.data, ab.len, zr.data, zr.len, 12, &ac) == -ENOTSUP);
	/* bc's inner a frame: bc stands, whatever ab is. */
	struct dimg_buf fr = {0};
	encode_inner(&g3, &g4, 0, &fr);
	CHECK(fr.data[1] == 0);
	ac.len = 0;
	CHECK_RC(dimg_gzre_compose(zr.data, zr.len, fr.data, fr.len, 12, &ac));
	CHECK(ac.len == fr.len && memcmp(ac.data, fr.data, fr.len) == 0);
	/* A middle of another length. */
	ac.len = 0;
	CHECK(dimg_gzre_compose(bc.data, bc.len, bc.data, bc.len, 12, &ac) == -EXDEV);
	/* Damage: refused, or composed into a blob that applies or fails
	 * cleanly (header bytes are not checked by the codec: the entry's
	 * SHA-256 is, as for any gzip-recompress blob). */
	int refused = 0;
	for (size_t i = 0; i < bc.len; i += 1 + i / 16) {
		struct dimg_buf out = {0}, got = {0};
		bc.data[i] ^= 0x21;
		int r = dimg_gzre_compose(ab.data, ab.len, bc.data, bc.len, 12, &out);
		bc.data[i] ^= 0x21;
		if (r < 0) {
			CHECK(r == -EBADMSG || r == -EOVERFLOW || r == -EXDEV || r == -ENOTSUP);
			refused++;
		} else {
			r = dimg_gzre_decode(g1.data, g1.len, out.data, out.len, sink_buf, &got,
			                     NULL);
			CHECK(r == 0 || r == -EBADMSG || r == -EOVERFLOW || r == -EXDEV);
		}
		dimg_buf_free(&out);
		dimg_buf_free(&got);
	}
	CHECK(refused > 0);
	struct dimg_buf *all[] = {&t1, &t2, &t3, &junk, &g1,    &g2, &g3, &g4, &ab,
	                          &bc, &ac, &cd, &ad,   &plain, &pz, &zr, &fr};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		dimg_buf_free(all[i]);
}

int main(void)
{
	test_levels();
	test_header_fields();
	test_members();
	test_block_ends();
	test_old_not_gzip();
	test_lookalikes();
	test_corrupt();
	test_rebuild_refuses();
	test_too_large();
	test_compose();
	fprintf(stderr, "test_gzre: ok\n");
	return 0;
}
