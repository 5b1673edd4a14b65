/* Reading the predicted records of layer recipes version 2 (docs/FORMAT.md
 * "Predicted entries"): each entry's header bytes are what the layer's
 * writer model gives for a target tree entry, patched where the layer
 * differs; its content is the tree entry's. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dimg/hash.h"
#include "dimg/varint.h"
#include "layers-internal.h"

#define LP_CHUNK 4096u

int lrec_mem_read(void *ctx, void *p, size_t n)
{
	struct lrec_mem *m = ctx;
	if (n > m->n - m->at)
		return -EBADMSG;
	memcpy(p, m->p + m->at, n);
	m->at += n;
	return 0;
}

/* A varint of the stream (dimg/varint.h rules): its bytes up to the one
 * without the high bit, at most 10, decoded. */
int lvar_get(const struct lrec_in *in, uint64_t *v)
{
	uint8_t b[10];
	size_t n = 0;
	do {
		int r = in->read(in->ctx, b + n, 1);
		if (r < 0)
			return r;
	} while (b[n++] & 0x80 && n < sizeof(b));
	const uint8_t *p = b;
	int r = dimg_varint_get(&p, b + n, v);
	return r == 0 && p != b + n ? -EBADMSG : r;
}

int lvar_put(struct dimg_buf *b, uint64_t v)
{
	return dimg_varint_put(b, v);
}

uint64_t lvar_zigzag(int64_t v)
{
	return v < 0 ? ((uint64_t)(-(v + 1)) << 1) | 1 : (uint64_t)v << 1;
}

int64_t lvar_unzigzag(uint64_t v)
{
	return v & 1 ? -(int64_t)(v >> 1) - 1 : (int64_t)(v >> 1);
}

int lpred_init(struct lpred *d, const struct dimg_tree *t)
{
	memset(d, 0, sizeof(*d));
	d->tree = t;
	return tarmodel_init(&d->m, t, NULL);
}

void lpred_free(struct lpred *d)
{
	if (!d)
		return;
	tarmodel_free(&d->m);
	if (d->have_dfs)
		tarmodel_dfs_free(&d->dfs);
	dimg_buf_free(&d->pred);
	dimg_buf_free(&d->out);
	d->have_dfs = 0;
}

void lpred_layer(struct lpred *d)
{
	d->have_model = 0;
}

static int lp_model(struct lpred *d, const struct lrec_in *in)
{
	struct tarmodel_params p = {0};
	uint8_t h[3];
	int r = in->read(in->ctx, h, sizeof(h));
	if (r < 0)
		return r;
	p = (struct tarmodel_params){.writer = h[0], .order = h[1], .plen = h[2]};
	if (p.plen > TARMODEL_PREFIX_MAX)
		return -EBADMSG;
	if ((r = in->read(in->ctx, p.prefix, p.plen)) < 0)
		return r;
	if (p.order == TARMODEL_ORDER_DEPTH && !d->have_dfs) {
		if ((r = tarmodel_dfs_build(&d->dfs, d->tree)) < 0)
			return r;
		d->have_dfs = 1;
		d->m.dfs = &d->dfs;
	}
	if ((r = tarmodel_params_check(&d->m, &p)) < 0)
		return r;
	tarmodel_reset(&d->m, &p);
	d->have_model = 1;
	return 0;
}

int lpred_patch(const struct dimg_buf *pred, const struct lrec_in *in, struct dimg_buf *out)
{
	uint64_t nops, copy, del, ins;
	size_t at = 0;
	int r = lvar_get(in, &nops);
	out->len = 0;
	if (r == 0 && nops > TARMODEL_UNIT_MAX)
		r = -EBADMSG;
	for (uint64_t i = 0; r == 0 && i < nops; i++) {
		if ((r = lvar_get(in, &copy)) < 0 || (r = lvar_get(in, &del)) < 0 ||
		    (r = lvar_get(in, &ins)) < 0)
			break;
		if (copy > pred->len - at || del > pred->len - at - copy ||
		    ins > TARMODEL_UNIT_MAX - out->len || copy > TARMODEL_UNIT_MAX - out->len - ins)
			return -EBADMSG;
		if ((r = dimg_buf_append(out, pred->data + at, (size_t)copy)) < 0 ||
		    (r = dimg_buf_reserve(out, (size_t)ins + 1)) < 0)
			break;
		at += (size_t)(copy + del);
		if ((r = in->read(in->ctx, out->data + out->len, (size_t)ins)) == 0)
			out->len += (size_t)ins;
	}
	if (r == 0 && pred->len - at > TARMODEL_UNIT_MAX - out->len)
		r = -EBADMSG;
	return r < 0 ? r : dimg_buf_append(out, pred->data + at, pred->len - at);
}

