/* Writing layer recipes version 2 (docs/FORMAT.md "Predicted entries"):
 * a layer's plain records (its tar bytes as RAW, contents as FILE) become,
 * entry by entry, "as the writer model predicts from this tree entry",
 * a small patch of that prediction, or the plain records again. Every
 * prediction is decoded back and compared before it is used, so the
 * records always give the layer's exact bytes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dimg/image.h"
#include "dimg/tar.h"
#include "layers-internal.h"

#define LE_RAW_MAX   (64u << 10)
#define LE_CHUNK     4096u
#define LE_TRIAL     2000u /* entries a candidate model is tried on */
#define LE_ZEROS_MIN 16u   /* shorter zero runs stay RAW */

struct le_content {
	int has;         /* a FILE or INLINE record follows the header */
	uint8_t rec[41]; /* its head */
	int pad_zero;    /* FILE: its padding is zeros (read) */
	size_t pad;
};

struct le {
	const struct lenc_src *src;
	const struct lenc_out *out;
	const struct dimg_tree *tree;
	struct tarmodel m;
	int model_written;
	/* input */
	uint32_t raw_left;
	int have_type;
	uint8_t type;
	/* output */
	struct dimg_buf raw; /* RAW bytes not yet written */
	uint64_t run;        /* exact entries not yet written */
	/* the entry at hand */
	struct dimg_buf unit, pred, patch, alt, check, path;
	int64_t pax_size;
	int pax_sparse;
	uint8_t htype; /* its main header's type */
	uint64_t size; /* its data size */
	uint8_t padbuf[TARMODEL_BLOCK];
	struct lenc_stats st;
	uint64_t limit;  /* stop after this many entries (trials), 0: never */
	int have_prefix; /* the name prefix of the layer's first entry but the root */
	uint8_t plen;
	char prefix[2];
};

/* ---- tar headers as the layer has them ---- */

/* The value of the last record with key k in PAX data, or NULL. */
static const uint8_t *le_pax(const uint8_t *p, size_t n, const char *k, size_t *vn)
{
	const uint8_t *v = NULL, *kv;
	size_t kn = strlen(k), kvn, i = 0;
	while (dimg_tar_pax_next(p, n, &i, &kv, &kvn))
		if (kvn > kn && !memcmp(kv, k, kn) && kv[kn] == '=') {
			v = kv + kn + 1;
			*vn = kvn - kn - 1;
		}
	return v;
}

/* The entry's path as the tree spells it: the GNU long name, the PAX
 * path, or prefix/name of the main header; "./" and "/" in front and
 * "/" behind removed. */
static int le_path(struct le *e)
{
	const uint8_t *u = e->unit.data, *s = NULL, *h = u + e->unit.len - TARMODEL_BLOCK;
	size_t n = 0, off = 0;
	struct dimg_buf *b = &e->path;
	b->len = 0;
	while (off + TARMODEL_BLOCK < e->unit.len) {
		uint64_t size = 0;
		if (dimg_tar_num(u + off + DIMG_TAR_SIZE, 12, &size) < 0)
			break;
		const uint8_t *d = u + off + TARMODEL_BLOCK, *v;
		size_t vn = 0;
		if (u[off + DIMG_TAR_TYPE] == 'L') {
			s = d;
			n = strnlen((const char *)d, (size_t)size);
		} else if (u[off + DIMG_TAR_TYPE] == 'x' &&
		           (v = le_pax(d, (size_t)size, "path", &vn))) {
			s = v;
			n = vn;
		}
		off += TARMODEL_BLOCK +
		       (size_t)(size + TARMODEL_BLOCK - 1) / TARMODEL_BLOCK * TARMODEL_BLOCK;
	}
	int r = 0;
	if (!s && !memcmp(h + DIMG_TAR_MAGIC, "ustar\0", 6) && h[DIMG_TAR_PREFIX]) {
		const char *pre = (const char *)h + DIMG_TAR_PREFIX;
		r = dimg_buf_append(b, pre, strnlen(pre, 155));
		if (r == 0)
			r = dimg_buf_append(b, "/", 1);
	}
	if (r == 0)
		r = s ? dimg_buf_append(b, s, n)
		      : dimg_buf_append(b, h, strnlen((const char *)h, 100));
	return r < 0 ? r : dimg_buf_append(b, "", 1);
}

