/* The gzip-recompress codec (codec 3), decoding side: the gzip member
 * parser and apply. The new gzip file is rebuilt by patching the old
 * file's decompressed content and deflating the result with the zlib
 * parameters the blob records; see docs/patch-format.md. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "dimg/codec.h"
#include "endian-internal.h"
#include "gzre-internal.h"
#include "buf-internal.h"
#include "varint-internal.h"

#define GZ_CHUNK (64u * 1024u)

#define GZ_FHCRC    0x02u
#define GZ_FEXTRA   0x04u
#define GZ_FNAME    0x08u
#define GZ_FCOMMENT 0x10u

/* Length of the NUL-terminated field at p (NUL included), or 0 if none. */
static size_t gz_cstr(const uint8_t *p, size_t n)
{
	const uint8_t *z = memchr(p, 0, n);
	return z ? (size_t)(z - p) + 1 : 0;
}

/* RFC 1952 member header: ID1 ID2 CM FLG MTIME(4) XFL OS, then FEXTRA,
 * FNAME, FCOMMENT, FHCRC as FLG says. The header CRC is not checked: its
 * bytes are kept as found either way. */
static int gz_parse_header(const uint8_t *p, size_t n, uint32_t *hlen)
{
	size_t pos = 10, k;
	if (n < 10 || p[0] != 0x1f || p[1] != 0x8b || p[2] != 8 || (p[3] & 0xe0))
		return -ENODATA;
	if (p[3] & GZ_FEXTRA) {
		if (n - pos < 2 || (n - pos - 2) < le16dec(p + pos))
			return -ENODATA;
		pos += 2 + (size_t)le16dec(p + pos);
	}
	for (uint8_t f = GZ_FNAME; f <= GZ_FCOMMENT; f <<= 1) {
		if (!(p[3] & f))
			continue;
		if ((k = gz_cstr(p + pos, n - pos)) == 0)
			return -ENODATA;
		pos += k;
	}
	if ((p[3] & GZ_FHCRC) && (pos += 2) > n)
		return -ENODATA;
	if (pos > GZRE_MAX_GZHDR)
		return -ENODATA;
	*hlen = (uint32_t)pos;
	return 0;
}

/* Inflates the raw deflate stream at p into f->raw; *used is its length. */
static int gz_inflate(struct gzre_file *f, const uint8_t *p, size_t n, size_t *used)
{
	z_stream z = {0};
	int zr = Z_OK, r = 0;
	if (inflateInit2(&z, -15) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)p;
	z.avail_in = n > UINT32_MAX ? UINT32_MAX : (uInt)n;
	while (zr != Z_STREAM_END && !r) {
		if ((r = dimg_buf_reserve(&f->raw, GZ_CHUNK)) < 0)
			break;
		z.next_out = f->raw.data + f->raw.len;
		z.avail_out = GZ_CHUNK;
		zr = inflate(&z, Z_NO_FLUSH);
		f->raw.len += GZ_CHUNK - z.avail_out;
		if (zr == Z_MEM_ERROR)
			r = -ENOMEM;
		else if (zr != Z_OK && zr != Z_STREAM_END)
			r = -ENODATA; /* also Z_BUF_ERROR: the input ended early */
		else if (f->raw.len > GZRE_MAX_RAW)
			r = -ENODATA;
	}
	*used = (size_t)(z.next_in - p);
	inflateEnd(&z);
	return r;
}

