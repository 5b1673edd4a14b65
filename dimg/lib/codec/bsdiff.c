/* Our bsdiff-family codec: suffix-array matching over the old file, then a
 * fixed header and three streams (control, diff, extra), each zstd or bzip2
 * (bsdstream.c); see docs/patch-format.md. Apply streams the result and
 * checks every value. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <divsufsort.h>
#include <divsufsort64.h>

#include "dimg/codec.h"
#include "bsdiff-internal.h"
#include "endian-internal.h"

#define BSD_MAGIC       "DI3FSBSD"
#define BSD_VERSION     2u
#define BSD_HDR_SIZE    64u
#define BSD_TRIPLE_SIZE 24u
#define BSD_NSTREAMS    3
/* Sizes past 1 TiB would need terabytes of suffix array anyway. */
#define BSD_MAX_SIZE ((uint64_t)1 << 40)
/* Old files below this use the 32-bit suffix array (half the memory).
 * Overridable at build time only so tests can reach the 64-bit path. */
#ifndef BSD_SA32_LIMIT
#define BSD_SA32_LIMIT INT32_MAX
#endif
#define BSD_CHUNK (64u * 1024u)
/* Suffix comparisons stop here; a longer match is extended linearly, so
 * one search costs O(cap * log n + match length), not O(match * log n). */
#define BSD_SEARCH_CAP 2048
/* A match this long that does not beat the current alignment lets the scan
 * jump half its length instead of one byte: this is what keeps long
 * near-identical runs (zeros, repeated patterns) from going quadratic. */
#define BSD_SKIP_MIN 32
/* A new match must beat the running alignment by this many bytes. */
#define BSD_BETTER 8

enum { BSD_CTRL = 0, BSD_DIFF = 1, BSD_EXTRA = 2 };

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* One control record: seek the old cursor, add `diff` bytes of old to the
 * diff stream, then copy `extra` bytes from the extra stream. */
struct bsd_triple {
	uint64_t seek; /* two's complement, applied before the diff */
	uint64_t diff, extra;
};

static void bsd_triple_get(struct bsd_triple *t, const uint8_t *p)
{
	t->seek = le64dec(p);
	t->diff = le64dec(p + 8);
	t->extra = le64dec(p + 16);
}

static void bsd_triple_put(uint8_t *p, const struct bsd_triple *t)
{
	le64enc(p, t->seek);
	le64enc(p + 8, t->diff);
	le64enc(p + 16, t->extra);
}

/* ---- diff: matching ---- */

struct bsd_enc {
	const uint8_t *old, *nw;
	int64_t oldlen, newlen;
	saidx_t *sa32; /* old < 2^31 bytes */
	saidx64_t *sa64;
	struct dimg_buf ctrl; /* raw control stream, 24-byte records */
	int64_t cursor;       /* old position after the last record */
	int64_t lastscan, lastpos, lastoffset;
};

static int64_t bsd_sa(const struct bsd_enc *e, int64_t i)
{
	return e->sa32 ? (int64_t)e->sa32[i] : (int64_t)e->sa64[i];
}