/* Notes the prefix ("./", "/" or none) of the first name that is not the
 * root's: a writer may name the root "./" and the others without "./". */
static void le_note_prefix(struct le *e)
{
	const char *s = (const char *)e->path.data;
	uint8_t n = s[0] == '/' ? 1 : s[0] == '.' && s[1] == '/' ? 2 : 0;
	const char *rest = s + n;
	if (e->have_prefix || !rest[0] || !strcmp(rest, ".") || !strcmp(rest, "./"))
		return;
	e->have_prefix = 1;
	e->plen = n;
	memcpy(e->prefix, s, n);
}

static ssize_t le_lookup(struct le *e)
{
	char *p = (char *)e->path.data;
	size_t n = strlen(p);
	while (n && p[n - 1] == '/')
		p[--n] = 0;
	for (;;) {
		if (p[0] == '/')
			p++;
		else if (p[0] == '.' && (p[1] == '/' || !p[1]))
			p += p[1] ? 2 : 1;
		else
			break;
	}
	return dimg_tree_index(e->tree, p);
}

/* ---- reading the plain records ---- */

static int in_read(struct le *e, void *p, size_t n)
{
	return e->src->read(e->src->ctx, p, n);
}

/* The next record's type (RAW while inside RAW bytes), not consumed. */
static int in_type(struct le *e, uint8_t *t)
{
	int r = 0;
	if (e->raw_left) {
		*t = DIMG_RECIPE_RAW;
		return 0;
	}
	if (!e->have_type && (r = in_read(e, &e->type, 1)) == 0)
		e->have_type = 1;
	*t = e->type;
	return r;
}

/* Up to n bytes of the RAW stream; fewer (*got) when another record comes. */
static int in_raw(struct le *e, uint8_t *p, size_t n, size_t *got)
{
	uint8_t t, l[4];
	int r = 0;
	for (*got = 0; r == 0 && *got < n;) {
		if (!e->raw_left) {
			if ((r = in_type(e, &t)) < 0 || t != DIMG_RECIPE_RAW)
				return r;
			if ((r = in_read(e, l, 4)) < 0)
				return r;
			e->raw_left = (uint32_t)l[0] | (uint32_t)l[1] << 8 | (uint32_t)l[2] << 16 |
			              (uint32_t)l[3] << 24;
			e->have_type = 0;
			if (e->raw_left == 0 || e->raw_left > LE_RAW_MAX)
				return -EBADMSG;
		}
		size_t k = n - *got < e->raw_left ? n - *got : e->raw_left;
		if ((r = in_read(e, p + *got, k)) == 0) {
			e->raw_left -= (uint32_t)k;
			*got += k;
		}
	}
	return r;
}

static uint64_t rec_size(const uint8_t *rec)
{
	uint64_t v = 0;
	for (int i = 8; i-- > 0;)
		v = v << 8 | rec[1 + i];
	return v;
}

/* ---- writing records ---- */

static int out_write(struct le *e, const void *p, size_t n)
{
	return e->out->write(e->out->ctx, p, n);
}

static int flush_raw(struct le *e)
{
	uint8_t h[5] = {DIMG_RECIPE_RAW};
	size_t n = e->raw.len;
	if (!n)
		return 0;
	for (int i = 0; i < 4; i++)
		h[1 + i] = (uint8_t)(n >> (8 * i));
	e->raw.len = 0;
	e->st.raw_bytes += n;
	int r = out_write(e, h, sizeof(h));
	return r < 0 ? r : out_write(e, e->raw.data, n);
}

static int put_var_rec(struct le *e, uint8_t type, uint64_t v)
{
	struct dimg_buf b = {0};
	int r = dimg_buf_append(&b, &type, 1);
	if (r == 0)
		r = lvar_put(&b, v);
	if (r == 0)
		r = out_write(e, b.data, b.len);
	dimg_buf_free(&b);
	return r;
}

static int flush_run(struct le *e)
{
	uint64_t n = e->run;
	e->run = 0;
	return n ? put_var_rec(e, LAYERS_REC_ENTRIES, n) : 0;
}

/* Before any other record: what is pending, in order. */
static int flush_all(struct le *e)
{
	int r = flush_run(e);
	return r < 0 ? r : flush_raw(e);
}

