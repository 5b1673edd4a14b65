/* The bsdiff container's three streams (docs/patch-format.md, bsdiff):
 * compressing one both ways at once and keeping the smaller, and decoding
 * one on demand, whichever method it names. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "bsdiff-internal.h"
#include "endian-internal.h"
#include "zstd-internal.h"

/* Streams use at most an 8 MiB window so apply needs ~3 x 8 MiB at most. */
#define BSD_STREAM_WLOG 23
/* bzip2's largest blocks (900 kB), as Debian's bsdiff writes them. */
#define BSD_BZ_BLOCK 9
/* Above this level a sparse stream is first compressed at BSD_PROBE_LEVEL,
 * and at the real level only when that may win (bsd_zs_worth). */
#define BSD_PROBE_MAX   3
#define BSD_PROBE_LEVEL 1
#define BSD_PROBE_RATIO 0.60
/* Match tables of sparse streams (bsd_zs_cctx). */
#define BSD_SPARSE_CLOG 18
#define BSD_SPARSE_HLOG 16

/* ---- compressing ---- */

static int bsd_zcerr(size_t r)
{
	return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? -ENOMEM : -EIO;
}

static int bsd_bzerr(int r)
{
	return r == BZ_MEM_ERROR ? -ENOMEM : -EIO;
}

/* A zstd context for one frame of a stream: the caller's level, our
 * window; a sparse stream (the diff bytes: long runs of zeros) gets small
 * match tables, which keep level 19 as small on it (within 0.2% on real
 * executables) at three quarters of the time and a fraction of the memory. */
static int bsd_zs_cctx(ZSTD_CCtx **out, int level, uint64_t srclen, unsigned flags)
{
	ZSTD_CCtx *zc = ZSTD_createCCtx();
	size_t r;

	*out = zc;
	if (!zc)
		return -ENOMEM;
	r = ZSTD_CCtx_setParameter(zc, ZSTD_c_compressionLevel, level);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(zc, ZSTD_c_windowLog, BSD_STREAM_WLOG);
	if (!ZSTD_isError(r) && (flags & DIMG_BSD_ZS_SPARSE) && level > BSD_PROBE_MAX)
		r = ZSTD_CCtx_setParameter(zc, ZSTD_c_chainLog, BSD_SPARSE_CLOG);
	if (!ZSTD_isError(r) && (flags & DIMG_BSD_ZS_SPARSE) && level > BSD_PROBE_MAX)
		r = ZSTD_CCtx_setParameter(zc, ZSTD_c_hashLog, BSD_SPARSE_HLOG);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setPledgedSrcSize(zc, srclen);
	return ZSTD_isError(r) ? -EINVAL : 0;
}

int dimg_bsd_zs_begin(struct dimg_bsd_zs *s, int level, uint64_t srclen, unsigned flags)
{
	int b, r;

	memset(s, 0, sizeof(*s));
	s->level = level;
	s->flags = flags;
	s->srclen = srclen;
	s->probe = (flags & DIMG_BSD_ZS_SPARSE) && level > BSD_PROBE_MAX;
	/* A probed stream is kept for the real encoder. */
	r = bsd_zs_cctx(&s->zc, s->probe ? BSD_PROBE_LEVEL : level, srclen, s->probe ? 0 : flags);
	if (r < 0)
		return r;
	b = BZ2_bzCompressInit(&s->bz, BSD_BZ_BLOCK, 0, 0);
	if (b != BZ_OK)
		return bsd_bzerr(b);
	s->bz_open = 1;
	return 0;
}

/* zstd: n bytes in; last closes the frame. */
static int bsd_zs_zstd(struct dimg_bsd_zs *s, const void *p, size_t n, int last)
{
	ZSTD_inBuffer in = {p, n, 0};
	ZSTD_EndDirective mode = last ? ZSTD_e_end : ZSTD_e_continue;
	size_t r;

	do {
		ZSTD_outBuffer o;
		int err = dimg_buf_reserve(&s->zout, ZSTD_CStreamOutSize());

		if (err < 0)
			return err;
		o = (ZSTD_outBuffer){s->zout.data + s->zout.len, s->zout.cap - s->zout.len, 0};
		r = ZSTD_compressStream2(s->zc, &o, &in, mode);
		if (ZSTD_isError(r))
			return bsd_zcerr(r);
		s->zout.len += o.pos;
	} while (last ? r != 0 : in.pos < in.size);
	return 0;
}