static int lp_zeros(const struct lrec_out *out, uint64_t n)
{
	static const uint8_t zero[LP_CHUNK];
	int r = 0;
	while (r == 0 && n) {
		size_t k = n < LP_CHUNK ? (size_t)n : LP_CHUNK;
		r = out->bytes(out->ctx, zero, k);
		n -= k;
	}
	return r;
}

/* One entry: the predicted header bytes (patched), then the tree's
 * content and its padding unless the flags say otherwise. */
static int lp_entry(struct lpred *d, int64_t skip, unsigned flags, const struct lrec_in *in,
                    const struct lrec_out *out)
{
	struct tarmodel_pred pr;
	size_t idx;
	int r = d->have_model ? tarmodel_locate(&d->m, skip, &idx) : -EBADMSG;
	d->pred.len = 0;
	if (r == 0 && (r = tarmodel_predict(&d->m, idx, &d->pred, &pr)) == -E2BIG)
		r = -EBADMSG; /* the writer never predicts so much */
	if (r < 0)
		return r;
	const struct dimg_buf *u = &d->pred;
	if (flags & LAYERS_ENTRY_PATCH) {
		if ((r = lpred_patch(&d->pred, in, &d->out)) < 0)
			return r;
		u = &d->out;
	}
	if (u->len < TARMODEL_BLOCK || u->len % TARMODEL_BLOCK)
		return -EBADMSG;
	if (flags & LAYERS_ENTRY_CHECKSUM)
		tarmodel_checksum(u->data + u->len - TARMODEL_BLOCK);
	if ((r = out->bytes(out->ctx, u->data, u->len)) < 0)
		return r;
	tarmodel_commit(&d->m, idx, u->data + u->len - TARMODEL_BLOCK);
	if (!pr.has_content || (flags & LAYERS_ENTRY_NO_CONTENT))
		return 0;
	if ((r = out->content(out->ctx, pr.sha256, pr.size)) < 0)
		return r;
	return lp_zeros(out, (TARMODEL_BLOCK - pr.size % TARMODEL_BLOCK) % TARMODEL_BLOCK);
}

int lpred_record(struct lpred *d, uint8_t type, const struct lrec_in *in,
                 const struct lrec_out *out)
{
	uint64_t v;
	uint8_t flags;
	int r;
	switch (type) {
	case LAYERS_REC_MODEL:
		return lp_model(d, in);
	case LAYERS_REC_ENTRY:
		if ((r = lvar_get(in, &v)) < 0 || (r = in->read(in->ctx, &flags, 1)) < 0)
			return r;
		if ((flags & ~LAYERS_ENTRY_FLAGS) ||
		    (flags & (LAYERS_ENTRY_PATCH | LAYERS_ENTRY_CHECKSUM)) == LAYERS_ENTRY_CHECKSUM)
			return -EBADMSG;
		return lp_entry(d, lvar_unzigzag(v), flags, in, out);
	case LAYERS_REC_ENTRIES:
		if ((r = lvar_get(in, &v)) < 0)
			return r;
		if (v == 0 || v > d->tree->n)
			return -EBADMSG;
		for (uint64_t i = 0; r == 0 && i < v; i++)
			r = lp_entry(d, 0, 0, in, out);
		return r;
	case LAYERS_REC_ZEROS:
		if ((r = lvar_get(in, &v)) < 0)
			return r;
		return v == 0 || v > LAYERS_ZEROS_MAX ? -EBADMSG : lp_zeros(out, v);
	default:
		return -EBADMSG;
	}
}

/* ---- record lengths, for composing blobs without reading them ---- */

static int lp_skip_var(struct lrec_mem *m, uint64_t *v)
{
	struct lrec_in in = {lrec_mem_read, m};
	return lvar_get(&in, v);
}

static int lp_skip_patch(struct lrec_mem *m)
{
	uint64_t nops, copy, del, ins;
	int r = lp_skip_var(m, &nops);
	if (r == 0 && nops > TARMODEL_UNIT_MAX)
		return -EBADMSG;
	for (uint64_t i = 0; r == 0 && i < nops; i++) {
		if ((r = lp_skip_var(m, &copy)) < 0 || (r = lp_skip_var(m, &del)) < 0 ||
		    (r = lp_skip_var(m, &ins)) < 0)
			break;
		if (ins > m->n - m->at)
			return -EBADMSG;
		m->at += (size_t)ins;
	}
	return r;
}