/* Length of the common prefix of a and b, at most n. */
static int64_t bsd_common(const uint8_t *a, const uint8_t *b, int64_t n)
{
	int64_t i = 0;

	/* Word compares find the first differing word; bytes finish it. */
	for (; i + 8 <= n; i += 8) {
		uint64_t x, y;

		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		if (x != y)
			break;
	}
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/* True when the old suffix at p sorts before the pattern, given that they
 * share exactly l bytes (l below the cap). */
static int bsd_suffix_before(const struct bsd_enc *e, int64_t p, int64_t l, const uint8_t *pat,
                             int64_t plen)
{
	if (l == e->oldlen - p)
		return l < plen;
	if (l == plen)
		return 0;
	return e->old[p + l] < pat[l];
}

static int64_t bsd_probe(const struct bsd_enc *e, int64_t p, const uint8_t *pat, int64_t plen)
{
	return bsd_common(e->old + p, pat, min64(min64(e->oldlen - p, plen), BSD_SEARCH_CAP));
}

/* Longest (or, past the cap, a long enough) match of new[scan..] in old. */
static int64_t bsd_search(const struct bsd_enc *e, int64_t scan, int64_t *pos)
{
	int64_t plen = e->newlen - scan, lo = 0, hi = e->oldlen - 1, best = 0, bestpos = 0;
	const uint8_t *pat;

	*pos = 0;
	if (e->oldlen == 0)
		return 0;
	pat = e->nw + scan;
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2, p = bsd_sa(e, mid),
		        l = bsd_probe(e, p, pat, plen);

		if (l > best) {
			best = l;
			bestpos = p;
		}
		if (l >= BSD_SEARCH_CAP)
			break;
		if (bsd_suffix_before(e, p, l, pat, plen))
			lo = mid;
		else
			hi = mid;
	}
	for (int k = 0; k < 2 && best < BSD_SEARCH_CAP; k++) {
		int64_t p = bsd_sa(e, k ? hi : lo), l = bsd_probe(e, p, pat, plen);

		if (l > best) {
			best = l;
			bestpos = p;
		}
	}
	if (best >= BSD_SEARCH_CAP)
		best += bsd_common(e->old + bestpos + best, pat + best,
		                   min64(e->oldlen - bestpos, plen) - best);
	*pos = bestpos;
	return best;
}

/* Whether new[i] equals old at the current alignment. */
static int bsd_aligned(const struct bsd_enc *e, int64_t i)
{
	int64_t j = i + e->lastoffset;

	return j >= 0 && j < e->oldlen && e->old[j] == e->nw[i];
}

/* How far the previous match's alignment carries forward from lastscan:
 * the prefix where matches outnumber mismatches by the widest margin. */
static int64_t bsd_fwd_len(const struct bsd_enc *e, int64_t scan)
{
	int64_t s = 0, best = 0, lenf = 0;

	for (int64_t i = 0; e->lastscan + i < scan && e->lastpos + i < e->oldlen;) {
		s += e->old[e->lastpos + i] == e->nw[e->lastscan + i];
		i++;
		if (s * 2 - i > best * 2 - lenf) {
			best = s;
			lenf = i;
		}
	}
	return lenf;
}

/* Same, backwards from the new match at (scan, pos). */
static int64_t bsd_back_len(const struct bsd_enc *e, int64_t scan, int64_t pos)
{
	int64_t s = 0, best = 0, lenb = 0;

	for (int64_t i = 1; scan >= e->lastscan + i && pos >= i; i++) {
		s += e->old[pos - i] == e->nw[scan - i];
		if (s * 2 - i > best * 2 - lenb) {
			best = s;
			lenb = i;
		}
	}
	return lenb;
}

/* The forward and backward extensions overlap: give each byte of the
 * overlap to whichever alignment matches it, at the best split point. */
static void bsd_split_overlap(const struct bsd_enc *e, int64_t scan, int64_t pos, int64_t *lenf,
                              int64_t *lenb)
{
	int64_t overlap = e->lastscan + *lenf - (scan - *lenb), s = 0, best = 0, lens = 0;
	int64_t fn = e->lastscan + *lenf - overlap, fo = e->lastpos + *lenf - overlap;
	int64_t bn = scan - *lenb, bo = pos - *lenb;

	for (int64_t i = 0; i < overlap; i++) {
		s += e->nw[fn + i] == e->old[fo + i];
		s -= e->nw[bn + i] == e->old[bo + i];
		if (s > best) {
			best = s;
			lens = i + 1;
		}
	}
	*lenf += lens - overlap;
	*lenb -= lens;
}

/* Appends a record; empty ones carry nothing (their seek is folded into the
 * next record's) and apply refuses them. */