/* bzip2: the same; avail_in is an unsigned int, so big inputs go in parts. */
static int bsd_zs_bzip2(struct dimg_bsd_zs *s, const uint8_t *p, size_t n, int last)
{
	int r;

	do {
		size_t part = n < UINT_MAX ? n : UINT_MAX;
		int err = dimg_buf_reserve(&s->bout, 64 * 1024);

		if (err < 0)
			return err;
		s->bz.next_in = (char *)(uintptr_t)p;
		s->bz.avail_in = (unsigned)part;
		s->bz.next_out = (char *)s->bout.data + s->bout.len;
		s->bz.avail_out =
		    (unsigned)(s->bout.cap - s->bout.len < UINT_MAX ? s->bout.cap - s->bout.len
		                                                    : UINT_MAX);
		unsigned room = s->bz.avail_out;
		r = BZ2_bzCompress(&s->bz, last && part == n ? BZ_FINISH : BZ_RUN);
		if (r != BZ_RUN_OK && r != BZ_FINISH_OK && r != BZ_STREAM_END)
			return bsd_bzerr(r);
		s->bout.len += room - s->bz.avail_out;
		if (part) /* the final call passes no input (p may be NULL) */
			p += part - s->bz.avail_in;
		n -= part - s->bz.avail_in;
	} while (last ? r != BZ_STREAM_END : n > 0);
	return 0;
}

int dimg_bsd_zs_feed(struct dimg_bsd_zs *s, const void *p, size_t n)
{
	int r = n ? bsd_zs_zstd(s, p, n, 0) : 0;

	if (r == 0 && n && s->probe)
		r = dimg_buf_append(&s->raw, p, n);
	return r < 0 || n == 0 ? r : bsd_zs_bzip2(s, p, n, 0);
}

/* Whether zstd at the caller's level can beat bzip2 on a sparse stream,
 * judged by the fast probe: on the diff streams of real executables level
 * 19 never came below 0.62 of level 1 (0.62-0.78 over nine pairs), so when
 * bzip2 is already under BSD_PROBE_RATIO of the probe the slow encode (most
 * of a patch's time) is skipped. Other streams (literal bytes, where level
 * 19 can be a third of level 1) always get the real level. */
static int bsd_zs_worth(const struct dimg_bsd_zs *s)
{
	return s->probe && (double)s->bout.len > BSD_PROBE_RATIO * (double)s->zout.len;
}

/* The stream again, one shot, at the caller's level, in place of the probe. */
static int bsd_zs_slow(struct dimg_bsd_zs *s)
{
	ZSTD_CCtx *zc;
	size_t bound = ZSTD_compressBound(s->raw.len), n;
	int r = bsd_zs_cctx(&zc, s->level, s->srclen, s->flags);
	struct dimg_buf z = {0};

	if (r == 0)
		r = dimg_buf_reserve(&z, bound);
	if (r == 0) {
		n = ZSTD_compress2(zc, z.data, bound, s->raw.len ? s->raw.data : (const void *)"",
		                   s->raw.len);
		r = ZSTD_isError(n) ? bsd_zcerr(n) : 0;
		z.len = r == 0 ? n : 0;
	}
	ZSTD_freeCCtx(zc);
	if (r == 0 && z.len <= s->zout.len) {
		dimg_buf_free(&s->zout);
		s->zout = z;
	} else {
		dimg_buf_free(&z);
	}
	return r;
}

int dimg_bsd_zs_end(struct dimg_bsd_zs *s, struct dimg_buf *out, uint8_t *method, uint64_t *zlen)
{
	int r = bsd_zs_zstd(s, NULL, 0, 1);
	const struct dimg_buf *best;

	if (r == 0)
		r = bsd_zs_bzip2(s, NULL, 0, 1);
	if (r == 0 && bsd_zs_worth(s))
		r = bsd_zs_slow(s);
	if (r < 0)
		return r;
	/* On a tie zstd, the faster to decode. */
	*method = s->bout.len < s->zout.len ? DIMG_BSD_BZIP2 : DIMG_BSD_ZSTD;
	best = *method == DIMG_BSD_BZIP2 ? &s->bout : &s->zout;
	*zlen = best->len;
	return dimg_buf_append(out, best->data, best->len);
}

void dimg_bsd_zs_free(struct dimg_bsd_zs *s)
{
	ZSTD_freeCCtx(s->zc);
	if (s->bz_open)
		BZ2_bzCompressEnd(&s->bz);
	dimg_buf_free(&s->zout);
	dimg_buf_free(&s->bout);
	dimg_buf_free(&s->raw);
	memset(s, 0, sizeof(*s));
}

/* ---- decoding ---- */

/* zstd: exactly one regular frame that states its content size, within the
 * window we write with. */
static int bsd_in_zstd(struct dimg_bsd_in *s, const uint8_t *p, size_t len)
{
	size_t r;

	if (len < 4 || le32dec(p) != ZSTD_MAGICNUMBER)
		return -EBADMSG;
	s->size = ZSTD_getFrameContentSize(p, len);
	if (s->size == ZSTD_CONTENTSIZE_ERROR || s->size == ZSTD_CONTENTSIZE_UNKNOWN)
		return -EBADMSG;
	s->ds = ZSTD_createDStream();
	if (!s->ds)
		return -ENOMEM;
	r = ZSTD_DCtx_setParameter(s->ds, ZSTD_d_windowLogMax, BSD_STREAM_WLOG);
	return ZSTD_isError(r) ? -ENOMEM : 0;
}