static int emit_raw(struct le *e, const uint8_t *p, size_t n)
{
	int r = flush_run(e);
	while (r == 0 && n) {
		size_t k = LE_RAW_MAX - e->raw.len < n ? LE_RAW_MAX - e->raw.len : n;
		if ((r = dimg_buf_append(&e->raw, p, k)) == 0 && e->raw.len == LE_RAW_MAX)
			r = flush_raw(e);
		p += k;
		n -= k;
	}
	return r;
}

static int emit_zeros(struct le *e, uint64_t n)
{
	static const uint8_t zero[LE_ZEROS_MIN];
	if (n < LE_ZEROS_MIN)
		return emit_raw(e, zero, (size_t)n);
	int r = flush_all(e);
	while (r == 0 && n) {
		uint64_t k = n < LAYERS_ZEROS_MAX ? n : LAYERS_ZEROS_MAX;
		r = put_var_rec(e, LAYERS_REC_ZEROS, k);
		n -= k;
	}
	return r;
}

static int ensure_model(struct le *e)
{
	const struct tarmodel_params *p = &e->m.p;
	uint8_t h[4 + TARMODEL_PREFIX_MAX] = {LAYERS_REC_MODEL, p->writer, p->order, p->plen};
	if (e->model_written)
		return 0;
	e->model_written = 1;
	memcpy(h + 4, p->prefix, p->plen);
	int r = flush_all(e);
	return r < 0 ? r : out_write(e, h, 4u + p->plen);
}

/* A content record of the input, passed on: FILE through the output's
 * choice, INLINE with its bytes. */
static int pass_content(struct le *e, const uint8_t *rec)
{
	uint8_t buf[LE_CHUNK];
	int r = flush_all(e);
	if (r < 0 || rec[0] == DIMG_RECIPE_FILE)
		return r < 0 ? r : e->out->file(e->out->ctx, rec);
	r = out_write(e, rec, 41);
	for (uint64_t left = rec_size(rec); r == 0 && left;) {
		size_t k = left < sizeof(buf) ? (size_t)left : sizeof(buf);
		if ((r = in_read(e, buf, k)) == 0)
			r = out_write(e, buf, k);
		left -= k;
	}
	return r;
}

static int take_content(struct le *e, uint8_t *rec)
{
	int r = in_read(e, rec + 1, 40);
	rec[0] = e->type;
	e->have_type = 0;
	return r == 0 && rec_size(rec) == 0 ? -EBADMSG : r;
}

/* The rest of the layer as it is (the framing is lost or unmodelled). */
static int copy_rest(struct le *e)
{
	uint8_t buf[LE_CHUNK], rec[41], t;
	for (;;) {
		size_t got;
		int r = in_raw(e, buf, sizeof(buf), &got);
		if (r == 0)
			r = emit_raw(e, buf, got);
		if (r < 0)
			return r;
		if (got == sizeof(buf))
			continue;
		if ((r = in_type(e, &t)) < 0)
			return r;
		if (t == DIMG_RECIPE_END) {
			e->have_type = 0;
			if ((r = flush_all(e)) == 0)
				r = out_write(e, &t, 1);
			return r;
		}
		if (t != DIMG_RECIPE_FILE && t != DIMG_RECIPE_INLINE)
			return -EBADMSG;
		if ((r = take_content(e, rec)) < 0 || (r = pass_content(e, rec)) < 0)
			return r;
	}
}

/* After the first zero block: zero runs as ZEROS, the rest as it is. */
static int trailer(struct le *e)
{
	uint8_t buf[LE_CHUNK];
	uint64_t zeros = TARMODEL_BLOCK;
	size_t got;
	int r;
	do {
		if ((r = in_raw(e, buf, sizeof(buf), &got)) < 0)
			return r;
		for (size_t i = 0; r == 0 && i < got;) {
			size_t j = i;
			while (j < got && buf[j] == 0)
				j++;
			zeros += j - i;
			if (j == got)
				break;
			if ((r = emit_zeros(e, zeros)) == 0)
				r = emit_raw(e, buf + j, 1);
			zeros = 0;
			i = j + 1;
		}
	} while (r == 0 && got == sizeof(buf));
	if (r == 0 && zeros)
		r = emit_zeros(e, zeros);
	return r < 0 ? r : copy_rest(e);
}

enum le_unit { LE_ENTRY, LE_END, LE_LOST };

