/* Merging a chain of .dimg deltas into one (docs/merge.md). The deltas are
 * folded left to right in memory: the accumulated delta v1->vk and the next
 * one vk->vk+1 give v1->vk+1. Blobs are borrowed from the inputs' mappings
 * unless composition made new ones. Then the blobs are finished, one
 * dictionary kept, and the result written. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dimg/hash.h"
#include "merge-internal.h"
#include "packer.h"

void merge_progress(struct mctx *c, const char *what, uint64_t done, uint64_t total)
{
	if (c->o->progress)
		c->o->progress(c->o->progress_ctx, what, done, total);
}

int merge_fail(struct mctx *c, int rc, const char *fmt, ...)
{
	char why[DIMG_ERR_WHY_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return dimg_err_set(c->err, rc, c->name, "%s", why);
}

int merge_failed(const struct mctx *c)
{
	return c->err && (c->err->what[0] || c->err->why[0]);
}

/* With the base: a stored file whose content is its source's in v1 (the
 * chain came back: a downgrade, a reverted change) becomes SAME, no blob.
 * Sizes and SHA-256 are compared; the base tree's hashes are v1's. */
static int same_as_base(struct mctx *c, struct dimg_entry *e, struct mblob *b)
{
	if (e->type != DIMG_TYPE_REG || !merge_has_blob(e))
		return 0;
	const char *src = e->payload == DIMG_PAYLOAD_PATCH ? merge_src_of(e) : e->path;
	const struct dimg_entry *be = dimg_tree_find(c->o->base, src);
	if (!be || be->type != DIMG_TYPE_REG || be->size != e->size ||
	    memcmp(be->sha256, e->sha256, 32))
		return 0;
	return merge_make_same(c, e, b, src) == 0; /* no memory: keeping the blob is correct too */
}

/* Blobs an intermediate fold compressed fast, recompressed at their level. */
static int finish_blobs(struct mctx *c, struct mdelta *d)
{
	int r = 0;
	for (size_t i = 0; !r && i < d->x->n; i++) {
		struct dimg_entry *e = &d->x->v[i];
		struct mblob *b = &d->blobs[i];
		struct dimg_buf out = {0}, raw = {0};
		merge_progress(c, "finishing", i + 1, d->x->n);
		if (c->o->base && same_as_base(c, e, b))
			continue;
		if (c->o->base && e->payload == DIMG_PAYLOAD_PATCH &&
		    e->codec == DIMG_CODEC_CHAIN) {
			r = merge_maybe_reencode(c, e, b);
			continue;
		}
		if (!b->fast)
			continue;
		if (e->payload == DIMG_PAYLOAD_FULL) {
			r = merge_full_decode(b, &raw);
			if (!r)
				r = dimg_zstd_encode(raw.data, raw.len, merge_level_for(c, e),
				                     &out);
		} else {
			r = merge_repack(e->codec, b->p, b->len, merge_level_for(c, e), &out);
		}
		if (!r) {
			merge_mblob_take(b, &out);
			b->fast = 0;
		}
		dimg_buf_free(&raw);
		dimg_buf_free(&out);
	}
	return r;
}

/* The one dictionary the output keeps: the input delta whose dictionary
 * compresses the most bytes of the merged delta's blobs (the first such
 * input on a tie); the other dictionary blobs become plain frames. */
static int pick_dict(struct mctx *c, struct dimg_reader *const *rds, size_t n, struct mdelta *d,
                     const struct dimg_reader **keep)
{
	uint64_t best = 0;
	int r = 0;
	*keep = NULL;
	for (size_t k = 0; k < n; k++) {
		uint64_t bytes = 0;
		for (size_t i = 0; i < d->x->n; i++)
			bytes += d->blobs[i].dict == rds[k] ? d->blobs[i].len : 0;
		if (bytes > best)
			best = bytes, *keep = rds[k];
	}
	for (size_t i = 0; !r && i < d->x->n; i++)
		if (d->blobs[i].dict && d->blobs[i].dict != *keep)
			r = merge_undict(c, &d->x->v[i], &d->blobs[i]);
	return r;
}

/* ---- writing ---- */

struct mwrite {
	struct mdelta *d;
	struct merge_stats *st;
	const struct dimg_reader *dict; /* whose dictionary the output keeps */
};

/* Blobs already written, by content: identical blobs (the same file
 * patched the same way at two paths) are written once and shared, as the
 * packer does. Open addressing over the XXH3. */
struct blobset {
	size_t *slot; /* explicit entry index + 1; 0 empty */
	size_t mask;
};

static int blobset_init(struct blobset *bs, size_t n)
{
	size_t cap = 16;
	while (cap < 2 * n)
		cap *= 2;
	bs->slot = calloc(cap, sizeof(*bs->slot));
	bs->mask = cap - 1;
	return bs->slot ? 0 : -ENOMEM;
}

/* The earlier entry with the same blob bytes as entry i, or -1 (i is then
 * recorded). */
static ssize_t blobset_find(struct blobset *bs, const struct mdelta *d, size_t i, uint64_t h)
{
	const struct mblob *b = &d->blobs[i];
	for (size_t k = h & bs->mask;; k = (k + 1) & bs->mask) {
		size_t j = bs->slot[k];
		if (j == 0) {
			bs->slot[k] = i + 1;
			return -1;
		}
		const struct mblob *o = &d->blobs[j - 1];
		if (d->x->v[j - 1].blob_xxh3 == h && d->x->v[j - 1].flags == d->x->v[i].flags &&
		    o->len == b->len && !memcmp(o->p, b->p, b->len))
			return (ssize_t)(j - 1);
	}
}

