/* Plain zstd frames (full payloads), frames with a delta's shared
 * dictionary, zstd with the old file as a raw prefix
 * (the zstdref patch codec). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <zdict.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "dimg/codec.h"
#include "endian-internal.h"
#include "zstd-internal.h"

#define ZC_CHUNK (64u * 1024u)
/* The largest window levels 1..22 pick without long-distance matching;
 * plain frames never need more, so the decoder never grants more. */
#define ZC_PLAIN_WLOG_MAX 27
/* The densest zstd block is RLE: 4 bytes (3 header, 1 value) for at most
 * 128 KiB of output. A frame claiming more than this ratio is lying, and
 * its claimed size would otherwise size the decoder's window buffer. */
#define ZC_MAX_RATIO ((128u << 10) / 4u)

static const uint8_t zc_empty;

static int zc_cerr(size_t r)
{
	return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? -ENOMEM : -EIO;
}

/* Smallest l with 2^l >= v. */
static int zc_log2ceil(uint64_t v)
{
	int l = 0;

	while (l < 63 && ((uint64_t)1 << l) < v)
		l++;
	return l;
}

static int zc_clamp(int v, ZSTD_bounds b)
{
	if (v < b.lowerBound)
		return b.lowerBound;
	return v > b.upperBound ? b.upperBound : v;
}

/* A compression context with the settings every frame of ours shares:
 * the given level, content size recorded, single-threaded. */
static int zc_cctx(ZSTD_CCtx **out, int level)
{
	ZSTD_CCtx *cc;
	size_t r;

	*out = NULL;
	if (level < 1 || level > ZSTD_maxCLevel())
		return -EINVAL;
	cc = ZSTD_createCCtx();
	if (!cc)
		return -ENOMEM;
	r = ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 1);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(cc, ZSTD_c_nbWorkers, 0);
	if (ZSTD_isError(r)) {
		ZSTD_freeCCtx(cc);
		return -EINVAL;
	}
	*out = cc;
	return 0;
}

/* One-shot compression appended to out; out is unchanged on failure. */
static int zc_compress(ZSTD_CCtx *cc, const uint8_t *src, size_t len, struct dimg_buf *out)
{
	size_t bound = ZSTD_compressBound(len), n;
	int r;

	if (bound == 0 || ZSTD_isError(bound))
		return -EFBIG;
	r = dimg_buf_reserve(out, bound);
	if (r < 0)
		return r;
	n = ZSTD_compress2(cc, out->data + out->len, bound, len ? src : &zc_empty, len);
	if (ZSTD_isError(n))
		return zc_cerr(n);
	out->len += n;
	return 0;
}

int dimg_zstd_encode(const uint8_t *data, size_t len, int level, struct dimg_buf *out)
{
	ZSTD_CCtx *cc;
	int r = zc_cctx(&cc, level);

	if (r < 0)
		return r;
	r = zc_compress(cc, data, len, out);
	ZSTD_freeCCtx(cc);
	return r;
}

struct dimg_zdict {
	uint8_t *bytes;
	size_t len;
	int level;
	ZSTD_CDict *cdict;
};

void dimg_zdict_free(struct dimg_zdict *d)
{
	if (!d)
		return;
	ZSTD_freeCDict(d->cdict);
	free(d->bytes);
	free(d);
}

void dimg_zdict_bytes(const struct dimg_zdict *d, const uint8_t **p, size_t *len)
{
	*p = d->bytes;
	*len = d->len;
}

