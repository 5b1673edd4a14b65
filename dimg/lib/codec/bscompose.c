/* Composition of two bsdiff patches (old -> mid, mid -> new) into one patch
 * old -> new without any of the three files: every new byte range is mapped
 * through the second patch to mid ranges and through the first to old
 * ranges, diff bytes summed modulo 256 (docs/merge.md). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "bsdiff-internal.h"
#include "dimg/codec.h"
#include "endian-internal.h"
#include "varint-internal.h"
#include "zstd-internal.h"

/* A run of new bytes: old[opos..] + diff[dpos..] (opos != BSC_EXTRA) or
 * extra[dpos..]. */
#define BSC_EXTRA UINT64_MAX

struct bsc_seg {
	uint64_t npos, len, opos, dpos;
};

/* One patch, decoded whole. */
struct bsc_patch {
	uint64_t oldsize, newsize;
	struct dimg_buf ctrl, diff, extra;
	struct bsc_seg *seg;
	size_t nseg, cap;
};

static void bsc_patch_free(struct bsc_patch *p)
{
	dimg_buf_free(&p->ctrl);
	dimg_buf_free(&p->diff);
	dimg_buf_free(&p->extra);
	free(p->seg);
}

/* One bzip2 stream of at most max bytes: it states no size, so the buffer
 * grows with what it really holds. */
static int bsc_stream_bzip2(const uint8_t *p, uint64_t len, uint64_t max, struct dimg_buf *out)
{
	struct dimg_bsd_in s;
	int r = dimg_bsd_in_open(&s, DIMG_BSD_BZIP2, p, (size_t)len);

	if (r == 0)
		r = dimg_bsd_in_all(&s, max, out);
	dimg_bsd_in_free(&s);
	return r;
}

/* One stream of at most max bytes. A zstd one must be exactly one frame
 * stating its content size, decoded in one call into a buffer of that size
 * (no window buffer, no copies). */
static int bsc_stream(uint8_t method, const uint8_t *p, uint64_t len, uint64_t max,
                      struct dimg_buf *out)
{
	unsigned long long stated;
	size_t n;
	int r;

	if (method == DIMG_BSD_BZIP2)
		return bsc_stream_bzip2(p, len, max, out);
	if (len < 4 || le32dec(p) != ZSTD_MAGICNUMBER)
		return -EBADMSG;
	stated = ZSTD_getFrameContentSize(p, (size_t)len);
	if (stated == ZSTD_CONTENTSIZE_ERROR || stated == ZSTD_CONTENTSIZE_UNKNOWN || stated > max)
		return -EBADMSG;
	/* No real frame expands more than 32768 times (docs/patch-format.md,
	 * zstdref): a short hostile frame cannot make us reserve a huge buffer. */
	if (stated / 32768 > len)
		return -EBADMSG;
	if (ZSTD_findFrameCompressedSize(p, (size_t)len) != len)
		return -EBADMSG;
	if ((r = dimg_buf_reserve(out, (size_t)stated)) < 0)
		return r;
	n = ZSTD_decompress(out->data, (size_t)stated, p, (size_t)len);
	if (ZSTD_isError(n))
		return dimg_zstd_derr(n);
	if (n != stated)
		return -EBADMSG;
	out->len = n;
	return 0;
}

/* The varint at *pos of the control stream (varint-internal.h rules). */
static int bsc_varint(const struct dimg_buf *b, size_t *pos, uint64_t *v)
{
	if (*pos >= b->len)
		return -EBADMSG;
	const uint8_t *p = b->data + *pos;
	int r = dimg_varint_get(&p, b->data + b->len, v);
	*pos = (size_t)(p - b->data);
	return r;
}