size_t lpred_record_len(const uint8_t *p, size_t n)
{
	struct lrec_mem m = {p, n, 1};
	uint64_t v;
	uint8_t h[3];
	int r = n ? 0 : -EBADMSG;
	if (r == 0 && p[0] == LAYERS_REC_MODEL) {
		if ((r = lrec_mem_read(&m, h, 3)) == 0 && h[2] > n - m.at)
			r = -EBADMSG;
		m.at += r == 0 ? h[2] : 0;
	} else if (r == 0 && p[0] == LAYERS_REC_ENTRY) {
		if ((r = lp_skip_var(&m, &v)) == 0 && (r = lrec_mem_read(&m, h, 1)) == 0 &&
		    (h[0] & LAYERS_ENTRY_PATCH))
			r = lp_skip_patch(&m);
	} else if (r == 0 && (p[0] == LAYERS_REC_ENTRIES || p[0] == LAYERS_REC_ZEROS)) {
		r = lp_skip_var(&m, &v);
	} else {
		r = -EBADMSG;
	}
	return r < 0 ? 0 : m.at;
}

/* ---- the same layer against another tree (cdimg merge) ---- */

struct lp_plain {
	struct dimg_buf *out;
	struct dimg_buf raw;
};

static int lp_flush(struct lp_plain *p)
{
	uint8_t h[5] = {DIMG_RECIPE_RAW};
	for (int i = 0; i < 4; i++)
		h[1 + i] = (uint8_t)(p->raw.len >> (8 * i));
	int r = p->raw.len ? dimg_buf_append(p->out, h, 5) : 0;
	if (r == 0)
		r = dimg_buf_append(p->out, p->raw.data, p->raw.len);
	p->raw.len = 0;
	return r;
}

static int lp_plain_bytes(void *ctx, const void *p, size_t n)
{
	struct lp_plain *pl = ctx;
	const uint8_t *s = p;
	int r = 0;
	while (r == 0 && n) {
		size_t k =
		    DIMG_RECIPE_RAW_MAX - pl->raw.len < n ? DIMG_RECIPE_RAW_MAX - pl->raw.len : n;
		if ((r = dimg_buf_append(&pl->raw, s, k)) == 0 &&
		    pl->raw.len == DIMG_RECIPE_RAW_MAX)
			r = lp_flush(pl);
		s += k;
		n -= k;
	}
	return r;
}

static int lp_plain_content(void *ctx, const uint8_t sha256[32], uint64_t size)
{
	struct lp_plain *pl = ctx;
	uint8_t rec[41] = {DIMG_RECIPE_FILE};
	for (int i = 0; i < 8; i++)
		rec[1 + i] = (uint8_t)(size >> (8 * i));
	memcpy(rec + 9, sha256, 32);
	int r = lp_flush(pl);
	return r < 0 ? r : dimg_buf_append(pl->out, rec, 41);
}

/* One plain record (0..3) of m, its type byte t read, copied to pl. */
static int lp_copy(struct lrec_mem *m, uint8_t t, struct lp_plain *pl)
{
	uint8_t h[41] = {t};
	uint64_t size = 0;
	int data = t == DIMG_RECIPE_RAW || t == DIMG_RECIPE_INLINE, r = 0;
	if (t != DIMG_RECIPE_END)
		r = lrec_mem_read(m, h + 1, t == DIMG_RECIPE_RAW ? 4 : 40);
	for (int i = t == DIMG_RECIPE_RAW ? 4 : 8; r == 0 && t != DIMG_RECIPE_END && i-- > 0;)
		size = size << 8 | h[1 + i];
	if (r < 0 || (data && size > m->n - m->at))
		return -EBADMSG;
	if (t == DIMG_RECIPE_RAW)
		r = lp_plain_bytes(pl, m->p + m->at, (size_t)size);
	else if ((r = lp_flush(pl)) == 0)
		r = dimg_buf_append(pl->out, h, t == DIMG_RECIPE_END ? 1 : 41);
	if (r == 0 && t == DIMG_RECIPE_INLINE)
		r = dimg_buf_append(pl->out, m->p + m->at, (size_t)size);
	if (data)
		m->at += (size_t)size;
	return r;
}

/* The layer's records as plain ones (RAW, FILE, INLINE, END). */
static int lp_plain_layer(const uint8_t *rec, size_t n, const struct dimg_tree *t,
                          struct dimg_buf *out)
{
	struct lp_plain pl = {out, {0}};
	struct lrec_mem m = {rec, n, 0};
	struct lrec_in in = {lrec_mem_read, &m};
	struct lrec_out o = {lp_plain_bytes, lp_plain_content, &pl};
	struct lpred d;
	uint8_t type = 1;
	int r = lpred_init(&d, t);
	while (r == 0 && type != DIMG_RECIPE_END && (r = lrec_mem_read(&m, &type, 1)) == 0)
		r = type <= DIMG_RECIPE_INLINE ? lp_copy(&m, type, &pl)
		                               : lpred_record(&d, type, &in, &o);
	lpred_free(&d);
	dimg_buf_free(&pl.raw);
	return r;
}