/* Reads one entry's header bytes (extension headers and their data, then
 * the main header) into e->unit. */
static int read_unit(struct le *e, enum le_unit *kind)
{
	static const uint8_t zero[TARMODEL_BLOCK];
	uint64_t size;
	size_t got;
	int r;
	e->unit.len = 0;
	e->pax_size = -1;
	e->pax_sparse = 0;
	for (*kind = LE_LOST;;) {
		if ((r = dimg_buf_reserve(&e->unit, TARMODEL_BLOCK)) < 0 ||
		    (r = in_raw(e, e->unit.data + e->unit.len, TARMODEL_BLOCK, &got)) < 0)
			return r;
		const uint8_t *h = e->unit.data + e->unit.len;
		e->unit.len += got;
		if (got < TARMODEL_BLOCK)
			return 0;
		if (!memcmp(h, zero, TARMODEL_BLOCK)) {
			*kind = e->unit.len == TARMODEL_BLOCK ? LE_END : LE_LOST;
			return 0;
		}
		if (!dimg_tar_checksum_ok(h) || dimg_tar_num(h + DIMG_TAR_SIZE, 12, &size) < 0)
			return 0;
		e->htype = h[DIMG_TAR_TYPE];
		if (e->htype != 'x' && e->htype != 'g' && e->htype != 'L' && e->htype != 'K')
			break;
		uint64_t all = (size + TARMODEL_BLOCK - 1) / TARMODEL_BLOCK * TARMODEL_BLOCK;
		if (size > TARMODEL_UNIT_MAX || all > TARMODEL_UNIT_MAX - e->unit.len)
			return 0;
		if ((r = dimg_buf_reserve(&e->unit, (size_t)all)) < 0 ||
		    (r = in_raw(e, e->unit.data + e->unit.len, (size_t)all, &got)) < 0)
			return r;
		e->unit.len += got;
		if (got < all)
			return 0;
		if (e->htype == 'x')
			e->pax_size = dimg_tar_pax_size(e->unit.data + e->unit.len - all,
			                                (size_t)size, &e->pax_sparse);
	}
	e->size = e->pax_size >= 0 ? (uint64_t)e->pax_size : size;
	*kind = LE_ENTRY;
	return 0;
}

/* ---- patches ---- */

struct le_ops {
	struct dimg_buf b;
	uint64_t n;
	size_t at; /* predicted bytes consumed */
};

static int op_put(struct le_ops *o, size_t from, size_t del, const uint8_t *ins, size_t nins)
{
	int r = lvar_put(&o->b, from - o->at);
	if (r == 0)
		r = lvar_put(&o->b, del);
	if (r == 0)
		r = lvar_put(&o->b, nins);
	if (r == 0)
		r = dimg_buf_append(&o->b, ins, nins);
	o->at = from + del;
	o->n++;
	return r;
}

/* Runs of differing bytes, merged across fewer than 4 equal ones. */
static int op_same(struct le_ops *o, const uint8_t *p, const uint8_t *a, size_t n, size_t base)
{
	int r = 0;
	for (size_t i = 0; r == 0 && i < n;) {
		if (p[i] == a[i]) {
			i++;
			continue;
		}
		size_t j = i + 1, k;
		for (;;) {
			while (j < n && p[j] != a[j])
				j++;
			for (k = j; k < n && k < j + 4 && p[k] == a[k];)
				k++;
			if (k == n || k == j + 4)
				break;
			j = k;
		}
		r = op_put(o, base + i, j - i, a + i, j - i);
		i = j;
	}
	return r;
}

/* A patch turning p into a: the main headers (last blocks) compared byte
 * by byte, what precedes them too when it has the same length. */
static int le_diff(const struct dimg_buf *p, const struct dimg_buf *a, struct dimg_buf *out)
{
	struct le_ops o = {0};
	size_t hp = p->len - TARMODEL_BLOCK, ha = a->len - TARMODEL_BLOCK, k = 0;
	int r;
	if (hp == ha) {
		r = op_same(&o, p->data, a->data, hp, 0);
	} else {
		while (k < hp && k < ha && p->data[k] == a->data[k])
			k++;
		r = op_put(&o, k, hp - k, a->data + k, ha - k);
	}
	if (r == 0)
		r = op_same(&o, p->data + hp, a->data + ha, TARMODEL_BLOCK, hp);
	out->len = 0;
	if (r == 0)
		r = lvar_put(out, o.n);
	if (r == 0)
		r = dimg_buf_append(out, o.b.data, o.b.len);
	dimg_buf_free(&o.b);
	return r;
}

