/* Merging, the index: a delta in memory (its ops and explicit entries),
 * and two deltas' runs composed position by position (docs/merge.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "merge-internal.h"

void mdelta_free(struct mdelta *d)
{
	if (!d)
		return;
	for (size_t i = 0; d->x && i < d->x->n; i++)
		dimg_buf_free(&d->blobs[i].own);
	free(d->blobs);
	free(d->ops);
	dimg_tree_free(d->x);
	free(d);
}

int mdelta_new(struct mdelta **out)
{
	struct mdelta *d = calloc(1, sizeof(*d));
	int r = d ? dimg_tree_new(&d->x) : -ENOMEM;
	if (r < 0) {
		free(d);
		return r;
	}
	*out = d;
	return 0;
}

/* Appends an op, joining runs of the same kind. */
int mdelta_op(struct mdelta *d, uint8_t kind, uint32_t count)
{
	struct dimg_index_op *last = d->nops ? &d->ops[d->nops - 1] : NULL;
	if (kind != DIMG_INDEX_ENTRY && last && last->kind == kind &&
	    last->count <= UINT32_MAX - count) {
		last->count += count;
		return 0;
	}
	if (d->nops == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 256;
		struct dimg_index_op *v = realloc(d->ops, ncap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		d->ops = v;
		d->cap = ncap;
	}
	d->ops[d->nops++] = (struct dimg_index_op){kind, count};
	return 0;
}

/* Appends an explicit entry (moved in) with its blob (moved in) and its op. */
static int mdelta_entry(struct mdelta *d, struct dimg_entry *e, struct mblob *b)
{
	if (d->x->n == d->bcap) {
		size_t ncap = d->bcap ? d->bcap * 2 : 256;
		struct mblob *v = realloc(d->blobs, ncap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		d->blobs = v;
		d->bcap = ncap;
	}
	if (d->x->n >= UINT32_MAX)
		return -EOVERFLOW;
	int r = mdelta_op(d, DIMG_INDEX_ENTRY, (uint32_t)d->x->n);
	if (!r)
		r = dimg_tree_append_move(d->x, e);
	if (r < 0)
		return r;
	d->blobs[d->x->n - 1] = *b;
	memset(b, 0, sizeof(*b));
	return 0;
}

int merge_has_blob(const struct dimg_entry *e)
{
	return e->payload == DIMG_PAYLOAD_FULL || e->payload == DIMG_PAYLOAD_PATCH;
}

int mdelta_from_reader(struct mdelta **out, const struct dimg_reader *rd, struct mctx *c)
{
	const struct dimg_tree *x = dimg_reader_explicit(rd);
	struct dimg_index_stats st;
	struct mdelta *d = NULL;
	size_t nops;
	const struct dimg_index_op *ops = dimg_reader_ops(rd, &nops);
	int r = mdelta_new(&d);
	for (size_t k = 0; !r && k < nops; k++) {
		struct mblob b = {0};
		struct dimg_entry e;
		if (ops[k].kind != DIMG_INDEX_ENTRY) {
			r = mdelta_op(d, ops[k].kind, ops[k].count);
			continue;
		}
		const struct dimg_entry *src = &x->v[ops[k].count];
		if (merge_has_blob(src) && (r = dimg_reader_blob(rd, src, &b.p, &b.len)) < 0) {
			r = merge_fail(c, r, "%s: blob does not match its checksum", src->path);
			break;
		}
		if ((r = dimg_entry_copy(&e, src)) < 0)
			break;
		b.dict = (src->flags & DIMG_ENTRY_ZDICT) ? rd : NULL;
		if ((r = mdelta_entry(d, &e, &b)) < 0)
			dimg_entry_clear(&e);
	}
	if (r < 0) {
		mdelta_free(d);
		return r;
	}
	dimg_reader_stats(rd, &st);
	memcpy(d->base_id, dimg_reader_base_id(rd), 32);
	memcpy(d->target_id, dimg_reader_target_id(rd), 32);
	d->entries = st.entries;
	*out = d;
	return 0;
}

/* Cursor over A's target entries (v2 positions), in order. */
struct acur {
	const struct mdelta *a;
	size_t k;
	uint32_t used;
};

enum { V2_KEPT = 1, V2_EXPLICIT = 2 };

/* The next v2 entry: kept from v1 or explicit (*xi); A's SKIPs on the way
 * go to C. */
static int acur_next(struct acur *u, struct mdelta *C, size_t *xi)
{
	while (u->k < u->a->nops) {
		const struct dimg_index_op *op = &u->a->ops[u->k];
		int r;
		if (op->kind == DIMG_INDEX_SKIP) {
			if ((r = mdelta_op(C, DIMG_INDEX_SKIP, op->count)) < 0)
				return r;
			u->k++;
		} else if (op->kind == DIMG_INDEX_ENTRY) {
			*xi = op->count;
			u->k++;
			return V2_EXPLICIT;
		} else {
			if (++u->used == op->count)
				u->k++, u->used = 0;
			return V2_KEPT;
		}
	}
	return -EBADMSG;
}

/* Copies A's explicit entry xi into C. */
static int copy_explicit(struct mdelta *C, const struct mdelta *A, size_t xi)
{
	struct mblob b = {.p = A->blobs[xi].p,
	                  .len = A->blobs[xi].len,
	                  .fast = A->blobs[xi].fast,
	                  .dict = A->blobs[xi].dict};
	struct dimg_entry e;
	int r = dimg_entry_copy(&e, &A->x->v[xi]);
	if (!r && (r = mdelta_entry(C, &e, &b)) < 0)
		dimg_entry_clear(&e);
	return r;
}

/* B's KEEP or SKIP of n v2 entries. */
static int merge_run(struct mctx *c, struct acur *u, struct mdelta *C, uint8_t kind, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		size_t xi = 0;
		int r = acur_next(u, C, &xi);
		if (r == -EBADMSG)
			return merge_fail(c, r, "its index runs past the previous delta's target");
		if (r == V2_KEPT)
			r = mdelta_op(C, kind, 1);
		else if (r == V2_EXPLICIT && kind == DIMG_INDEX_KEEP)
			r = copy_explicit(C, u->a, xi);
		else if (r == V2_EXPLICIT)
			r = 0;
		if (r < 0)
			return r;
	}
	return 0;
}

static int merge_explicit(struct mctx *c, const struct mdelta *A, const struct mdelta *B,
                          struct mdelta *C, size_t xi)
{
	struct mblob b = {.p = B->blobs[xi].p, .len = B->blobs[xi].len, .dict = B->blobs[xi].dict};
	struct dimg_entry e;
	int r = dimg_entry_copy(&e, &B->x->v[xi]);
	if (r < 0)
		return r;
	r = merge_compose_entry(c, A, &e, &b);
	if (!r)
		r = mdelta_entry(C, &e, &b);
	merge_progress(c, "merging", ++c->done, c->total);
	if (r < 0) {
		dimg_entry_clear(&e);
		dimg_buf_free(&b.own);
	}
	return r;
}

/* C = A then B, as one delta from A's base to B's target. */
int merge_pair(struct mctx *c, const struct mdelta *A, const struct mdelta *B, struct mdelta **out)
{
	struct acur u = {A, 0, 0};
	struct mdelta *C = NULL;
	int r = mdelta_new(&C);
	for (size_t k = 0; !r && k < B->nops; k++) {
		const struct dimg_index_op *op = &B->ops[k];
		if (op->kind == DIMG_INDEX_ENTRY)
			r = merge_explicit(c, A, B, C, op->count);
		else
			r = merge_run(c, &u, C, op->kind, op->count);
	}
	/* What is left of A must be entries B dropped: SKIPs only. */
	for (; !r && u.k < A->nops; u.k++) {
		if (A->ops[u.k].kind != DIMG_INDEX_SKIP)
			r = merge_fail(c, -EBADMSG,
			               "its index ends before the previous delta's target");
		else
			r = mdelta_op(C, DIMG_INDEX_SKIP, A->ops[u.k].count);
	}
	if (r < 0) {
		mdelta_free(C);
		return r;
	}
	memcpy(C->base_id, A->base_id, 32);
	memcpy(C->target_id, B->target_id, 32);
	C->entries = B->entries;
	*out = C;
	return 0;
}