static int bsc_push(struct bsc_patch *p, uint64_t npos, uint64_t len, uint64_t opos, uint64_t dpos)
{
	if (len == 0)
		return 0;
	if (p->nseg == p->cap) {
		size_t ncap = p->cap ? p->cap * 2 : 64;
		struct bsc_seg *v = realloc(p->seg, ncap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->seg = v;
		p->cap = ncap;
	}
	p->seg[p->nseg++] = (struct bsc_seg){npos, len, opos, dpos};
	return 0;
}

/* Reads one record and checks it exactly as apply does. */
static int bsc_record(struct bsc_patch *p, size_t *cpos, uint64_t *cursor, uint64_t *npos,
                      uint64_t *dpos, uint64_t *xpos)
{
	uint64_t zz, diff, extra, seek, left = p->newsize - *npos;
	int r = bsc_varint(&p->ctrl, cpos, &zz);

	if (!r)
		r = bsc_varint(&p->ctrl, cpos, &diff);
	if (!r)
		r = bsc_varint(&p->ctrl, cpos, &extra);
	if (r < 0)
		return r;
	if (diff == 0 && extra == 0)
		return -EBADMSG;
	seek = (zz >> 1) ^ (0 - (zz & 1));
	if (seek >> 63 ? 0 - seek > *cursor : seek > p->oldsize - *cursor)
		return -EOVERFLOW;
	*cursor += seek;
	if (diff > left || extra > left - diff || diff > p->oldsize - *cursor)
		return -EOVERFLOW;
	if (diff > p->diff.len - *dpos || extra > p->extra.len - *xpos)
		return -EBADMSG;
	r = bsc_push(p, *npos, diff, *cursor, *dpos);
	if (!r)
		r = bsc_push(p, *npos + diff, extra, BSC_EXTRA, *xpos);
	*cursor += diff;
	*dpos += diff;
	*xpos += extra;
	*npos += diff + extra;
	return r;
}

/* Decodes a whole patch into segments, with every check of apply. */
static int bsc_decode(struct bsc_patch *p, const uint8_t *blob, size_t len)
{
	uint64_t zlen[3], cursor = 0, npos = 0, dpos = 0, xpos = 0;
	uint8_t m[3];
	size_t cpos = 0;
	const uint8_t *s = blob + 64;
	int r = dimg_bsd_header(blob, len, &p->oldsize, &p->newsize, m, zlen);

	if (r < 0)
		return r;
	if (p->newsize > UINT64_MAX / 30)
		return -EBADMSG;
	if ((r = bsc_stream(m[0], s, zlen[0], 30 * p->newsize, &p->ctrl)) < 0 ||
	    (r = bsc_stream(m[1], s + zlen[0], zlen[1], p->newsize, &p->diff)) < 0 ||
	    (r = bsc_stream(m[2], s + zlen[0] + zlen[1], zlen[2], p->newsize, &p->extra)) < 0)
		return r;
	if (p->diff.len + p->extra.len != p->newsize)
		return -EBADMSG;
	while (npos < p->newsize)
		if ((r = bsc_record(p, &cpos, &cursor, &npos, &dpos, &xpos)) < 0)
			return r;
	return cpos == p->ctrl.len ? 0 : -EBADMSG;
}

/* The composed patch being built: records are merged while contiguous. */
struct bsc_out {
	struct dimg_buf ctrl, diff, extra;
	uint64_t cursor; /* old position after the open record */
	uint64_t seek, ndiff, nextra;
	int open;
};

static int bsc_flush(struct bsc_out *o)
{
	int r = 0;

	if (!o->open)
		return 0;
	r = dimg_varint_put(&o->ctrl, (o->seek << 1) ^ (uint64_t)((int64_t)o->seek >> 63));
	if (!r)
		r = dimg_varint_put(&o->ctrl, o->ndiff);
	if (!r)
		r = dimg_varint_put(&o->ctrl, o->nextra);
	o->open = 0;
	return r;
}

/* n new bytes equal to old[opos..] + a[..] + b[..] (b may be NULL). */
static int bsc_emit_diff(struct bsc_out *o, uint64_t opos, const uint8_t *a, const uint8_t *b,
                         size_t n)
{
	int r = 0;

	if (!(o->open && o->nextra == 0 && opos == o->cursor)) {
		r = bsc_flush(o);
		o->open = 1;
		o->seek = opos - o->cursor;
		o->ndiff = o->nextra = 0;
	}
	if (!r)
		r = dimg_buf_reserve(&o->diff, n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		o->diff.data[o->diff.len + i] = (uint8_t)(a[i] + (b ? b[i] : 0));
	o->diff.len += n;
	o->ndiff += n;
	o->cursor = opos + n;
	return 0;
}

/* n new bytes equal to a[..] + b[..] (b may be NULL), from the extra stream. */
static int bsc_emit_extra(struct bsc_out *o, const uint8_t *a, const uint8_t *b, size_t n)
{
	int r = dimg_buf_reserve(&o->extra, n);

	if (r < 0)
		return r;
	if (!o->open) {
		o->open = 1;
		o->seek = o->ndiff = o->nextra = 0;
	}
	for (size_t i = 0; i < n; i++)
		o->extra.data[o->extra.len + i] = (uint8_t)(a[i] + (b ? b[i] : 0));
	o->extra.len += n;
	o->nextra += n;
	return 0;
}

/* The first segment of p containing mid position pos. */
static size_t bsc_find(const struct bsc_patch *p, uint64_t pos)
{
	size_t lo = 0, hi = p->nseg;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->seg[mid].npos <= pos)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* new bytes = mid[mpos .. mpos+len) + bdiff, mid expressed through a. */
static int bsc_map(struct bsc_out *o, const struct bsc_patch *a, uint64_t mpos, uint64_t len,
                   const uint8_t *bdiff)
{
	size_t k = bsc_find(a, mpos);
	int r = 0;

	while (len > 0 && r == 0) {
		const struct bsc_seg *s = &a->seg[k++];
		uint64_t off = mpos - s->npos, n = s->len - off;

		if (n > len)
			n = len;
		if (s->opos == BSC_EXTRA)
			r = bsc_emit_extra(o, a->extra.data + s->dpos + off, bdiff, (size_t)n);
		else
			r = bsc_emit_diff(o, s->opos + off, a->diff.data + s->dpos + off, bdiff,
			                  (size_t)n);
		mpos += n;
		len -= n;
		bdiff += n;
	}
	return r;
}

static int bsc_compose(struct bsc_out *o, const struct bsc_patch *a, const struct bsc_patch *b)
{
	int r = 0;

	for (size_t i = 0; i < b->nseg && r == 0; i++) {
		const struct bsc_seg *s = &b->seg[i];

		if (s->opos == BSC_EXTRA)
			r = bsc_emit_extra(o, b->extra.data + s->dpos, NULL, (size_t)s->len);
		else
			r = bsc_map(o, a, s->opos, s->len, b->diff.data + s->dpos);
	}
	return r ? r : bsc_flush(o);
}

int dimg_bsdiff_compose(const uint8_t *ab, size_t ablen, const uint8_t *bc, size_t bclen, int level,
                        struct dimg_buf *out)
{
	struct bsc_patch a = {0}, b = {0};
	struct bsc_out o = {0};
	int r = bsc_decode(&a, ab, ablen);

	if (r == 0)
		r = bsc_decode(&b, bc, bclen);
	if (r == 0 && b.oldsize != a.newsize)
		r = -EXDEV;
	/* Composed streams are at most b's new size together. */
	if (r == 0 && ((r = dimg_buf_reserve(&o.diff, b.diff.len)) < 0 ||
	               (r = dimg_buf_reserve(&o.extra, b.extra.len)) < 0))
		r = -ENOMEM;
	if (r == 0)
		r = bsc_compose(&o, &a, &b);
	if (r == 0)
		r = dimg_bsd_pack(a.oldsize, b.newsize, &o.ctrl, &o.diff, &o.extra, level, out);
	bsc_patch_free(&a);
	bsc_patch_free(&b);
	dimg_buf_free(&o.ctrl);
	dimg_buf_free(&o.diff);
	dimg_buf_free(&o.extra);
	return r;
}

int dimg_bsdiff_repack(const uint8_t *patch, size_t len, int level, struct dimg_buf *out)
{
	struct bsc_patch p = {0};
	int r = bsc_decode(&p, patch, len);

	if (r == 0)
		r = dimg_bsd_pack(p.oldsize, p.newsize, &p.ctrl, &p.diff, &p.extra, level, out);
	bsc_patch_free(&p);
	return r;
}
