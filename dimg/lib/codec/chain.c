/* Codec 4, "chain": a file's patches across several deltas, applied one
 * after the other (docs/patch-format.md "chain"). Made by `cdimg merge`
 * where two patches do not compose into one; never by the differ. The
 * intermediate contents are held in memory and checked against the
 * SHA-256 the blob records; the last step streams to the sink. */
#include <errno.h>
#include <string.h>

#include "dimg/codec.h"
#include "buf-internal.h"
#include "dimg/hash.h"
#include "varint-internal.h"

#define CHAIN_VERSION 1u

static int step_codec_ok(uint8_t codec)
{
	return codec >= DIMG_CODEC_BSDIFF && codec <= DIMG_CODEC_GZRE;
}

int dimg_chain_encode(const struct dimg_chain_step *s, size_t n, struct dimg_buf *out)
{
	uint8_t v = CHAIN_VERSION;
	int r = n >= 2 && n <= DIMG_CHAIN_MAX ? 0 : -EINVAL;
	if (!r)
		r = dimg_buf_append(out, &v, 1);
	if (!r)
		r = dimg_varint_put(out, n);
	for (size_t i = 0; !r && i < n; i++) {
		if (!step_codec_ok(s[i].codec))
			return -EINVAL;
		r = dimg_buf_append(out, &s[i].codec, 1);
		if (!r && i + 1 < n) {
			r = dimg_varint_put(out, s[i].size);
			if (!r)
				r = dimg_buf_append(out, s[i].sha256, 32);
		}
		if (!r)
			r = dimg_varint_put(out, s[i].len);
		if (!r)
			r = dimg_buf_append(out, s[i].blob, s[i].len);
	}
	return r;
}

/* One step record and its blob, at *p. */
static int parse_step(const uint8_t **p, const uint8_t *end, int last, struct dimg_chain_step *s)
{
	uint64_t len;
	int r;
	memset(s, 0, sizeof(*s));
	if (*p == end)
		return -EBADMSG;
	s->codec = *(*p)++;
	if (!step_codec_ok(s->codec))
		return -EBADMSG;
	if (!last) {
		if ((r = dimg_varint_get(p, end, &s->size)) < 0)
			return r;
		if (end - *p < 32)
			return -EBADMSG;
		memcpy(s->sha256, *p, 32);
		*p += 32;
	}
	if ((r = dimg_varint_get(p, end, &len)) < 0)
		return r;
	if (len > (uint64_t)(end - *p))
		return -EBADMSG;
	s->blob = *p;
	s->len = (size_t)len;
	*p += len;
	return 0;
}

int dimg_chain_parse(const uint8_t *patch, size_t len, struct dimg_chain_step *s, size_t *n)
{
	const uint8_t *p = patch, *end = patch + len;
	uint64_t k;
	int r;
	if (len < 1)
		return -EBADMSG;
	if (*p++ != CHAIN_VERSION)
		return -ENOTSUP;
	if ((r = dimg_varint_get(&p, end, &k)) < 0)
		return r;
	if (k < 2 || k > DIMG_CHAIN_MAX)
		return -EBADMSG;
	for (size_t i = 0; i < k; i++)
		if ((r = parse_step(&p, end, i + 1 == k, &s[i])) < 0)
			return r;
	if (p != end)
		return -EBADMSG;
	*n = (size_t)k;
	return 0;
}

/* Applies step s to cur into out (emptied first) and checks the result. */
static int run_step(const struct dimg_chain_step *s, const struct dimg_buf *cur, size_t oldlen,
                    const uint8_t *old, struct dimg_buf *out)
{
	static const uint8_t none[1];
	struct dimg_capped c = {out, s->size};
	uint8_t sha[32];
	const uint8_t *src = cur ? cur->data : old;
	size_t srclen = cur ? cur->len : oldlen;
	out->len = 0;
	int r = dimg_patch_apply(s->codec, srclen ? src : none, srclen, s->blob, s->len,
	                         dimg_write_capped, &c, NULL);
	if (r < 0)
		return r;
	if (out->len != s->size)
		return -EBADMSG;
	if ((r = dimg_sha256_buf(out->len ? out->data : none, out->len, sha)) < 0)
		return r;
	return memcmp(sha, s->sha256, 32) ? -EBADMSG : 0;
}

int dimg_chain_apply(const uint8_t *old, size_t oldlen, const uint8_t *patch, size_t patchlen,
                     dimg_write_fn sink, void *sink_ctx, uint64_t *newlen)
{
	static const uint8_t none[1];
	struct dimg_chain_step s[DIMG_CHAIN_MAX];
	struct dimg_buf buf[2] = {{0}, {0}};
	size_t n = 0, at = 0;
	int r = dimg_chain_parse(patch, patchlen, s, &n);
	for (size_t i = 0; !r && i + 1 < n; i++) {
		r = run_step(&s[i], i ? &buf[at] : NULL, oldlen, old, &buf[at ^ 1]);
		at ^= 1;
	}
	if (!r) {
		const struct dimg_buf *cur = &buf[at];
		r = dimg_patch_apply(s[n - 1].codec, cur->len ? cur->data : none, cur->len,
		                     s[n - 1].blob, s[n - 1].len, sink, sink_ctx, newlen);
	}
	dimg_buf_free(&buf[0]);
	dimg_buf_free(&buf[1]);
	return r;
}
