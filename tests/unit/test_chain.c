/* The chain codec (codec 4): steps of codecs 1-3 applied in turn give the
 * last file; every intermediate is checked by size and SHA-256; malformed
 * blobs (every truncation, single-byte flips, nested chains, too many
 * steps) are refused, never a crash or a wrong intermediate passed on. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dimg/codec.h"
#include "dimg/hash.h"

static unsigned long long seed = 0xc4a1c4a1ULL;

static void text(struct dimg_buf *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)("abcdefgh ij\n"[test_rand(&seed) % 12]);
		CHECK_RC(dimg_buf_append(b, &c, 1));
	}
}

/* next: cur with a few edits and an insertion. */
static void edit(const struct dimg_buf *cur, struct dimg_buf *next)
{
	CHECK_RC(dimg_buf_append(next, cur->data, cur->len));
	for (int k = 0; k < 8 && next->len; k++)
		next->data[test_rand(&seed) % next->len] ^= 0x40;
	text(next, 100);
}

#define NV 5

struct fixture {
	struct dimg_buf v[NV];     /* v0 .. v4 */
	struct dimg_buf p[NV - 1]; /* p[i]: v[i] -> v[i+1] */
	struct dimg_chain_step s[NV - 1];
};

static void fixture_make(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	text(&f->v[0], 20000);
	for (int i = 1; i < NV; i++)
		edit(&f->v[i - 1], &f->v[i]);
	for (int i = 0; i < NV - 1; i++) {
		/* alternate codecs: bsdiff, zstdref, ... */
		uint8_t codec = i % 2 ? DIMG_CODEC_ZSTDREF : DIMG_CODEC_BSDIFF;
		if (codec == DIMG_CODEC_BSDIFF)
			CHECK_RC(dimg_bsdiff(f->v[i].data, f->v[i].len, f->v[i + 1].data,
			                     f->v[i + 1].len, 3, &f->p[i]));
		else
			CHECK_RC(dimg_zstdref_encode(f->v[i].data, f->v[i].len, f->v[i + 1].data,
			                             f->v[i + 1].len, 3, &f->p[i]));
		f->s[i] = (struct dimg_chain_step){.codec = codec,
		                                   .size = f->v[i + 1].len,
		                                   .blob = f->p[i].data,
		                                   .len = f->p[i].len};
		CHECK_RC(dimg_sha256_buf(f->v[i + 1].data, f->v[i + 1].len, f->s[i].sha256));
	}
}

static void fixture_free(struct fixture *f)
{
	for (int i = 0; i < NV; i++)
		dimg_buf_free(&f->v[i]);
	for (int i = 0; i < NV - 1; i++)
		dimg_buf_free(&f->p[i]);
}

static int apply(const struct dimg_buf *old, const struct dimg_buf *blob, struct dimg_buf *got)
{
	uint64_t n = 0;
	got->len = 0;
	int r = dimg_patch_apply(DIMG_CODEC_CHAIN, old->data, old->len, blob->data, blob->len,
	                         dimg_write_buf, got, &n);
	CHECK(r < 0 || n == got->len);
	return r;
}

static void round_trips(struct fixture *f)
{
	struct dimg_buf blob = {0}, got = {0};
	struct dimg_chain_step back[DIMG_CHAIN_MAX];
	size_t n = 0;
	for (size_t k = 2; k <= NV - 1; k++) {
		blob.len = 0;
		CHECK_RC(dimg_chain_encode(f->s, k, &blob));
		CHECK_RC(apply(&f->v[0], &blob, &got));
		CHECK(got.len == f->v[k].len && memcmp(got.data, f->v[k].data, got.len) == 0);
		CHECK_RC(dimg_chain_parse(blob.data, blob.len, back, &n));
		CHECK(n == k);
		for (size_t i = 0; i < k; i++) {
			CHECK(back[i].codec == f->s[i].codec && back[i].len == f->s[i].len);
			CHECK(memcmp(back[i].blob, f->s[i].blob, back[i].len) == 0);
			if (i + 1 < k) /* the last step's size and hash are not stored */
				CHECK(back[i].size == f->s[i].size &&
				      !memcmp(back[i].sha256, f->s[i].sha256, 32));
		}
	}
	/* The wrong old file: the first step says so. */
	CHECK(apply(&f->v[1], &blob, &got) == -EXDEV || apply(&f->v[1], &blob, &got) == -EBADMSG);
	dimg_buf_free(&blob);
	dimg_buf_free(&got);
}