/* Whether e->patch (read as the reader reads it) turns e->pred into the
 * unit, the main header's checksum set afterwards if csum. */
static int le_patch_ok(struct le *e, int csum)
{
	struct lrec_mem m = {e->patch.data, e->patch.len, 0};
	struct lrec_in in = {lrec_mem_read, &m};
	const struct dimg_buf *c = &e->check;
	if (lpred_patch(&e->pred, &in, &e->check) < 0 || m.at != m.n || c->len != e->unit.len ||
	    c->len % TARMODEL_BLOCK)
		return 0;
	if (csum)
		tarmodel_checksum(c->data + c->len - TARMODEL_BLOCK);
	return !memcmp(c->data, e->unit.data, c->len);
}

/* e->patch and its flags: with the checksum left to the reader when the
 * layer's is the canonical one, else byte for byte. */
static int le_make_patch(struct le *e, unsigned *flags)
{
	size_t at = e->unit.len - TARMODEL_BLOCK + DIMG_TAR_CHKSUM;
	size_t pat = e->pred.len - TARMODEL_BLOCK + DIMG_TAR_CHKSUM;
	e->alt.len = 0;
	int r = dimg_buf_append(&e->alt, e->unit.data, e->unit.len);
	if (r < 0)
		return r;
	memcpy(e->alt.data + at, e->pred.data + pat, 8);
	if ((r = le_diff(&e->pred, &e->alt, &e->patch)) == 0 && le_patch_ok(e, 1)) {
		*flags |= LAYERS_ENTRY_PATCH | LAYERS_ENTRY_CHECKSUM;
		return 0;
	}
	if (r == 0 && (r = le_diff(&e->pred, &e->unit, &e->patch)) == 0 && !le_patch_ok(e, 0))
		r = -EIO; /* a patch that does not give back its input: a bug here */
	*flags |= LAYERS_ENTRY_PATCH;
	return r;
}

/* ---- entries ---- */

enum le_mode { LE_EXACT, LE_PATCHED, LE_RAW };

/* How the unit is written: from tree entry idx (or not at all). */
static int le_choose(struct le *e, ssize_t idx, const struct le_content *c, enum le_mode *mode,
                     unsigned *flags, int *implied)
{
	struct tarmodel_pred pr;
	*mode = LE_RAW;
	*flags = 0;
	*implied = 0;
	e->pred.len = 0;
	if (idx < 0)
		return 0;
	int r = tarmodel_predict(&e->m, (size_t)idx, &e->pred, &pr);
	if (r < 0) /* too long, or an entry no model predicts: as it is */
		return r == -ENOMEM ? r : 0;
	*implied = pr.has_content && c->has && c->rec[0] == DIMG_RECIPE_FILE && c->pad_zero &&
	           rec_size(c->rec) == pr.size && !memcmp(c->rec + 9, pr.sha256, 32);
	if (pr.has_content && !*implied)
		*flags |= LAYERS_ENTRY_NO_CONTENT;
	if (e->pred.len != e->unit.len || memcmp(e->pred.data, e->unit.data, e->unit.len)) {
		if ((r = le_make_patch(e, flags)) < 0)
			return r;
		if (e->patch.len >= e->unit.len / 4) {
			*flags = 0; /* not worth it: as it is */
			*implied = 0;
			return 0;
		}
	}
	int follows = c->has && !*implied;
	*mode = tarmodel_skip_to(&e->m, (size_t)idx) == 0 && !*flags && !follows ? LE_EXACT
	                                                                         : LE_PATCHED;
	return 0;
}

static int le_write_entry(struct le *e, size_t idx, unsigned flags)
{
	struct dimg_buf b = {0};
	uint8_t t = LAYERS_REC_ENTRY, f = (uint8_t)flags;
	int r = flush_all(e);
	if (r == 0)
		r = ensure_model(e);
	if (r == 0)
		r = dimg_buf_append(&b, &t, 1);
	if (r == 0)
		r = lvar_put(&b, lvar_zigzag(tarmodel_skip_to(&e->m, idx)));
	if (r == 0)
		r = dimg_buf_append(&b, &f, 1);
	if (r == 0 && (flags & LAYERS_ENTRY_PATCH))
		r = dimg_buf_append(&b, e->patch.data, e->patch.len);
	if (r == 0)
		r = out_write(e, b.data, b.len);
	dimg_buf_free(&b);
	return r;
}

