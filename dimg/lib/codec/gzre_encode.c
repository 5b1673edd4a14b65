/* The gzip-recompress codec (codec 3), encoding side: find zlib parameters
 * that recreate each member of the new gzip file exactly, then store the
 * member headers, those parameters and a patch between the decompressed
 * contents. The search is bounded by work, not wall time, so the same
 * inputs always give the same blob. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "dimg/codec.h"
#include "endian-internal.h"
#include "gzre-internal.h"
#include "varint-internal.h"

#define GZE_CHUNK (64u * 1024u)
/* zstdref on the decompressed contents only while both fit this. */
#define GZE_ZSTDREF_MAX ((size_t)32 << 20)
/* bsdiff only on contents this large: below it zstdref wins on text. */
#define GZE_BSDIFF_MIN ((size_t)128 << 10)

/* Deflate bytes the search may feed per file: a few full tries plus a
 * fixed allowance. Wrong parameters usually fail at the first block
 * (some tens of KiB), so every candidate gets a chance on most files. */
static uint64_t gze_budget(uint64_t rawlen)
{
	return 4 * rawlen + ((uint64_t)4 << 20);
}

/* Deflates the member's content with its current parameters and block
 * ends, comparing as the output comes: 1 exact match, 0 not, -ETIME when
 * the budget runs out, -ENOMEM. */
static int gze_try(const struct gzre_member *m, const uint8_t *raw, uint64_t *budget)
{
	struct gzre_cmp c = {m->def, m->deflen, 0};
	struct gzre_def d;
	int r = gzre_def_init(&d, m, gzre_cmp_write, &c);
	for (uint64_t in = 0; r == 0 && in < m->rawlen; in += GZE_CHUNK) {
		size_t k = m->rawlen - in < GZE_CHUNK ? (size_t)(m->rawlen - in) : GZE_CHUNK;
		if (*budget < k)
			r = -ETIME;
		else {
			*budget -= k;
			r = gzre_def_feed(&d, raw + in, k);
		}
	}
	if (r == 0)
		r = gzre_def_finish(&d);
	gzre_def_free(&d);
	if (r == -EBADMSG)
		return 0;
	return r == 0 ? c.pos == c.len : r;
}

/* Candidates, most likely first: the previous member's parameters, the
 * level the header's XFL byte hints at (2: best, 4: fastest, else 6),
 * then every level, each with memLevel 8 (zlib's default: Python, pigz)
 * and 9 (the block size of GNU gzip and busybox) — 9 first when block ends
 * are forced, as only gzip-made files need that. Window 15 and the default
 * strategy: what every common tool uses. */
static size_t gze_candidates(struct gzre_params *c, const struct gzre_params *prev, uint8_t xfl,
                             int forced)
{
	static const uint8_t levels[] = {9, 6, 1, 2, 3, 4, 5, 7, 8};
	uint8_t hint = xfl == 2 ? 9 : xfl == 4 ? 1 : 6;
	uint8_t mem[2] = {forced ? 9 : 8, forced ? 8 : 9};
	size_t n = 0;
	if (prev)
		c[n++] = *prev;
	for (int k = 0; k < 2; k++)
		c[n++] = (struct gzre_params){hint, 15, mem[k], Z_DEFAULT_STRATEGY};
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < sizeof(levels); i++)
			c[n++] = (struct gzre_params){levels[i], 15, mem[k], Z_DEFAULT_STRATEGY};
	return n;
}

static int gze_same(const struct gzre_params *a, const struct gzre_params *b)
{
	return a->level == b->level && a->wbits == b->wbits && a->memlevel == b->memlevel &&
	       a->strategy == b->strategy;
}

/* Tries candidates [from, to) on member m (content raw), with nends of
 * its block ends forced (0: zlib's own blocks), until one matches. */
static int gze_pass(struct gzre_member *m, const uint8_t *raw, const struct gzre_params *prev,
                    uint32_t nends, uint64_t *budget, size_t from, size_t to)
{
	struct gzre_params c[24];
	size_t n = gze_candidates(c, prev, m->hdr[8], nends > 0);
	int r = 0;
	m->nends = nends;
	for (size_t k = from; k < n && k < to && r == 0; k++) {
		int dup = 0;
		for (size_t j = 0; j < k; j++)
			dup |= gze_same(&c[j], &c[k]);
		if (dup)
			continue;
		m->p = c[k];
		r = gze_try(m, raw, budget);
	}
	return r;
}