/* One member at p: header, deflate stream, trailer (CRC-32, ISIZE). */
static int gz_parse_member(struct gzre_file *f, const uint8_t *p, size_t n, size_t *used)
{
	struct gzre_member m = {.hdr = p};
	size_t start = f->raw.len, dlen;
	int r = gz_parse_header(p, n, &m.hdrlen);
	if (r < 0)
		return r;
	m.def = p + m.hdrlen;
	if ((r = gz_inflate(f, m.def, n - m.hdrlen, &dlen)) < 0)
		return r;
	m.deflen = dlen;
	m.rawlen = f->raw.len - start;
	if (n - m.hdrlen - dlen < 8)
		return -ENODATA;
	const uint8_t *t = m.def + dlen;
	uLong crc = crc32(0L, Z_NULL, 0);
	for (uint64_t o = 0; o < m.rawlen; o += GZ_CHUNK) {
		uint64_t k = m.rawlen - o < GZ_CHUNK ? m.rawlen - o : GZ_CHUNK;
		crc = crc32(crc, f->raw.data + start + o, (uInt)k);
	}
	if (le32dec(t) != (uint32_t)crc || le32dec(t + 4) != (uint32_t)m.rawlen)
		return -ENODATA;
	if (f->nm == GZRE_MAX_MEMBERS)
		return -ENODATA;
	struct gzre_member *v = realloc(f->m, (f->nm + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	f->m = v;
	f->m[f->nm++] = m;
	*used = m.hdrlen + dlen + 8;
	return 0;
}

int gzre_parse(struct gzre_file *f, const uint8_t *buf, size_t len)
{
	size_t pos = 0, used;
	memset(f, 0, sizeof(*f));
	for (;;) {
		size_t keep = f->raw.len;
		int r = gz_parse_member(f, buf + pos, len - pos, &used);
		if (r == -ENODATA && f->nm > 0) {
			f->raw.len = keep; /* a member that does not parse is tail */
			break;
		}
		if (r < 0) {
			gzre_file_free(f);
			return r;
		}
		pos += used;
		if (pos == len)
			break;
	}
	f->tail = buf + pos;
	f->taillen = len - pos;
	return 0;
}

void gzre_file_free(struct gzre_file *f)
{
	for (uint32_t i = 0; f->m && i < f->nm; i++)
		free(f->m[i].ends);
	free(f->m);
	dimg_buf_free(&f->raw);
	memset(f, 0, sizeof(*f));
}

int gzre_params_valid(const struct gzre_params *p)
{
	/* Level 0 (stored blocks) depends on how input is chunked, and raw
	 * deflate turns window bits 8 into 9: neither can be reproduced. */
	return p->level >= 1 && p->level <= 9 && p->wbits >= 9 && p->wbits <= 15 &&
	       p->memlevel >= 1 && p->memlevel <= 9 && p->strategy <= Z_FIXED;
}

int gzre_block_ends(struct gzre_member *m)
{
	uint8_t out[GZ_CHUNK];
	z_stream z = {0};
	int zr = Z_OK, r = 0;
	if (inflateInit2(&z, -15) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)m->def;
	z.avail_in = (uInt)m->deflen;
	while (zr != Z_STREAM_END && r == 0) {
		z.next_out = out;
		z.avail_out = sizeof(out);
		zr = inflate(&z, Z_BLOCK);
		if (zr != Z_OK && zr != Z_STREAM_END) {
			r = zr == Z_MEM_ERROR ? -ENOMEM : -ENODATA;
			break;
		}
		/* 128: stopped right after an end-of-block code; 64: that
		 * block was the last one. */
		if (zr == Z_STREAM_END || (z.data_type & 192) != 128 || z.total_out == 0)
			continue;
		if (m->nends && m->ends[m->nends - 1] >= z.total_out) {
			r = -ENODATA;
			break;
		}
		uint64_t *v = realloc(m->ends, (m->nends + 1) * sizeof(*v));
		if (!v) {
			r = -ENOMEM;
			break;
		}
		m->ends = v;
		m->ends[m->nends++] = z.total_out;
	}
	inflateEnd(&z);
	if (r == 0 && m->nends && m->ends[m->nends - 1] >= m->rawlen)
		r = -ENODATA;
	return r;
}

/* ---- the deflater ---- */

int gzre_def_init(struct gzre_def *d, const struct gzre_member *m, dimg_write_fn fn, void *ctx)
{
	memset(d, 0, sizeof(*d));
	d->m = m;
	d->fn = fn;
	d->ctx = ctx;
	d->crc = crc32(0L, Z_NULL, 0);
	if (!(d->buf = malloc(GZ_CHUNK)))
		return -ENOMEM;
	if (deflateInit2(&d->z, m->p.level, Z_DEFLATED, -(int)m->p.wbits, m->p.memlevel,
	                 m->p.strategy) != Z_OK) {
		free(d->buf);
		d->buf = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Runs deflate over what is in z's input, passing all output on. */
static int gzre_def_run(struct gzre_def *d, int flush)
{
	int zr;
	do {
		d->z.next_out = d->buf;
		d->z.avail_out = GZ_CHUNK;
		zr = deflate(&d->z, flush);
		if (zr == Z_STREAM_ERROR)
			return -EIO;
		size_t have = GZ_CHUNK - d->z.avail_out;
		int r = have ? d->fn(d->ctx, d->buf, have) : 0;
		if (r < 0)
			return r;
	} while (d->z.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
	return 0;
}

int gzre_def_feed(struct gzre_def *d, const uint8_t *p, size_t n)
{
	if (n > d->m->rawlen - d->pos)
		return -EBADMSG;
	while (n > 0) {
		uint64_t stop = d->next < d->m->nends ? d->m->ends[d->next] : d->m->rawlen;
		size_t k = n < GZ_CHUNK ? n : GZ_CHUNK;
		int flush = Z_NO_FLUSH, r;
		if (k >= stop - d->pos) {
			k = (size_t)(stop - d->pos);
			flush = d->next < d->m->nends ? Z_BLOCK : Z_NO_FLUSH;
		}
		d->crc = crc32(d->crc, p, (uInt)k);
		d->z.next_in = (Bytef *)p;
		d->z.avail_in = (uInt)k;
		if ((r = gzre_def_run(d, flush)) < 0)
			return r;
		d->pos += k;
		if (flush == Z_BLOCK)
			d->next++;
		p += k;
		n -= k;
	}
	return 0;
}

int gzre_def_finish(struct gzre_def *d)
{
	if (d->pos != d->m->rawlen)
		return -EBADMSG;
	d->z.avail_in = 0;
	return gzre_def_run(d, Z_FINISH);
}

void gzre_def_free(struct gzre_def *d)
{
	if (d->buf)
		deflateEnd(&d->z);
	free(d->buf);
	d->buf = NULL;
}

/* ---- apply ---- */

/* The parsed blob header. Member headers point into the blob. */
struct gzre_blob {
	uint8_t inner;
	uint32_t nm;
	uint64_t oldraw, newraw;
	const uint8_t *tail, *in;
	uint64_t taillen, blocklen, inlen;
	struct gzre_member *m;
	uint64_t *ends; /* every member's block ends, m[i].ends point in here */
};

/* The block table: per member, nends gaps (each >= 1) from the previous
 * end; every end lies strictly inside the member's content. */
static int gzre_blob_ends(struct gzre_blob *b, const uint8_t *p)
{
	const uint8_t *end = p + b->blocklen;
	uint64_t total = 0;
	for (uint32_t i = 0; i < b->nm; i++)
		total += b->m[i].nends;
	if (total > b->blocklen)
		return -EBADMSG; /* each gap takes at least one byte */
	if (total && !(b->ends = calloc(total, sizeof(*b->ends))))
		return -ENOMEM;
	uint64_t *e = b->ends;
	for (uint32_t i = 0; i < b->nm; i++) {
		struct gzre_member *m = &b->m[i];
		uint64_t at = 0, gap;
		m->ends = e;
		for (uint32_t k = 0; k < m->nends; k++) {
			int r = dimg_varint_get(&p, end, &gap);
			if (r < 0)
				return r;
			if (gap == 0 || gap >= m->rawlen - at)
				return -EBADMSG;
			at += gap;
			*e++ = at;
		}
	}
	return p == end ? 0 : -EBADMSG;
}

/* A cursor over the blob's varint-coded header. */
struct gz_cur {
	const uint8_t *p, *end;
};

static int gz_cur_u64(struct gz_cur *c, uint64_t max, uint64_t *v)
{
	int r = dimg_varint_get(&c->p, c->end, v);
	return r < 0 ? r : *v > max ? -EBADMSG : 0;
}

static int gz_cur_u32(struct gz_cur *c, uint32_t max, uint32_t *v)
{
	uint64_t x = 0;
	int r = gz_cur_u64(c, max, &x);
	*v = (uint32_t)x;
	return r;
}

/* Member records: four parameter bytes, then header length, content
 * length and number of block ends as varints. */
static int gzre_blob_record(struct gz_cur *c, struct gzre_member *m)
{
	int r;
	if (c->end - c->p < 4)
		return -EBADMSG;
	m->p = (struct gzre_params){c->p[0], c->p[1], c->p[2], c->p[3]};
	c->p += 4;
	if (!gzre_params_valid(&m->p))
		return -EBADMSG;
	if ((r = gz_cur_u32(c, GZRE_MAX_GZHDR, &m->hdrlen)) < 0 ||
	    (r = gz_cur_u64(c, GZRE_MAX_RAW, &m->rawlen)) < 0 ||
	    (r = gz_cur_u32(c, UINT32_MAX, &m->nends)) < 0)
		return r;
	return m->hdrlen < 10 ? -EBADMSG : 0;
}

/* The member headers, block table, tail and inner payload follow the
 * records back to back; the inner payload is the rest of the blob. */
static int gzre_blob_sections(struct gzre_blob *b, struct gz_cur *c)
{
	uint64_t sum = 0;
	for (uint32_t i = 0; i < b->nm; i++) {
		struct gzre_member *m = &b->m[i];
		int r = gzre_blob_record(c, m);
		if (r < 0)
			return r;
		if (m->rawlen > b->newraw - sum)
			return -EBADMSG;
		sum += m->rawlen;
	}
	if (sum != b->newraw)
		return -EBADMSG;
	for (uint32_t i = 0; i < b->nm; i++) {
		if ((size_t)(c->end - c->p) < b->m[i].hdrlen)
			return -EBADMSG;
		b->m[i].hdr = c->p;
		c->p += b->m[i].hdrlen;
	}
	size_t left = (size_t)(c->end - c->p);
	if (b->blocklen > left || b->taillen > left - b->blocklen)
		return -EBADMSG;
	int r = gzre_blob_ends(b, c->p);
	b->tail = c->p + b->blocklen;
	b->in = b->tail + b->taillen;
	b->inlen = left - b->blocklen - b->taillen;
	return r;
}

static void gzre_blob_free(struct gzre_blob *b)
{
	free(b->ends);
	free(b->m);
}

static int gzre_blob_parse(struct gzre_blob *b, const uint8_t *p, size_t len)
{
	struct gz_cur c = {p + 2, p + len};
	int r;
	memset(b, 0, sizeof(*b));
	if (len < 2)
		return -EBADMSG;
	if (p[0] != GZRE_VERSION)
		return -ENOTSUP;
	b->inner = p[1];
	if (b->inner > DIMG_CODEC_ZSTDREF)
		return -EBADMSG;
	if ((r = gz_cur_u32(&c, GZRE_MAX_MEMBERS, &b->nm)) < 0 ||
	    (r = gz_cur_u64(&c, GZRE_MAX_RAW, &b->oldraw)) < 0 ||
	    (r = gz_cur_u64(&c, GZRE_MAX_RAW, &b->newraw)) < 0 ||
	    (r = gz_cur_u64(&c, UINT64_MAX, &b->taillen)) < 0 ||
	    (r = gz_cur_u64(&c, UINT64_MAX, &b->blocklen)) < 0)
		return r;
	if (b->nm == 0 || (b->inner == GZRE_INNER_ZSTD && b->oldraw))
		return -EBADMSG;
	/* Each record takes at least 7 bytes: no allocation past the blob. */
	if ((size_t)(c.end - c.p) / 7 < b->nm)
		return -EBADMSG;
	if (!(b->m = calloc(b->nm, sizeof(*b->m))))
		return -ENOMEM;
	return gzre_blob_sections(b, &c);
}

/* The sink the inner payload writes the new content to: each member's
 * share goes through a deflater with that member's parameters; header,
 * deflate stream and trailer go on to the real sink. */
struct gz_out {
	const struct gzre_blob *b;
	dimg_write_fn sink;
	void *ctx;
	uint32_t cur;
	int open;
	struct gzre_def d;
	uint64_t total; /* bytes passed to sink */
};

static int gz_emit(void *ctx, const void *p, size_t n)
{
	struct gz_out *o = ctx;
	o->total += n;
	return n ? o->sink(o->ctx, p, n) : 0;
}

static int gz_out_begin(struct gz_out *o)
{
	const struct gzre_member *m = &o->b->m[o->cur];
	int r = gz_emit(o, m->hdr, m->hdrlen);
	if (r == 0)
		r = gzre_def_init(&o->d, m, gz_emit, o);
	o->open = r == 0;
	return r;
}

static int gz_out_finish(struct gz_out *o)
{
	uint8_t t[8];
	int r = gzre_def_finish(&o->d);
	le32enc(t, (uint32_t)o->d.crc);
	le32enc(t + 4, (uint32_t)o->d.m->rawlen);
	gzre_def_free(&o->d);
	o->open = 0;
	o->cur++;
	return r < 0 ? r : gz_emit(o, t, 8);
}

/* Opens the next member and closes every member whose content is
 * complete (empty members included). */
static int gz_out_settle(struct gz_out *o)
{
	int r;
	while (o->cur < o->b->nm) {
		if (!o->open && (r = gz_out_begin(o)) < 0)
			return r;
		if (o->d.pos < o->d.m->rawlen)
			return 0;
		if ((r = gz_out_finish(o)) < 0)
			return r;
	}
	return 0;
}

static int gz_out_write(void *ctx, const void *p, size_t n)
{
	struct gz_out *o = ctx;
	const uint8_t *s = p;
	int r;
	while (n > 0) {
		if ((r = gz_out_settle(o)) < 0)
			return r;
		if (o->cur == o->b->nm)
			return -EBADMSG; /* more content than the members hold */
		uint64_t left = o->d.m->rawlen - o->d.pos;
		size_t k = n < left ? n : (size_t)left;
		if ((r = gzre_def_feed(&o->d, s, k)) < 0)
			return r;
		s += k;
		n -= k;
	}
	return gz_out_settle(o);
}

/* The old side's content: the blob says how long it must be. */
static int gzre_old_raw(const struct gzre_blob *b, const uint8_t *old, size_t oldlen,
                        struct gzre_file *of)
{
	memset(of, 0, sizeof(*of));
	if (b->inner == GZRE_INNER_ZSTD)
		return 0;
	int r = gzre_parse(of, old, oldlen);
	if (r == -ENODATA)
		return -EXDEV;
	if (r < 0)
		return r;
	return of->raw.len == b->oldraw ? 0 : -EXDEV;
}

static int gzre_inner(const struct gzre_blob *b, const struct gzre_file *of, struct gz_out *o)
{
	uint64_t n = 0;
	if (b->inner == GZRE_INNER_ZSTD)
		return dimg_zstd_decode(b->in, b->inlen, gz_out_write, o, &n);
	return dimg_patch_apply(b->inner, of->raw.data, of->raw.len, b->in, b->inlen, gz_out_write,
	                        o, &n);
}

int dimg_gzre_decode(const uint8_t *old, size_t oldlen, const uint8_t *patch, size_t patchlen,
                     dimg_write_fn sink, void *sink_ctx, uint64_t *newlen)
{
	struct gzre_blob b;
	struct gzre_file of = {0};
	struct gz_out o = {.b = &b, .sink = sink, .ctx = sink_ctx};
	int r = gzre_blob_parse(&b, patch, patchlen);
	if (r == 0)
		r = gzre_old_raw(&b, old, oldlen, &of);
	if (r == 0)
		r = gz_out_settle(&o);
	if (r == 0)
		r = gzre_inner(&b, &of, &o);
	if (r == 0 && o.cur != b.nm)
		r = -EBADMSG; /* less content than the members hold */
	if (r == 0 && b.taillen)
		r = gz_emit(&o, b.tail, b.taillen);
	if (o.open)
		gzre_def_free(&o.d);
	gzre_blob_free(&b);
	gzre_file_free(&of);
	if (r == 0 && newlen)
		*newlen = o.total;
	return r;
}

/* ---- the encoder's check ---- */

static int gzre_member_same(const struct gzre_member *a, const struct gzre_member *b)
{
	if (a->hdrlen != b->hdrlen || memcmp(a->hdr, b->hdr, a->hdrlen) != 0 ||
	    a->rawlen != b->rawlen || a->nends != b->nends ||
	    memcmp(&a->p, &b->p, sizeof(a->p)) != 0)
		return 0;
	for (uint32_t k = 0; k < a->nends; k++)
		if (a->ends[k] != b->ends[k])
			return 0;
	return 1;
}

int gzre_cmp_write(void *ctx, const void *p, size_t n)
{
	struct gzre_cmp *c = ctx;
	if (n > c->len - c->pos || memcmp(c->want + c->pos, p, n) != 0)
		return -EBADMSG;
	c->pos += n;
	return 0;
}

int gzre_check_blob(const uint8_t *blob, size_t len, const struct gzre_file *of,
                    const struct gzre_file *nf)
{
	struct gzre_blob b;
	struct gzre_cmp c = {nf->raw.data, nf->raw.len, 0};
	uint64_t n = 0;
	int r = gzre_blob_parse(&b, blob, len);
	if (r == 0 && (b.nm != nf->nm || b.taillen != nf->taillen ||
	               memcmp(b.tail, nf->tail, nf->taillen) != 0 ||
	               b.oldraw != (b.inner == GZRE_INNER_ZSTD ? 0 : of->raw.len)))
		r = -EBADMSG;
	for (uint32_t i = 0; r == 0 && i < b.nm; i++)
		if (!gzre_member_same(&b.m[i], &nf->m[i]))
			r = -EBADMSG;
	if (r == 0 && b.inner == GZRE_INNER_ZSTD)
		r = dimg_zstd_decode(b.in, b.inlen, gzre_cmp_write, &c, &n);
	else if (r == 0)
		r = dimg_patch_apply(b.inner, of->raw.data, of->raw.len, b.in, b.inlen,
		                     gzre_cmp_write, &c, &n);
	if (r == 0 && c.pos != c.len)
		r = -EBADMSG;
	gzre_blob_free(&b);
	return r;
}

/* ---- composition (cdimg merge) ---- */

/* The whole content a blob whose inner payload is a zstd frame holds:
 * exactly new_raw bytes. */
static int gzc_frame_content(const struct gzre_blob *b, struct dimg_buf *out)
{
	struct dimg_capped c = {out, b->newraw};
	int r = dimg_zstd_decode(b->in, b->inlen, dimg_write_capped, &c, NULL);
	return r == 0 && out->len != b->newraw ? -EBADMSG : r;
}

/* The composed inner payload: its kind and the old content length it
 * needs. a is old -> mid, b is mid -> new. */
static int gzc_inner(const struct gzre_blob *a, const struct gzre_blob *b, int level,
                     struct dimg_buf *inner, uint8_t *kind, uint64_t *oldraw)
{
	static const uint8_t none[1];
	struct dimg_buf mid = {0}, nw = {0};
	struct dimg_capped cn = {&nw, b->newraw};
	int r;
	*kind = GZRE_INNER_ZSTD;
	*oldraw = 0;
	if (b->inner == GZRE_INNER_ZSTD) /* new content whole: no old needed */
		return dimg_buf_append(inner, b->in, b->inlen);
	if (a->inner == DIMG_CODEC_BSDIFF && b->inner == DIMG_CODEC_BSDIFF) {
		*kind = DIMG_CODEC_BSDIFF;
		*oldraw = a->oldraw;
		return dimg_bsdiff_compose(a->in, a->inlen, b->in, b->inlen, level, inner);
	}
	if (a->inner != GZRE_INNER_ZSTD)
		return -ENOTSUP; /* a zstdref inner needs the old content */
	r = gzc_frame_content(a, &mid);
	if (!r)
		r = dimg_patch_apply(b->inner, mid.len ? mid.data : none, mid.len, b->in, b->inlen,
		                     dimg_write_capped, &cn, NULL);
	if (!r && nw.len != b->newraw)
		r = -EBADMSG;
	/* A fold's fast level may be negative (bsdiff streams take it); a
	 * plain frame needs 1..22. */
	if (!r)
		r = dimg_zstd_encode(nw.len ? nw.data : none, nw.len, level < 1 ? 1 : level, inner);
	dimg_buf_free(&mid);
	dimg_buf_free(&nw);
	return r;
}

/* bc's blob with another inner kind, old content length and inner payload:
 * the member count is followed by old_raw; what follows old_raw up to the
 * inner payload is copied. */
static int gzc_write(const uint8_t *bc, const struct gzre_blob *b, uint8_t kind, uint64_t oldraw,
                     const struct dimg_buf *inner, struct dimg_buf *out)
{
	const uint8_t *p = bc + 2, *end = b->in, *nm_end;
	uint64_t v;
	uint8_t head[2] = {GZRE_VERSION, kind};
	int r = dimg_varint_get(&p, end, &v);
	nm_end = p;
	if (!r)
		r = dimg_varint_get(&p, end, &v); /* bc's old_raw, replaced */
	if (!r)
		r = dimg_buf_append(out, head, 2);
	if (!r)
		r = dimg_buf_append(out, bc + 2, (size_t)(nm_end - (bc + 2)));
	if (!r)
		r = dimg_varint_put(out, oldraw);
	if (!r)
		r = dimg_buf_append(out, p, (size_t)(end - p));
	if (!r)
		r = dimg_buf_append(out, inner->data, inner->len);
	return r;
}

int dimg_gzre_compose(const uint8_t *ab, size_t ablen, const uint8_t *bc, size_t bclen, int level,
                      struct dimg_buf *out)
{
	struct gzre_blob a = {0}, b = {0};
	struct dimg_buf inner = {0};
	uint8_t kind = 0;
	uint64_t oldraw = 0;
	int r = gzre_blob_parse(&a, ab, ablen);
	if (!r)
		r = gzre_blob_parse(&b, bc, bclen);
	if (!r && b.inner != GZRE_INNER_ZSTD && a.newraw != b.oldraw)
		r = -EXDEV;
	if (!r)
		r = gzc_inner(&a, &b, level, &inner, &kind, &oldraw);
	if (!r)
		r = gzc_write(bc, &b, kind, oldraw, &inner, out);
	gzre_blob_free(&a);
	gzre_blob_free(&b);
	dimg_buf_free(&inner);
	return r;
}

int dimg_gzre_repack(const uint8_t *p, size_t len, int level, struct dimg_buf *out)
{
	static const uint8_t none[1];
	struct gzre_blob b = {0};
	struct dimg_buf inner = {0}, raw = {0};
	int r = gzre_blob_parse(&b, p, len);
	if (!r && b.inner == DIMG_CODEC_BSDIFF)
		r = dimg_bsdiff_repack(b.in, b.inlen, level, &inner);
	else if (!r && b.inner == GZRE_INNER_ZSTD) {
		r = gzc_frame_content(&b, &raw);
		if (!r)
			r = dimg_zstd_encode(raw.len ? raw.data : none, raw.len, level, &inner);
	} else if (!r)
		r = dimg_buf_append(&inner, b.in, b.inlen);
	if (!r)
		r = gzc_write(p, &b, b.inner, b.oldraw, &inner, out);
	gzre_blob_free(&b);
	dimg_buf_free(&inner);
	dimg_buf_free(&raw);
	return r;
}