static int bsd_put(struct bsd_enc *e, int64_t diff, int64_t extra, int64_t diffstart)
{
	struct bsd_triple t = {0, (uint64_t)diff, (uint64_t)extra};
	uint8_t rec[BSD_TRIPLE_SIZE];

	if (diff == 0 && extra == 0)
		return 0;
	/* With no diff bytes the cursor stays put: the next seek is relative
	 * to where the last diff ended. */
	if (diff > 0) {
		t.seek = (uint64_t)(diffstart - e->cursor);
		e->cursor = diffstart + diff;
	}
	bsd_triple_put(rec, &t);
	return dimg_buf_append(&e->ctrl, rec, sizeof(rec));
}

/* Closes the region since the last match: its diff part, its extra part. */
static int bsd_emit(struct bsd_enc *e, int64_t scan, int64_t pos)
{
	int64_t lenf = bsd_fwd_len(e, scan);
	int64_t lenb = scan < e->newlen ? bsd_back_len(e, scan, pos) : 0;
	int r;

	if (e->lastscan + lenf > scan - lenb)
		bsd_split_overlap(e, scan, pos, &lenf, &lenb);
	r = bsd_put(e, lenf, scan - lenb - e->lastscan - lenf, e->lastpos);
	e->lastscan = scan - lenb;
	e->lastpos = pos - lenb;
	e->lastoffset = pos - scan;
	return r;
}

/* The bsdiff scan: look for a match that beats the running alignment by
 * BSD_BETTER bytes; when found, close the region before it. */