/* Finds parameters for member m: the likely candidates first with zlib's
 * own block boundaries, then with the member's block ends forced (GNU
 * gzip closes blocks early on compressible text; zlib can be told to do
 * the same), then the other candidates both ways. Each way has its own
 * budget so that one's failures do not starve the other. 1 found, 0 not. */
static int gze_search_member(struct gzre_member *m, const uint8_t *raw,
                             const struct gzre_params *prev, uint64_t budget[2])
{
	size_t hints = prev ? 3 : 2;
	uint32_t nends = 0;
	int r = gze_pass(m, raw, prev, 0, &budget[0], 0, hints);
	if (r == 0 || r == -ETIME) {
		int e = gzre_block_ends(m);
		if (e < 0 && e != -ENODATA)
			return e;
		nends = e == 0 ? m->nends : 0;
	}
	if (r == 0 && nends)
		r = gze_pass(m, raw, prev, nends, &budget[1], 0, hints);
	if (r == 0)
		r = gze_pass(m, raw, prev, 0, &budget[0], hints, SIZE_MAX);
	if ((r == 0 || r == -ETIME) && nends)
		r = gze_pass(m, raw, prev, nends, &budget[1], hints, SIZE_MAX);
	return r == -ETIME ? 0 : r;
}

/* Finds parameters for every member; -ENODATA when some member has none. */
static int gze_search(struct gzre_file *f)
{
	const uint8_t *raw = f->raw.data;
	uint64_t budget[2] = {gze_budget(f->raw.len), gze_budget(f->raw.len)};
	for (uint32_t i = 0; i < f->nm; i++) {
		struct gzre_member *m = &f->m[i];
		int r = gze_search_member(m, raw, i ? &f->m[i - 1].p : NULL, budget);
		if (r < 0)
			return r;
		if (r != 1)
			return -ENODATA;
		raw += m->rawlen;
	}
	return 0;
}

/* Keeps cand in *best (codec id in *inner) when it is smaller or *best
 * is empty; frees the loser. Encoder errors other than size limits fail. */
static int gze_keep(int r, struct dimg_buf *cand, uint8_t codec, struct dimg_buf *best,
                    uint8_t *inner)
{
	if (r == 0 && (!best->len || cand->len < best->len)) {
		dimg_buf_free(best);
		*best = *cand;
		*inner = codec;
		memset(cand, 0, sizeof(*cand));
	}
	dimg_buf_free(cand);
	return r == -EFBIG || r == -ENOMEM ? 0 : r;
}

/* The inner payload: the smallest of, when the old file is gzip too, a
 * zstdref patch and (on contents past GZE_BSDIFF_MIN, where it can win,
 * or always when zstdref is not allowed) a bsdiff patch between the
 * decompressed contents, and a zstd frame of the new content. Most files are small man pages, where
 * a level-19 encode is mostly setup: the frame is skipped when a patch is under half of a fast one,
 * as the differ does for full copies. */
static int gze_inner(const struct gzre_file *of, const struct gzre_file *nf, int level,
                     unsigned allow, struct dimg_buf *best, uint8_t *inner)
{
	struct dimg_buf cand = {0};
	const uint8_t *o = of->raw.data, *n = nf->raw.data;
	size_t ol = of->raw.len, nl = nf->raw.len;
	int r = 0, fast = level < 3 ? level : 3;
	if (of->nm && (allow & DIMG_GZRE_INNER_ZSTDREF) && ol + nl <= GZE_ZSTDREF_MAX)
		r = gze_keep(
		    dimg_zstdref_encode(o, ol, n, nl, dimg_zstdref_level(level, ol, nl), &cand),
		    &cand, DIMG_CODEC_ZSTDREF, best, inner);
	if (!r && of->nm && (allow & DIMG_GZRE_INNER_BSDIFF) &&
	    (nl >= GZE_BSDIFF_MIN || !best->len || !(allow & DIMG_GZRE_INNER_ZSTDREF)))
		r = gze_keep(dimg_bsdiff(o, ol, n, nl, level, &cand), &cand, DIMG_CODEC_BSDIFF,
		             best, inner);
	if (r < 0)
		return r;
	if (best->len && fast != level) {
		if ((r = dimg_zstd_encode(n, nl, fast, &cand)) < 0)
			return r;
		int skip = best->len <= cand.len / 2;
		dimg_buf_free(&cand);
		if (skip)
			return 0;
	}
	r = dimg_zstd_encode(n, nl, level, &cand);
	return gze_keep(r, &cand, GZRE_INNER_ZSTD, best, inner);
}