int dimg_zdict_train(struct dimg_zdict **out, const uint8_t *samples, const size_t *sizes, size_t n,
                     size_t cap, int level)
{
	struct dimg_zdict *d;
	size_t got;

	*out = NULL;
	if (level < 1 || level > ZSTD_maxCLevel() || n > UINT32_MAX)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d || !(d->bytes = malloc(cap ? cap : 1))) {
		free(d);
		return -ENOMEM;
	}
	/* The default trainer (fastCover, no threads) is deterministic. */
	got = ZDICT_trainFromBuffer(d->bytes, cap, samples, sizes, (unsigned)n);
	if (ZDICT_isError(got)) {
		dimg_zdict_free(d);
		return -ENODATA;
	}
	d->len = got;
	d->level = level;
	d->cdict = ZSTD_createCDict(d->bytes, d->len, level);
	if (!d->cdict) {
		dimg_zdict_free(d);
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

int dimg_zstd_encode_dict(const struct dimg_zdict *d, const uint8_t *data, size_t len,
                          struct dimg_buf *out)
{
	ZSTD_CCtx *cc;
	int r = zc_cctx(&cc, d->level);
	size_t zr;

	if (r < 0)
		return r;
	zr = ZSTD_CCtx_setParameter(cc, ZSTD_c_dictIDFlag, 0);
	if (!ZSTD_isError(zr))
		zr = ZSTD_CCtx_refCDict(cc, d->cdict);
	r = ZSTD_isError(zr) ? zc_cerr(zr) : zc_compress(cc, data, len, out);
	ZSTD_freeCCtx(cc);
	return r;
}

int dimg_zstdref_level(int level, uint64_t oldlen, uint64_t newlen)
{
	if (oldlen + newlen >= DIMG_ZSTDREF_LARGE && level > DIMG_ZSTDREF_LARGE_LEVEL)
		return DIMG_ZSTDREF_LARGE_LEVEL;
	return level;
}

int dimg_zstdref_encode(const uint8_t *old, size_t oldlen, const uint8_t *new_, size_t newlen,
                        int level, struct dimg_buf *out)
{
	ZSTD_CCtx *cc;
	int wlog = zc_log2ceil((uint64_t)oldlen + newlen);
	int r = zc_cctx(&cc, level);
	size_t zr;

	if (r < 0)
		return r;
	/* The window spans old and new so the end of new can still reach the
	 * start of old; zstd narrows it again for small inputs. */
	wlog = zc_clamp(wlog, ZSTD_cParam_getBounds(ZSTD_c_windowLog));
	zr = ZSTD_CCtx_setParameter(cc, ZSTD_c_enableLongDistanceMatching, 1);
	if (!ZSTD_isError(zr))
		zr = ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, wlog);
	if (!ZSTD_isError(zr) && oldlen > 0)
		zr = ZSTD_CCtx_refPrefix(cc, old, oldlen);
	r = ZSTD_isError(zr) ? zc_cerr(zr) : zc_compress(cc, new_, newlen, out);
	ZSTD_freeCCtx(cc);
	return r;
}

/* The blob must start with a regular zstd frame that states a size its
 * length can actually hold. */
static int zc_frame_size(const uint8_t *src, size_t len, uint64_t *size)
{
	unsigned long long s;

	if (len < 4 || le32dec(src) != ZSTD_MAGICNUMBER)
		return -EBADMSG;
	s = ZSTD_getFrameContentSize(src, len);
	if (s == ZSTD_CONTENTSIZE_ERROR || s == ZSTD_CONTENTSIZE_UNKNOWN)
		return -EBADMSG;
	if (s / ZC_MAX_RATIO > len)
		return -EBADMSG;
	*size = s;
	return 0;
}

static int zc_dctx(ZSTD_DCtx **out, int wlog)
{
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	size_t r;

	*out = NULL;
	if (!dc)
		return -ENOMEM;
	wlog = zc_clamp(wlog, ZSTD_dParam_getBounds(ZSTD_d_windowLogMax));
	r = ZSTD_DCtx_setParameter(dc, ZSTD_d_windowLogMax, wlog);
	if (ZSTD_isError(r)) {
		ZSTD_freeDCtx(dc);
		return -EINVAL;
	}
	*out = dc;
	return 0;
}

/* Streams one frame to sink in ZC_CHUNK pieces; the frame must end exactly
 * at the end of src (no second frame, no trailing bytes). */