/* An intermediate that is not what the record says is refused before the
 * next step sees it. */
static void wrong_intermediate(struct fixture *f)
{
	struct dimg_buf blob = {0}, got = {0};
	struct dimg_chain_step s[NV - 1];
	memcpy(s, f->s, sizeof(s));
	s[0].sha256[5] ^= 1;
	CHECK_RC(dimg_chain_encode(s, 3, &blob));
	CHECK(apply(&f->v[0], &blob, &got) == -EBADMSG);
	CHECK(got.len == 0); /* nothing reached the sink */
	memcpy(s, f->s, sizeof(s));
	s[1].size++;
	blob.len = 0;
	CHECK_RC(dimg_chain_encode(s, 3, &blob));
	CHECK(apply(&f->v[0], &blob, &got) == -EBADMSG);
	dimg_buf_free(&blob);
	dimg_buf_free(&got);
}

static void refused_encodings(struct fixture *f)
{
	struct dimg_buf blob = {0};
	struct dimg_chain_step s[2] = {f->s[0], f->s[1]};
	CHECK(dimg_chain_encode(s, 1, &blob) == -EINVAL);
	CHECK(dimg_chain_encode(s, DIMG_CHAIN_MAX + 1, &blob) == -EINVAL);
	s[1].codec = DIMG_CODEC_CHAIN; /* no chains inside chains */
	CHECK(dimg_chain_encode(s, 2, &blob) == -EINVAL);
	dimg_buf_free(&blob);
}

/* Every truncation and a sweep of single-byte flips: refused, or (a flip
 * in a blob's compressed bytes zstd does not check) an output that is not
 * the target only where the last step's codec cannot tell. */
static void corrupt(struct fixture *f)
{
	struct dimg_buf blob = {0}, got = {0};
	struct dimg_chain_step back[DIMG_CHAIN_MAX];
	size_t n;
	CHECK_RC(dimg_chain_encode(f->s, NV - 1, &blob));
	for (size_t len = 0; len < blob.len; len += 1 + len / 64) {
		struct dimg_buf cut = {.data = blob.data, .len = len};
		CHECK(dimg_chain_parse(blob.data, len, back, &n) < 0);
		CHECK(apply(&f->v[0], &cut, &got) < 0);
	}
	int refused = 0;
	for (size_t i = 0; i < blob.len; i += 1 + i / 32) {
		blob.data[i] ^= 0x10;
		int r = apply(&f->v[0], &blob, &got);
		blob.data[i] ^= 0x10;
		if (r < 0)
			refused++;
		else
			CHECK(got.len == f->v[NV - 1].len);
	}
	CHECK(refused > 0);
	/* Version and step count. */
	blob.data[0] = 2;
	CHECK(dimg_chain_parse(blob.data, blob.len, back, &n) == -ENOTSUP);
	blob.data[0] = 1;
	blob.data[1] = 1; /* one step is not a chain */
	CHECK(dimg_chain_parse(blob.data, blob.len, back, &n) == -EBADMSG);
	blob.data[1] = 65;
	CHECK(dimg_chain_parse(blob.data, blob.len, back, &n) == -EBADMSG);
	dimg_buf_free(&blob);
	dimg_buf_free(&got);
}

int main(void)
{
	struct fixture f;
	fixture_make(&f);
	round_trips(&f);
	wrong_intermediate(&f);
	refused_encodings(&f);
	corrupt(&f);
	fixture_free(&f);
	printf("chain: ok\n");
	return 0;
}