/* Every member's block ends as gaps from the previous end. */
static int gze_blocks(struct dimg_buf *out, const struct gzre_file *nf)
{
	int r = 0;
	for (uint32_t i = 0; i < nf->nm && !r; i++)
		for (uint32_t k = 0; k < nf->m[i].nends && !r; k++)
			r = dimg_varint_put(out, nf->m[i].ends[k] - (k ? nf->m[i].ends[k - 1] : 0));
	return r;
}

static int gze_records(struct dimg_buf *out, const struct gzre_file *nf)
{
	int r = 0;
	for (uint32_t i = 0; i < nf->nm && !r; i++) {
		const struct gzre_member *m = &nf->m[i];
		uint8_t p[4] = {m->p.level, m->p.wbits, m->p.memlevel, m->p.strategy};
		r = dimg_buf_append(out, p, sizeof(p));
		if (!r)
			r = dimg_varint_put(out, m->hdrlen);
		if (!r)
			r = dimg_varint_put(out, m->rawlen);
		if (!r)
			r = dimg_varint_put(out, m->nends);
	}
	for (uint32_t i = 0; i < nf->nm && !r; i++)
		r = dimg_buf_append(out, nf->m[i].hdr, nf->m[i].hdrlen);
	return r;
}

/* The whole blob but the inner payload. */
static int gze_header(struct dimg_buf *out, const struct gzre_file *of, const struct gzre_file *nf,
                      uint8_t inner)
{
	uint8_t h[2] = {GZRE_VERSION, inner};
	struct dimg_buf blocks = {0};
	int r = gze_blocks(&blocks, nf);
	if (!r)
		r = dimg_buf_append(out, h, sizeof(h));
	if (!r)
		r = dimg_varint_put(out, nf->nm);
	if (!r)
		r = dimg_varint_put(out, inner == GZRE_INNER_ZSTD ? 0 : of->raw.len);
	if (!r)
		r = dimg_varint_put(out, nf->raw.len);
	if (!r)
		r = dimg_varint_put(out, nf->taillen);
	if (!r)
		r = dimg_varint_put(out, blocks.len);
	if (!r)
		r = gze_records(out, nf);
	if (!r && blocks.len)
		r = dimg_buf_append(out, blocks.data, blocks.len);
	if (!r && nf->taillen)
		r = dimg_buf_append(out, nf->tail, nf->taillen);
	dimg_buf_free(&blocks);
	return r;
}

/* Checks the finished blob before it is offered (gzre_check_blob): the
 * zlib on this machine must really give back every byte, which the search
 * established member by member; the blob must say exactly what was found.
 * Deflating the content again here would double the codec's zlib time. */
static int gze_verify(const struct gzre_file *of, const struct gzre_file *nf,
                      const struct dimg_buf *blob)
{
	int r = gzre_check_blob(blob->data, blob->len, of, nf);
	return r == -EBADMSG ? -ENODATA : r;
}

int dimg_gzre_encode(const uint8_t *old, size_t oldlen, const uint8_t *new_, size_t newlen,
                     int level, unsigned inner_codecs, struct dimg_buf *out)
{
	struct gzre_file nf, of = {0};
	struct dimg_buf inner = {0}, blob = {0};
	uint8_t codec = 0;
	if (newlen < 18 || new_[0] != 0x1f || new_[1] != 0x8b)
		return -ENODATA;
	int r = gzre_parse(&nf, new_, newlen);
	if (r < 0)
		return r;
	if ((r = gze_search(&nf)) == 0 && gzre_parse(&of, old, oldlen) < 0)
		memset(&of, 0, sizeof(of)); /* not gzip: the new content goes whole */
	if (r == 0)
		r = gze_inner(&of, &nf, level, inner_codecs, &inner, &codec);
	if (r == 0)
		r = gze_header(&blob, &of, &nf, codec);
	if (r == 0)
		r = dimg_buf_append(&blob, inner.data, inner.len);
	if (r == 0)
		r = gze_verify(&of, &nf, &blob);
	if (r == 0)
		r = dimg_buf_append(out, blob.data, blob.len);
	dimg_buf_free(&blob);
	dimg_buf_free(&inner);
	gzre_file_free(&nf);
	gzre_file_free(&of);
	return r;
}