static int write_blob(struct dimg_writer *w, struct blobset *bs, struct mdelta *d, size_t i)
{
	struct dimg_entry *e = &d->x->v[i];
	const struct mblob *b = &d->blobs[i];
	uint64_t h = dimg_xxh3(b->p, b->len);
	e->blob_xxh3 = h;
	e->blob_len = b->len;
	ssize_t j = blobset_find(bs, d, i, h);
	if (j >= 0) {
		e->blob_off = d->x->v[j].blob_off;
		return 0;
	}
	return dimg_writer_add_blob(w, b->p, b->len, &e->blob_off, &e->blob_xxh3);
}

static int mwrite_fill(int fd, void *ctx)
{
	struct mwrite *m = ctx;
	struct mdelta *d = m->d;
	struct dimg_writer *w = NULL;
	struct blobset bs = {0};
	int r = blobset_init(&bs, d->x->n);
	if (!r)
		r = dimg_writer_new(&w, fd, d->base_id, d->target_id);
	if (!r && m->dict) {
		const uint8_t *p;
		size_t len;
		dimg_reader_dict(m->dict, &p, &len);
		r = dimg_writer_add_dict(w, p, len);
	}
	for (size_t i = 0; !r && i < d->x->n; i++) {
		struct dimg_entry *e = &d->x->v[i];
		if (merge_has_blob(e))
			r = write_blob(w, &bs, d, i);
		else
			e->blob_off = e->blob_len = e->blob_xxh3 = 0;
	}
	if (!r)
		r = dimg_writer_finish_ops(w, d->ops, d->nops, d->x, d->entries);
	if (!r)
		dimg_counts_ops(&m->st->counts, d->ops, d->nops, d->x, d->entries);
	if (!r)
		m->st->output_size = dimg_writer_offset(w);
	dimg_writer_free(w);
	free(bs.slot);
	return r;
}

void merge_opts_default(struct merge_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->level = 12;
	o->large_level = 9;
	o->large_size = 1u << 20;
	differ_opts_default(&o->diff);
	o->reencode_ratio = 2.0;
}

static int check_link(struct mctx *c, struct dimg_reader *const *rds, const char *const *names,
                      size_t i)
{
	char want[65], got[65];
	if (memcmp(dimg_reader_base_id(rds[i]), dimg_reader_target_id(rds[i - 1]), 32) == 0)
		return 0;
	dimg_hex32(dimg_reader_target_id(rds[i - 1]), want);
	dimg_hex32(dimg_reader_base_id(rds[i]), got);
	return merge_fail(c, -EXDEV,
	                  "does not follow %s: its base tree is %.12s, %s produces tree %.12s "
	                  "(wrong order, or a delta missing in between?)",
	                  names[i - 1], got, names[i - 1], want);
}

static int check_base(struct mctx *c, struct dimg_reader *rd0)
{
	uint8_t id[32];
	char want[65], got[65];
	int r = dimg_tree_id(c->o->base, id);
	if (r < 0 || memcmp(id, dimg_reader_base_id(rd0), 32) == 0)
		return r;
	dimg_hex32(dimg_reader_base_id(rd0), want);
	dimg_hex32(id, got);
	return merge_fail(c, -EXDEV, "the base given has tree %.12s, the delta needs %.12s", got,
	                  want);
}

static int fold(struct mctx *c, struct dimg_reader *const *rds, const char *const *names, size_t n,
                struct mdelta **all)
{
	int r = 0;
	c->name = names[0];
	if (c->o->base && (r = check_base(c, rds[0])) < 0)
		return r;
	for (size_t i = 1; !r && i < n; i++) {
		c->name = names[i];
		r = check_link(c, rds, names, i);
		c->total += dimg_reader_explicit(rds[i])->n;
	}
	for (size_t i = 0; !r && i < n; i++) {
		c->name = names[i];
		c->final_ = i + 1 == n;
		r = mdelta_from_reader(&all[2 * i], rds[i], c);
		if (!r && i > 0)
			r = merge_pair(c, i == 1 ? all[0] : all[2 * i - 1], all[2 * i],
			               &all[2 * i + 1]);
	}
	return r;
}

int merge_write_dimg(const char *out_path, struct dimg_reader *const *rds, const char *const *names,
                     size_t n, const struct merge_opts *o, struct merge_stats *st,
                     struct dimg_err *err)
{
	struct mctx c = {.o = o, .st = st, .name = out_path, .err = err};
	/* all[2i]: input i; all[2i+1]: inputs 0..i merged. Kept alive to the
	 * end: later results borrow blobs from earlier ones. */
	struct mdelta **all = calloc(2 * n + 1, sizeof(*all));
	int r = all && n > 0 ? 0 : (all ? -EINVAL : -ENOMEM);
	memset(st, 0, sizeof(*st));
	if (!r)
		r = fold(&c, rds, names, n, all);
	struct mwrite m = {r ? NULL : n == 1 ? all[0] : all[2 * n - 1], st, NULL};
	if (!r)
		r = finish_blobs(&c, m.d);
	if (!r)
		r = pick_dict(&c, rds, n, m.d, &m.dict);
	if (!r) {
		c.name = out_path;
		r = packer_write_atomic(out_path, o->out_flags, mwrite_fill, &m, err);
	}
	for (size_t i = 0; all && i < 2 * n + 1; i++)
		mdelta_free(all[i]);
	free(all);
	return r;
}