/* The unit, then what follows it unless implied: content and padding. */
static int le_emit(struct le *e, ssize_t idx, const struct le_content *c)
{
	enum le_mode mode;
	unsigned flags;
	int implied, r = le_choose(e, idx, c, &mode, &flags, &implied);
	if (r < 0)
		return r;
	e->st.entries++;
	if (mode == LE_EXACT || (mode == LE_PATCHED && !(flags & LAYERS_ENTRY_PATCH)))
		e->st.exact++;
	else if (mode == LE_PATCHED)
		e->st.patched++;
	else
		e->st.raw++;
	if (mode == LE_EXACT) {
		if ((r = flush_raw(e)) == 0 && (r = ensure_model(e)) == 0)
			e->run++;
	} else if (mode == LE_PATCHED) {
		r = le_write_entry(e, (size_t)idx, flags);
	} else {
		r = emit_raw(e, e->unit.data, e->unit.len);
	}
	if (r == 0 && mode != LE_RAW)
		tarmodel_commit(&e->m, (size_t)idx, e->unit.data + e->unit.len - TARMODEL_BLOCK);
	if (r < 0 || implied || !c->has)
		return r;
	if ((r = pass_content(e, c->rec)) < 0)
		return r;
	if (c->rec[0] == DIMG_RECIPE_FILE)
		return emit_raw(e, e->padbuf, c->pad);
	size_t got; /* after INLINE bytes: the padding is still to read */
	if ((r = in_raw(e, e->padbuf, c->pad, &got)) == 0 && (r = emit_raw(e, e->padbuf, got)) == 0)
		r = got < c->pad ? 1 : 0;
	return r;
}

/* Data the tree does not model (a type with data other than a regular
 * file's): the unit and the data as they are. 1: the framing is lost. */
static int le_other(struct le *e)
{
	uint8_t buf[LE_CHUNK];
	uint64_t left = (e->size + TARMODEL_BLOCK - 1) / TARMODEL_BLOCK * TARMODEL_BLOCK;
	size_t got = 0;
	int r = emit_raw(e, e->unit.data, e->unit.len);
	e->st.entries++;
	e->st.raw++;
	while (r == 0 && left) {
		size_t k = left < sizeof(buf) ? (size_t)left : sizeof(buf);
		if ((r = in_raw(e, buf, k, &got)) == 0 && (r = emit_raw(e, buf, got)) == 0 &&
		    got < k)
			return 1;
		left -= k;
	}
	return r;
}

/* One entry after its unit. 1: the framing is lost (copy the rest). */
static int le_entry(struct le *e)
{
	struct le_content c = {0};
	uint8_t t = e->htype;
	size_t got;
	int r;
	if (t >= '2' && t <= '6')
		e->size = 0; /* these have no data, whatever the size field says */
	else if ((t != '0' && t != '\0' && t != '7' && e->size) || (e->pax_sparse && e->size))
		return le_other(e); /* data, but not a file's content */
	if (e->size) {
		if ((r = in_type(e, &t)) < 0)
			return r;
		if (t != DIMG_RECIPE_FILE && t != DIMG_RECIPE_INLINE) /* framing lost */
			return (r = emit_raw(e, e->unit.data, e->unit.len)) < 0 ? r : 1;
		if ((r = take_content(e, c.rec)) < 0)
			return r;
		if (rec_size(c.rec) != e->size) { /* likewise */
			if ((r = emit_raw(e, e->unit.data, e->unit.len)) == 0)
				r = pass_content(e, c.rec);
			return r < 0 ? r : 1;
		}
		c.has = 1;
		c.pad = (TARMODEL_BLOCK - e->size % TARMODEL_BLOCK) % TARMODEL_BLOCK;
	}
	if (c.has && c.rec[0] == DIMG_RECIPE_FILE) {
		static const uint8_t zero[TARMODEL_BLOCK];
		if ((r = in_raw(e, e->padbuf, c.pad, &got)) < 0)
			return r;
		if (got < c.pad) /* the framing is lost after the content */
			c.pad = got;
		c.pad_zero = got == (TARMODEL_BLOCK - e->size % TARMODEL_BLOCK) % TARMODEL_BLOCK &&
		             !memcmp(e->padbuf, zero, got);
	}
	if ((r = le_path(e)) < 0)
		return r;
	le_note_prefix(e);
	return le_emit(e, le_lookup(e), &c);
}