/* bzip2: one stream ("BZh" and a block size); its length is not stated. */
static int bsd_in_bzip2(struct dimg_bsd_in *s, const uint8_t *p, size_t len)
{
	int r;

	if (len < 4 || memcmp(p, "BZh", 3) != 0 || p[3] < '1' || p[3] > '9')
		return -EBADMSG;
	s->size = DIMG_BSD_SIZE_UNKNOWN;
	r = BZ2_bzDecompressInit(&s->bz, 0, 0);
	if (r != BZ_OK)
		return r == BZ_MEM_ERROR ? -ENOMEM : -EBADMSG;
	s->bz_open = 1;
	return 0;
}

int dimg_bsd_in_open(struct dimg_bsd_in *s, uint8_t method, const uint8_t *p, size_t len)
{
	memset(s, 0, sizeof(*s));
	s->method = method;
	s->p = p;
	s->len = len;
	if (method == DIMG_BSD_ZSTD)
		return bsd_in_zstd(s, p, len);
	if (method == DIMG_BSD_BZIP2)
		return bsd_in_bzip2(s, p, len);
	return -EBADMSG;
}

/* One decoder call into dst[0..n): *got bytes out; -EBADMSG when it can
 * make no progress (input exhausted before the stream's end). */
static int bsd_in_step(struct dimg_bsd_in *s, uint8_t *dst, size_t n, size_t *got)
{
	size_t inpos = s->pos;

	*got = 0;
	if (s->method == DIMG_BSD_ZSTD) {
		ZSTD_inBuffer in = {s->p, s->len, s->pos};
		ZSTD_outBuffer o = {dst, n, 0};
		size_t r = ZSTD_decompressStream(s->ds, &o, &in);

		if (ZSTD_isError(r))
			return dimg_zstd_derr(r);
		s->pos = in.pos;
		s->ended = r == 0;
		*got = o.pos;
	} else {
		size_t left = s->len - s->pos;
		unsigned ain = left < UINT_MAX ? (unsigned)left : UINT_MAX;
		unsigned aout = n < UINT_MAX ? (unsigned)n : UINT_MAX;
		int r;

		s->bz.next_in = (char *)(uintptr_t)(s->p + s->pos);
		s->bz.avail_in = ain;
		s->bz.next_out = (char *)dst;
		s->bz.avail_out = aout;
		r = BZ2_bzDecompress(&s->bz);
		if (r != BZ_OK && r != BZ_STREAM_END)
			return r == BZ_MEM_ERROR ? -ENOMEM : -EBADMSG;
		s->pos += ain - s->bz.avail_in;
		s->ended = r == BZ_STREAM_END;
		*got = aout - s->bz.avail_out;
	}
	if (!s->ended && *got == 0 && s->pos == inpos)
		return -EBADMSG;
	return 0;
}

int dimg_bsd_in_read(struct dimg_bsd_in *s, uint8_t *dst, size_t n)
{
	while (n > 0) {
		size_t got;
		int r;

		if (s->ended)
			return -EBADMSG;
		if ((r = bsd_in_step(s, dst, n, &got)) < 0)
			return r;
		dst += got;
		n -= got;
	}
	return 0;
}

int dimg_bsd_in_finish(struct dimg_bsd_in *s)
{
	uint8_t b;

	while (!s->ended) {
		size_t got;
		int r = bsd_in_step(s, &b, 1, &got);

		if (r < 0)
			return r;
		if (got != 0)
			return -EBADMSG;
	}
	return s->pos == s->len ? 0 : -EBADMSG;
}

int dimg_bsd_in_all(struct dimg_bsd_in *s, uint64_t max, struct dimg_buf *out)
{
	while (!s->ended) {
		size_t got, room;
		int r = dimg_buf_reserve(out, 64 * 1024);

		if (r < 0)
			return r;
		room = out->cap - out->len;
		/* One byte past max is enough to tell the stream is too long. */
		if (room > max - out->len + 1)
			room = (size_t)(max - out->len + 1);
		if ((r = bsd_in_step(s, out->data + out->len, room, &got)) < 0)
			return r;
		out->len += got;
		if (out->len > max)
			return -EBADMSG;
	}
	return s->pos == s->len ? 0 : -EBADMSG;
}

void dimg_bsd_in_free(struct dimg_bsd_in *s)
{
	ZSTD_freeDStream(s->ds);
	if (s->bz_open)
		BZ2_bzDecompressEnd(&s->bz);
	memset(s, 0, sizeof(*s));
}