static int zc_stream(ZSTD_DCtx *dc, const uint8_t *src, size_t len, dimg_write_fn sink,
                     void *sink_ctx, uint64_t *total)
{
	ZSTD_inBuffer in = {src, len, 0};
	uint8_t *buf = malloc(ZC_CHUNK);
	int r = buf ? 0 : -ENOMEM;

	*total = 0;
	while (r == 0) {
		ZSTD_outBuffer o = {buf, ZC_CHUNK, 0};
		size_t z = ZSTD_decompressStream(dc, &o, &in);

		if (ZSTD_isError(z)) {
			r = dimg_zstd_derr(z);
			break;
		}
		if (o.pos > 0) {
			r = sink(sink_ctx, buf, o.pos);
			r = r < 0 ? r : 0;
			*total += o.pos;
		}
		if (z == 0)
			break;
		/* Output room left and input gone: the frame is cut short. */
		if (r == 0 && in.pos == in.size && o.pos < o.size)
			r = -EBADMSG;
	}
	if (r == 0 && in.pos != in.size)
		r = -EBADMSG;
	free(buf);
	return r;
}

static int zc_decode(ZSTD_DCtx *dc, const uint8_t *src, size_t len, uint64_t size,
                     dimg_write_fn sink, void *sink_ctx, uint64_t *outlen)
{
	uint64_t total;
	int r = zc_stream(dc, src, len, sink, sink_ctx, &total);

	if (r == 0 && total != size)
		r = -EBADMSG;
	if (r == 0 && outlen)
		*outlen = total;
	return r;
}

int dimg_zstd_decode_ddict(const uint8_t *blob, size_t bloblen, const ZSTD_DDict *dd,
                           dimg_write_fn sink, void *sink_ctx, uint64_t *outlen)
{
	ZSTD_DCtx *dc;
	uint64_t size;
	int wlog, r = zc_frame_size(blob, bloblen, &size);
	size_t zr;

	if (r < 0)
		return r;
	wlog = zc_log2ceil(size);
	r = zc_dctx(&dc, wlog < ZC_PLAIN_WLOG_MAX ? wlog : ZC_PLAIN_WLOG_MAX);
	if (r < 0)
		return r;
	zr = dd ? ZSTD_DCtx_refDDict(dc, dd) : 0;
	if (ZSTD_isError(zr))
		r = dimg_zstd_derr(zr);
	else
		r = zc_decode(dc, blob, bloblen, size, sink, sink_ctx, outlen);
	ZSTD_freeDCtx(dc);
	return r;
}

int dimg_zstd_decode(const uint8_t *blob, size_t bloblen, dimg_write_fn sink, void *sink_ctx,
                     uint64_t *outlen)
{
	return dimg_zstd_decode_ddict(blob, bloblen, NULL, sink, sink_ctx, outlen);
}

/* Memory: the decoder keeps one buffer of min(window, new size) plus about
 * 256 KiB; old is referenced in place, never copied. The window limit comes
 * from oldlen and the frame's stated size, exactly as the encoder derives
 * it, and the stated size is capped by the frame's length (ZC_MAX_RATIO),
 * so a short hostile frame cannot ask for a large buffer. */
int dimg_zstdref_decode(const uint8_t *old, size_t oldlen, const uint8_t *patch, size_t patchlen,
                        dimg_write_fn sink, void *sink_ctx, uint64_t *newlen)
{
	ZSTD_DCtx *dc;
	uint64_t size, span;
	int r = zc_frame_size(patch, patchlen, &size);
	size_t zr;

	if (r < 0)
		return r;
	span = size > UINT64_MAX - oldlen ? UINT64_MAX : size + oldlen;
	r = zc_dctx(&dc, zc_log2ceil(span));
	if (r < 0)
		return r;
	zr = oldlen > 0 ? ZSTD_DCtx_refPrefix(dc, old, oldlen) : 0;
	if (ZSTD_isError(zr))
		r = dimg_zstd_derr(zr);
	else
		r = zc_decode(dc, patch, patchlen, size, sink, sink_ctx, newlen);
	ZSTD_freeDCtx(dc);
	return r;
}