static int lp_rewind(void *ctx)
{
	((struct lrec_mem *)ctx)->at = 0;
	return 0;
}

static int lp_append(void *ctx, const void *p, size_t n)
{
	return dimg_buf_append(ctx, p, n);
}

static int lp_append_file(void *ctx, const uint8_t rec[41])
{
	return dimg_buf_append(ctx, rec, 41);
}

int lpred_retarget(const uint8_t *rec, size_t n, const struct dimg_tree *from,
                   const struct dimg_tree *to, struct dimg_buf *out)
{
	struct dimg_buf plain = {0};
	struct tarmodel_dfs dfs = {0};
	struct lenc_stats st;
	int r = lp_plain_layer(rec, n, from, &plain);
	if (r == 0)
		r = tarmodel_dfs_build(&dfs, to);
	if (r == 0) {
		struct lrec_mem m = {plain.data, plain.len, 0};
		struct lenc_src src = {lrec_mem_read, lp_rewind, &m};
		struct lenc_out o = {lp_append, lp_append_file, out};
		r = lenc_layer(&src, to, &dfs, &o, &st);
	}
	tarmodel_dfs_free(&dfs);
	dimg_buf_free(&plain);
	return r;
}

/* ---- what a layer's records stand for, as a digest ---- */

/* Two hashes: of the tar bytes but the contents, and of each content's
 * place, size and SHA-256; equal digests, same layer. */
struct lp_digest {
	struct dimg_sha256 *bytes, *contents;
	uint64_t at;
};

static int lp_digest_bytes(void *ctx, const void *p, size_t n)
{
	struct lp_digest *g = ctx;
	dimg_sha256_update(g->bytes, p, n);
	g->at += n;
	return 0;
}

static int lp_digest_content(void *ctx, const uint8_t sha256[32], uint64_t size)
{
	struct lp_digest *g = ctx;
	uint8_t ev[48];
	for (int i = 0; i < 8; i++) {
		ev[i] = (uint8_t)(g->at >> (8 * i));
		ev[8 + i] = (uint8_t)(size >> (8 * i));
	}
	memcpy(ev + 16, sha256, 32);
	dimg_sha256_update(g->contents, ev, sizeof(ev));
	g->at += size;
	return 0;
}

/* One record 0..3 (type t read) into the digest. */
static int lp_digest_plain(const struct lrec_in *in, uint8_t t, const struct lrec_out *o)
{
	uint8_t h[40], buf[LP_CHUNK];
	uint64_t n = 0;
	int r = in->read(in->ctx, h, t == DIMG_RECIPE_RAW ? 4 : 40);
	for (int i = t == DIMG_RECIPE_RAW ? 4 : 8; r == 0 && i-- > 0;)
		n = n << 8 | h[i];
	if (r == 0 && t != DIMG_RECIPE_RAW)
		r = n ? o->content(o->ctx, h + 8, n) : -EBADMSG;
	if (t == DIMG_RECIPE_FILE)
		return r;
	while (r == 0 && n) {
		size_t k = n < sizeof(buf) ? (size_t)n : sizeof(buf);
		if ((r = in->read(in->ctx, buf, k)) == 0 && t == DIMG_RECIPE_RAW)
			r = o->bytes(o->ctx, buf, k);
		n -= k;
	}
	return r;
}

int lpred_digest(const struct lrec_in *in, const struct dimg_tree *t, uint8_t out[64])
{
	struct lp_digest g = {0};
	struct lrec_out o = {lp_digest_bytes, lp_digest_content, &g};
	struct lpred d;
	uint8_t type = DIMG_RECIPE_RAW;
	int r = t ? lpred_init(&d, t) : 0;
	if (!t)
		memset(&d, 0, sizeof(d));
	if (r == 0 && (r = dimg_sha256_new(&g.bytes)) == 0)
		r = dimg_sha256_new(&g.contents);
	while (r == 0 && (r = in->read(in->ctx, &type, 1)) == 0 && type != DIMG_RECIPE_END)
		r = type <= DIMG_RECIPE_INLINE ? lp_digest_plain(in, type, &o)
		    : t                        ? lpred_record(&d, type, in, &o)
		                               : -EBADMSG;
	if (r == 0) {
		dimg_sha256_final(g.bytes, out);
		dimg_sha256_final(g.contents, out + 32);
	}
	dimg_sha256_free(g.bytes);
	dimg_sha256_free(g.contents);
	lpred_free(&d);
	return r;
}