static int le_run(struct le *e)
{
	enum le_unit kind;
	for (;;) {
		if (e->limit && e->st.entries >= e->limit)
			return flush_all(e);
		int r = read_unit(e, &kind);
		if (r < 0)
			return r;
		if (kind == LE_END)
			return trailer(e);
		if (kind == LE_LOST) {
			e->st.entries += e->unit.len > 0;
			e->st.raw += e->unit.len > 0;
			r = emit_raw(e, e->unit.data, e->unit.len);
			return r < 0 ? r : copy_rest(e);
		}
		if ((r = le_entry(e)) < 0)
			return r;
		if (r == 1)
			return copy_rest(e);
	}
}

/* ---- choosing the model ---- */

struct le_count {
	uint64_t n;
};

static int count_write(void *ctx, const void *p, size_t n)
{
	(void)p;
	((struct le_count *)ctx)->n += n;
	return 0;
}

static int count_file(void *ctx, const uint8_t rec[41])
{
	(void)rec;
	((struct le_count *)ctx)->n += 41;
	return 0;
}

/* One pass over the layer with params p (up to limit entries). */
static int le_pass(struct le *e, const struct tarmodel_params *p, const struct lenc_out *out,
                   uint64_t limit)
{
	int r = e->src->rewind(e->src->ctx);
	if (r < 0)
		return r;
	tarmodel_reset(&e->m, p);
	e->out = out;
	e->model_written = 0;
	e->raw_left = 0;
	e->have_type = 0;
	e->raw.len = 0;
	e->run = 0;
	e->limit = limit;
	memset(&e->st, 0, sizeof(e->st));
	return le_run(e);
}

/* The name prefix of the layer's first entries (past the root). */
static int le_prefix(struct le *e, const struct lenc_out *dry, struct tarmodel_params *p)
{
	static const struct tarmodel_params any = {.writer = TARMODEL_GNU};
	e->have_prefix = 0;
	int r = le_pass(e, &any, dry, 16);
	p->plen = e->have_prefix ? e->plen : 0;
	memcpy(p->prefix, e->prefix, p->plen);
	return r;
}

static int le_best(struct le *e, const struct tarmodel_dfs *dfs, struct tarmodel_params *best)
{
	struct le_count cnt = {0};
	struct lenc_out dry = {count_write, count_file, &cnt};
	uint64_t least = UINT64_MAX;
	struct tarmodel_params p = {0};
	int r = le_prefix(e, &dry, &p);
	for (p.writer = TARMODEL_GNU; r == 0 && p.writer <= TARMODEL_PYTHON; p.writer++)
		for (p.order = 0; r == 0 && p.order <= (dfs ? TARMODEL_ORDER_DEPTH : 0);
		     p.order++) {
			cnt.n = 0;
			if ((r = le_pass(e, &p, &dry, LE_TRIAL)) == 0 && cnt.n < least) {
				least = cnt.n;
				*best = p;
			}
		}
	return r;
}

int lenc_layer(const struct lenc_src *src, const struct dimg_tree *t,
               const struct tarmodel_dfs *dfs, const struct lenc_out *out, struct lenc_stats *st)
{
	struct le *e = calloc(1, sizeof(*e));
	struct tarmodel_params best;
	int r = e ? tarmodel_init(&e->m, t, dfs) : -ENOMEM;
	if (e) {
		e->src = src;
		e->tree = t;
	}
	if (r == 0)
		r = le_best(e, dfs, &best);
	if (r == 0)
		r = le_pass(e, &best, out, 0);
	if (r == 0)
		*st = e->st;
	if (e) {
		tarmodel_free(&e->m);
		dimg_buf_free(&e->raw);
		dimg_buf_free(&e->unit);
		dimg_buf_free(&e->pred);
		dimg_buf_free(&e->patch);
		dimg_buf_free(&e->alt);
		dimg_buf_free(&e->check);
		dimg_buf_free(&e->path);
	}
	free(e);
	return r;
}