static int bsd_scan(struct bsd_enc *e)
{
	int64_t scan = 0, len = 0, pos = 0;

	while (scan < e->newlen) {
		int64_t oldscore = 0, scsc;

		for (scsc = scan += len; scan < e->newlen;) {
			int64_t step;

			len = bsd_search(e, scan, &pos);
			for (; scsc < scan + len; scsc++)
				oldscore += bsd_aligned(e, scsc);
			if ((len == oldscore && len != 0) || len > oldscore + BSD_BETTER)
				break;
			/* Only bytes already counted (below scsc) leave the count. */
			step = len >= BSD_SKIP_MIN ? len / 2 : 1;
			for (; step > 0; step--, scan++)
				oldscore -= scan < scsc && bsd_aligned(e, scan);
		}
		if (len != oldscore || scan == e->newlen) {
			int r = bsd_emit(e, scan, pos);

			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int bsd_sort(struct bsd_enc *e)
{
	if (e->oldlen == 0)
		return 0;
	if (e->oldlen < BSD_SA32_LIMIT) {
		e->sa32 = malloc((size_t)e->oldlen * sizeof(*e->sa32));
		if (!e->sa32)
			return -ENOMEM;
		return divsufsort(e->old, e->sa32, (saidx_t)e->oldlen) ? -ENOMEM : 0;
	}
	e->sa64 = malloc((size_t)e->oldlen * sizeof(*e->sa64));
	if (!e->sa64)
		return -ENOMEM;
	return divsufsort64(e->old, e->sa64, (saidx64_t)e->oldlen) ? -ENOMEM : 0;
}

/* ---- diff: streams ---- */

/* Totals of the diff and extra streams, walking the records. */
static void bsd_totals(const struct bsd_enc *e, uint64_t *diff, uint64_t *extra)
{
	struct bsd_triple t;

	*diff = *extra = 0;
	for (size_t off = 0; off < e->ctrl.len; off += BSD_TRIPLE_SIZE) {
		bsd_triple_get(&t, e->ctrl.data + off);
		*diff += t.diff;
		*extra += t.extra;
	}
}

static int bsd_z_diff(const struct bsd_enc *e, struct dimg_bsd_zs *zs, uint8_t *tmp)
{
	int64_t cursor = 0, npos = 0;
	struct bsd_triple t;
	int r;

	for (size_t off = 0; off < e->ctrl.len; off += BSD_TRIPLE_SIZE) {
		bsd_triple_get(&t, e->ctrl.data + off);
		cursor += (int64_t)t.seek;
		for (uint64_t done = 0; done < t.diff;) {
			size_t n = (size_t)min64((int64_t)(t.diff - done), BSD_CHUNK);
			const uint8_t *o = e->old + cursor + done, *nw = e->nw + npos + done;

			for (size_t i = 0; i < n; i++)
				tmp[i] = (uint8_t)(nw[i] - o[i]);
			r = dimg_bsd_zs_feed(zs, tmp, n);
			if (r < 0)
				return r;
			done += n;
		}
		cursor += (int64_t)t.diff;
		npos += (int64_t)(t.diff + t.extra);
	}
	return 0;
}

static int bsd_z_extra(const struct bsd_enc *e, struct dimg_bsd_zs *zs)
{
	int64_t npos = 0;
	struct bsd_triple t;
	int r;

	for (size_t off = 0; off < e->ctrl.len; off += BSD_TRIPLE_SIZE) {
		bsd_triple_get(&t, e->ctrl.data + off);
		npos += (int64_t)t.diff;
		if (t.extra > 0) {
			r = dimg_bsd_zs_feed(zs, e->nw + npos, (size_t)t.extra);
			if (r < 0)
				return r;
		}
		npos += (int64_t)t.extra;
	}
	return 0;
}

static size_t bsd_varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* The control stream on disk: per record the seek zigzag-encoded, then diff
 * and extra lengths, each as a LEB128 varint (a quarter smaller compressed
 * than fixed 8-byte fields on real executables). */
static int bsd_ctrl_varints(const struct bsd_enc *e, struct dimg_buf *out)
{
	for (size_t off = 0; off < e->ctrl.len; off += BSD_TRIPLE_SIZE) {
		struct bsd_triple t;
		uint8_t rec[3 * 10];
		size_t n;
		bsd_triple_get(&t, e->ctrl.data + off);
		n = bsd_varint_put(rec, (t.seek << 1) ^ (uint64_t)((int64_t)t.seek >> 63));
		n += bsd_varint_put(rec + n, t.diff);
		n += bsd_varint_put(rec + n, t.extra);
		int r = dimg_buf_append(out, rec, n);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Each stream's method and compressed length, as the header gives them. */
struct bsd_streams {
	uint8_t method[BSD_NSTREAMS];
	uint64_t zlen[BSD_NSTREAMS];
};

/* One stream of srclen raw bytes, compressed both ways, the smaller kept. */
static int bsd_write_stream(const struct bsd_enc *e, int i, const struct dimg_buf *ctrl,
                            uint64_t srclen, int level, uint8_t *tmp, struct dimg_buf *out,
                            struct bsd_streams *st)
{
	struct dimg_bsd_zs zs;
	int r = dimg_bsd_zs_begin(&zs, level, srclen, i == BSD_DIFF ? DIMG_BSD_ZS_SPARSE : 0);

	if (r == 0 && i == BSD_CTRL)
		r = dimg_bsd_zs_feed(&zs, ctrl->data, ctrl->len);
	else if (r == 0 && i == BSD_DIFF)
		r = bsd_z_diff(e, &zs, tmp);
	else if (r == 0)
		r = bsd_z_extra(e, &zs);
	if (r == 0)
		r = dimg_bsd_zs_end(&zs, out, &st->method[i], &st->zlen[i]);
	dimg_bsd_zs_free(&zs);
	return r;
}

/* Writes the three compressed streams after the header already in out. */
static int bsd_write_streams(const struct bsd_enc *e, int level, struct dimg_buf *out,
                             struct bsd_streams *st)
{
	struct dimg_buf ctrl = {0};
	uint8_t *tmp = malloc(BSD_CHUNK);
	int r = tmp ? bsd_ctrl_varints(e, &ctrl) : -ENOMEM;
	uint64_t total[BSD_NSTREAMS] = {ctrl.len, 0, 0};

	bsd_totals(e, &total[BSD_DIFF], &total[BSD_EXTRA]);
	for (int i = 0; i < BSD_NSTREAMS && r == 0; i++)
		r = bsd_write_stream(e, i, &ctrl, total[i], level, tmp, out, st);
	free(tmp);
	dimg_buf_free(&ctrl);
	return r;
}

static void bsd_put_header(uint8_t *p, uint64_t oldlen, uint64_t newlen,
                           const struct bsd_streams *st)
{
	memset(p, 0, BSD_HDR_SIZE);
	memcpy(p, BSD_MAGIC, 8);
	le32enc(p + 8, BSD_VERSION);
	le64enc(p + 16, oldlen);
	le64enc(p + 24, newlen);
	for (int i = 0; i < BSD_NSTREAMS; i++) {
		p[12 + i] = st->method[i];
		le64enc(p + 32 + 8 * i, st->zlen[i]);
	}
}

int dimg_bsdiff(const uint8_t *old, size_t oldlen, const uint8_t *new_, size_t newlen, int level,
                struct dimg_buf *out)
{
	struct bsd_enc e = {
	    .old = old, .nw = new_, .oldlen = (int64_t)oldlen, .newlen = (int64_t)newlen};
	struct bsd_streams st = {{0}, {0}};
	size_t start = out->len;
	int r;

	if ((uint64_t)oldlen > BSD_MAX_SIZE || (uint64_t)newlen > BSD_MAX_SIZE)
		return -EFBIG;
	if (level < 1 || level > ZSTD_maxCLevel())
		return -EINVAL;
	r = bsd_sort(&e);
	if (r == 0)
		r = bsd_scan(&e);
	/* The suffix array is done with: free it before the compressor's
	 * tables are allocated, so the two never add up. */
	free(e.sa32);
	free(e.sa64);
	if (r == 0)
		r = dimg_buf_reserve(out, BSD_HDR_SIZE);
	if (r == 0) {
		out->len += BSD_HDR_SIZE;
		r = bsd_write_streams(&e, level, out, &st);
	}
	if (r == 0)
		bsd_put_header(out->data + start, oldlen, newlen, &st);
	else
		out->len = start;
	dimg_buf_free(&e.ctrl);
	return r;
}

/* ---- apply ---- */

struct bsd_header {
	uint64_t oldsize, newsize;
	struct bsd_streams st;
};

/* Version 1: reserved bytes 12..15; version 2: the methods, then 0. */
static int bsd_parse_methods(struct bsd_header *h, const uint8_t *p, uint32_t version)
{
	for (int i = 0; i < BSD_NSTREAMS; i++) {
		h->st.method[i] = version == 1 ? DIMG_BSD_ZSTD : p[12 + i];
		if (p[12 + i] > (version == 1 ? 0 : DIMG_BSD_BZIP2))
			return -EBADMSG;
	}
	return p[15] == 0 ? 0 : -EBADMSG;
}

static int bsd_parse_header(struct bsd_header *h, const uint8_t *p, size_t len)
{
	uint64_t rest;
	uint32_t version;

	if (len < BSD_HDR_SIZE || memcmp(p, BSD_MAGIC, 8) != 0)
		return -EBADMSG;
	version = le32dec(p + 8);
	if (version != 1 && version != BSD_VERSION)
		return -ENOTSUP;
	if (bsd_parse_methods(h, p, version) < 0 || le64dec(p + 56) != 0)
		return -EBADMSG;
	h->oldsize = le64dec(p + 16);
	h->newsize = le64dec(p + 24);
	rest = len - BSD_HDR_SIZE;
	for (int i = 0; i < BSD_NSTREAMS; i++) {
		h->st.zlen[i] = le64dec(p + 32 + 8 * i);
		if (h->st.zlen[i] > rest)
			return -EBADMSG;
		rest -= h->st.zlen[i];
	}
	return rest == 0 ? 0 : -EBADMSG;
}

struct bsp {
	const uint8_t *old;
	uint64_t oldlen, newsize, newpos, cursor;
	struct dimg_bsd_in s[BSD_NSTREAMS];
	uint8_t *chunk;
	size_t fill;
	dimg_write_fn sink;
	void *sink_ctx;
};

static int bsp_flush(struct bsp *b)
{
	int r = 0;

	if (b->fill > 0)
		r = b->sink(b->sink_ctx, b->chunk, b->fill);
	b->fill = 0;
	return r < 0 ? r : 0;
}

/* Emits n bytes: old at the cursor plus the diff stream, or (old == NULL)
 * the extra stream as is. */
static int bsp_copy(struct bsp *b, struct dimg_bsd_in *s, uint64_t n, const uint8_t *old)
{
	while (n > 0) {
		size_t k = BSD_CHUNK - b->fill;
		uint8_t *dst = b->chunk + b->fill;
		int r;

		if (k > n)
			k = (size_t)n;
		r = dimg_bsd_in_read(s, dst, k);
		if (r < 0)
			return r;
		if (old) {
			for (size_t i = 0; i < k; i++)
				dst[i] = (uint8_t)(dst[i] + old[i]);
			old += k;
		}
		b->fill += k;
		n -= k;
		if (b->fill == BSD_CHUNK && (r = bsp_flush(b)) < 0)
			return r;
	}
	return 0;
}

/* Moves the old cursor by a two's-complement offset, staying in [0, oldlen]. */
static int bsp_seek(struct bsp *b, uint64_t seek)
{
	if (seek >> 63) {
		uint64_t back = 0 - seek;

		if (back > b->cursor)
			return -EOVERFLOW;
		b->cursor -= back;
	} else {
		if (seek > b->oldlen - b->cursor)
			return -EOVERFLOW;
		b->cursor += seek;
	}
	return 0;
}

/* One LEB128 varint of at most 10 bytes, in its shortest form. */
static int bsp_varint(struct dimg_bsd_in *s, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 70; shift += 7) {
		uint8_t byte;
		int r = dimg_bsd_in_read(s, &byte, 1);
		if (r < 0)
			return r;
		if (shift == 63 && byte > 1)
			return -EBADMSG;
		*v |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80))
			return (byte == 0 && shift) ? -EBADMSG : 0;
	}
	return -EBADMSG;
}

static int bsp_record(struct dimg_bsd_in *s, struct bsd_triple *t)
{
	uint64_t zz;
	int r = bsp_varint(s, &zz);
	if (!r)
		r = bsp_varint(s, &t->diff);
	if (!r)
		r = bsp_varint(s, &t->extra);
	t->seek = (zz >> 1) ^ (0 - (zz & 1));
	return r;
}

static int bsp_step(struct bsp *b)
{
	struct bsd_triple t;
	uint64_t left = b->newsize - b->newpos;
	int r = bsp_record(&b->s[BSD_CTRL], &t);

	if (r < 0)
		return r;
	if (t.diff == 0 && t.extra == 0)
		return -EBADMSG;
	r = bsp_seek(b, t.seek);
	if (r < 0)
		return r;
	if (t.diff > left || t.extra > left - t.diff || t.diff > b->oldlen - b->cursor)
		return -EOVERFLOW;
	if (t.diff > 0) {
		r = bsp_copy(b, &b->s[BSD_DIFF], t.diff, b->old + b->cursor);
		if (r < 0)
			return r;
	}
	r = bsp_copy(b, &b->s[BSD_EXTRA], t.extra, NULL);
	b->cursor += t.diff;
	b->newpos += t.diff + t.extra;
	return r;
}

/* Cheap early checks of the sizes zstd frames state; the decoder re-checks
 * each at its stream's end. Every record makes at least one new byte and
 * takes at most 30. */
static int bsp_sizes_ok(const struct bsp *b)
{
	const uint64_t unknown = DIMG_BSD_SIZE_UNKNOWN, n = b->newsize;
	uint64_t c = b->s[BSD_CTRL].size, d = b->s[BSD_DIFF].size, x = b->s[BSD_EXTRA].size;

	if ((c != unknown && c / 30 > n) || (d != unknown && d > n) || (x != unknown && x > n))
		return 0;
	return d == unknown || x == unknown || x == n - d;
}

static int bsp_open(struct bsp *b, const struct bsd_header *h, const uint8_t *patch)
{
	const uint8_t *p = patch + BSD_HDR_SIZE;
	int r;

	for (int i = 0; i < BSD_NSTREAMS; i++) {
		r = dimg_bsd_in_open(&b->s[i], h->st.method[i], p, (size_t)h->st.zlen[i]);
		if (r < 0)
			return r;
		p += h->st.zlen[i];
	}
	if (!bsp_sizes_ok(b))
		return -EBADMSG;
	b->chunk = malloc(BSD_CHUNK);
	return b->chunk ? 0 : -ENOMEM;
}

static int bsp_run(struct bsp *b)
{
	int r = 0;

	while (r == 0 && b->newpos < b->newsize)
		r = bsp_step(b);
	if (r == 0)
		r = bsp_flush(b);
	for (int i = 0; i < BSD_NSTREAMS && r == 0; i++)
		r = dimg_bsd_in_finish(&b->s[i]);
	return r;
}

int dimg_bspatch(const uint8_t *old, size_t oldlen, const uint8_t *patch, size_t patchlen,
                 dimg_write_fn sink, void *sink_ctx, uint64_t *newlen)
{
	struct bsp b = {.old = old, .oldlen = oldlen, .sink = sink, .sink_ctx = sink_ctx};
	struct bsd_header h;
	int r = bsd_parse_header(&h, patch, patchlen);

	if (r < 0)
		return r;
	/* A patch made against another base would decode to garbage; EXDEV is
	 * what docs/FORMAT.md gives for "wrong base". */
	if (h.oldsize != (uint64_t)oldlen)
		return -EXDEV;
	b.newsize = h.newsize;
	r = bsp_open(&b, &h, patch);
	if (r == 0)
		r = bsp_run(&b);
	for (int i = 0; i < BSD_NSTREAMS; i++)
		dimg_bsd_in_free(&b.s[i]);
	free(b.chunk);
	if (r == 0 && newlen)
		*newlen = h.newsize;
	return r;
}

/* ---- shared with patch composition (bsdiff-internal.h) ---- */

int dimg_bsd_header(const uint8_t *p, size_t len, uint64_t *oldsize, uint64_t *newsize,
                    uint8_t method[3], uint64_t zlen[3])
{
	struct bsd_header h;
	int r = bsd_parse_header(&h, p, len);

	if (r < 0)
		return r;
	*oldsize = h.oldsize;
	*newsize = h.newsize;
	memcpy(method, h.st.method, sizeof(h.st.method));
	memcpy(zlen, h.st.zlen, sizeof(h.st.zlen));
	return 0;
}

int dimg_bsd_pack(uint64_t oldsize, uint64_t newsize, const struct dimg_buf *ctrl,
                  const struct dimg_buf *diff, const struct dimg_buf *extra, int level,
                  struct dimg_buf *out)
{
	const struct dimg_buf *in[BSD_NSTREAMS] = {ctrl, diff, extra};
	struct bsd_streams st = {{0}, {0}};
	size_t start = out->len;
	int r = dimg_buf_reserve(out, BSD_HDR_SIZE);

	if (r == 0)
		out->len += BSD_HDR_SIZE;
	for (int i = 0; i < BSD_NSTREAMS && r == 0; i++) {
		struct dimg_bsd_zs zs;

		r = dimg_bsd_zs_begin(&zs, level, in[i]->len,
		                      i == BSD_DIFF ? DIMG_BSD_ZS_SPARSE : 0);
		if (r == 0)
			r = dimg_bsd_zs_feed(&zs, in[i]->data, in[i]->len);
		if (r == 0)
			r = dimg_bsd_zs_end(&zs, out, &st.method[i], &st.zlen[i]);
		dimg_bsd_zs_free(&zs);
	}
	if (r == 0)
		bsd_put_header(out->data + start, oldsize, newsize, &st);
	else
		out->len = start;
	return r;
}
