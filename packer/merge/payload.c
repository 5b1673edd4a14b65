/* Merging a chain of .dimg deltas into one (docs/merge.md). The deltas are
 * folded left to right in memory: the accumulated delta v1->vk and the next
 * one vk->vk+1 give v1->vk+1. Blobs are borrowed from the inputs' mappings
 * unless composition made new ones. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dimg/hash.h"
#include "merge.h"
#include "packer.h"

/* A blob: borrowed bytes, or bytes owned in own. fast: compressed at
 * zstd level 1 by an intermediate fold, to be recompressed at the end.
 * dict: the input delta whose dictionary a FULL blob is compressed with
 * (its entry flagged DIMG_ENTRY_ZDICT), NULL for a plain frame. */
struct mblob {
	const uint8_t *p;
	size_t len;
	struct dimg_buf own;
	int fast;
	const struct dimg_reader *dict;
};

/* A delta in memory: its index ops and explicit entries, one blob each. */
struct mdelta {
	uint8_t base_id[32], target_id[32];
	uint64_t entries;
	struct dimg_index_op *ops;
	size_t nops, cap;
	struct dimg_tree *x;
	struct mblob *blobs;
	size_t bcap;
};

struct mctx {
	const struct merge_opts *o;
	struct merge_stats *st;
	const char *name; /* the delta being folded in */
	char **err;
	int final_;           /* folding in the last delta: blobs at their real level */
	uint64_t done, total; /* explicit entries composed, for progress */
};

static void progress(struct mctx *c, const char *what, uint64_t done, uint64_t total)
{
	if (c->o->progress)
		c->o->progress(c->o->progress_ctx, what, done, total);
}

static int mfail(struct mctx *c, int rc, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL, *full = NULL;
	if (!c->err || *c->err)
		return rc;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg && asprintf(&full, "%s: %s", c->name, msg) < 0)
		full = NULL;
	free(msg);
	*c->err = full;
	return rc;
}

static void mdelta_free(struct mdelta *d)
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

static int mdelta_new(struct mdelta **out)
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
static int mdelta_op(struct mdelta *d, uint8_t kind, uint32_t count)
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

static int has_blob(const struct dimg_entry *e)
{
	return e->payload == DIMG_PAYLOAD_FULL || e->payload == DIMG_PAYLOAD_PATCH;
}

static int mdelta_from_reader(struct mdelta **out, const struct dimg_reader *rd, struct mctx *c)
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
		if (has_blob(src) && (r = dimg_reader_blob(rd, src, &b.p, &b.len)) < 0) {
			r = mfail(c, r, "%s: blob does not match its checksum", src->path);
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

/* ---- file contents (only with a base) ---- */

static int read_fd_all(int fd, struct dimg_buf *out)
{
	for (;;) {
		int r = dimg_buf_reserve(out, 1 << 16);
		if (r < 0)
			return r;
		ssize_t n = read(fd, out->data + out->len, out->cap - out->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		out->len += (size_t)n;
	}
}

/* The content of the first base's regular file at path. */
static int base_content(struct mctx *c, const char *path, struct dimg_buf *out)
{
	const struct dimg_entry *b = dimg_tree_find(c->o->base, path);
	int fd = -1, r;
	if (!b || b->type != DIMG_TYPE_REG)
		return mfail(c, -EBADMSG, "%s: not a regular file of the base", path);
	r = c->o->base_files->open(c->o->base_files->ctx, b, &fd);
	if (r < 0)
		return mfail(c, r, "%s: cannot open in the base", path);
	r = read_fd_all(fd, out);
	close(fd);
	if (!r && out->len != b->size)
		r = mfail(c, -ESTALE, "%s: the base file changed size", path);
	return r;
}

static const char *src_of(const struct dimg_entry *e)
{
	return e->src ? e->src : e->path;
}

/* A FULL blob's content: a plain zstd frame, or one made with its delta's
 * dictionary. */
static int full_decode(const struct mblob *b, struct dimg_buf *out)
{
	if (b->dict)
		return dimg_reader_decode_dict(b->dict, b->p, b->len, dimg_write_buf, out);
	return dimg_zstd_decode(b->p, b->len, dimg_write_buf, out, NULL);
}

/* The content an accumulated (v1-relative) entry gives. */
static int entry_content(struct mctx *c, const struct dimg_entry *e, const struct mblob *b,
                         struct dimg_buf *out)
{
	struct dimg_buf old = {0};
	int r = 0;
	if (e->payload == DIMG_PAYLOAD_EMPTY)
		return 0;
	if (e->payload == DIMG_PAYLOAD_FULL)
		return full_decode(b, out);
	if (!c->o->base)
		return -ENOTSUP;
	r = base_content(c, src_of(e), &old);
	if (!r && e->payload == DIMG_PAYLOAD_SAME)
		r = dimg_buf_append(out, old.data, old.len);
	else if (!r)
		r = dimg_patch_apply(e->codec, old.data, old.len, b->p, b->len, dimg_write_buf, out,
		                     NULL);
	dimg_buf_free(&old);
	return r;
}

/* Applies patch blob b (codec) to content mid. */
static int apply_to(const struct dimg_entry *e, const struct mblob *b, const struct dimg_buf *mid,
                    struct dimg_buf *out)
{
	static const uint8_t none[1];
	return dimg_patch_apply(e->codec, mid->len ? mid->data : none, mid->len, b->p, b->len,
	                        dimg_write_buf, out, NULL);
}

/* Sets e's payload fields; src (NULL for none) is copied. */
static int set_payload(struct dimg_entry *e, uint8_t payload, uint8_t codec, const char *src)
{
	char *copy = NULL;
	if (src && payload != DIMG_PAYLOAD_FULL && payload != DIMG_PAYLOAD_EMPTY &&
	    !(copy = strdup(src)))
		return -ENOMEM;
	free(e->src);
	e->src = copy;
	e->payload = payload;
	e->flags &= (uint8_t)~DIMG_ENTRY_ZDICT; /* a new blob, or none: no dictionary */
	e->codec = payload == DIMG_PAYLOAD_PATCH ? codec : 0;
	return 0;
}

/* Makes own (moved in) b's bytes. */
static void mblob_take(struct mblob *b, struct dimg_buf *own)
{
	dimg_buf_free(&b->own);
	b->own = *own;
	memset(own, 0, sizeof(*own));
	b->p = b->own.data;
	b->len = b->own.len;
	b->dict = NULL;
}

/* zstd's fast negative levels for composed patches of intermediate folds:
 * their streams are decoded by the next fold anyway (-7: a quarter less CPU
 * on a 5-step chain than level 1). */
#define MERGE_FAST_PATCH_LEVEL (-7)

/* The zstd level a blob of e keeps in the output. */
static int real_level(const struct mctx *c, const struct dimg_entry *e)
{
	return e->size >= c->o->large_size ? c->o->large_level : c->o->level;
}

/* Intermediate folds compress fast: the next fold decodes the blob again,
 * and blobs that survive to the end are recompressed (finish_blobs). */
static int level_for(const struct mctx *c, const struct dimg_entry *e)
{
	return c->final_ ? real_level(c, e) : 1;
}

/* A FULL blob compressed with another delta's dictionary than the one
 * the output keeps, made a plain zstd frame at its level. */
static int undict(struct mctx *c, struct dimg_entry *e, struct mblob *b)
{
	struct dimg_buf raw = {0}, z = {0};
	int r = full_decode(b, &raw);
	if (r < 0 && r != -ENOMEM)
		r = mfail(c, r, "%s: its full copy does not decode", e->path);
	if (!r)
		r = dimg_zstd_encode(raw.data, raw.len, real_level(c, e), &z);
	if (!r) {
		mblob_take(b, &z);
		b->fast = 0;
		e->flags &= (uint8_t)~DIMG_ENTRY_ZDICT;
		c->st->undict++;
	}
	dimg_buf_free(&raw);
	dimg_buf_free(&z);
	return r;
}

/* e's new content, stored full. */
static int store_full(struct mctx *c, struct dimg_entry *e, struct mblob *b,
                      const struct dimg_buf *content)
{
	struct dimg_buf z = {0};
	int r = dimg_zstd_encode(content->data, content->len, level_for(c, e), &z);
	if (r < 0)
		return r;
	mblob_take(b, &z);
	b->fast = !c->final_;
	return set_payload(e, DIMG_PAYLOAD_FULL, 0, NULL);
}

/* The base file e is best re-encoded against: the accumulated entry's
 * source, else e's own path; NULL when the base has no such file. */
static const char *reencode_src(struct mctx *c, const struct dimg_entry *e,
                                const struct dimg_entry *a)
{
	const char *src = a && (a->payload == DIMG_PAYLOAD_SAME || a->payload == DIMG_PAYLOAD_PATCH)
	                      ? src_of(a)
	                      : e->path;
	const struct dimg_entry *be = dimg_tree_find(c->o->base, src);
	return be && be->type == DIMG_TYPE_REG ? src : NULL;
}

/* e becomes SAME as v1's file src (its content is that file's): no blob.
 * On failure (no memory) nothing changed. */
static int make_same(struct mctx *c, struct dimg_entry *e, struct mblob *b, const char *src)
{
	int r = set_payload(e, DIMG_PAYLOAD_SAME, 0, src);
	if (r < 0)
		return r;
	dimg_buf_free(&b->own);
	*b = (struct mblob){0};
	c->st->reencoded++;
	return 0;
}

/* Re-encodes e's new content against the base with the differ's codecs;
 * keeps the result when smaller than what b holds (always when force). */
static int reencode(struct mctx *c, struct dimg_entry *e, struct mblob *b,
                    const struct dimg_entry *a, const struct dimg_buf *content, int force)
{
	const char *src = reencode_src(c, e, a);
	struct dimg_buf old = {0};
	struct differ_result res = {0};
	int r = src ? base_content(c, src, &old) : 0;
	if (!r && src && old.len == content->len && !memcmp(old.data, content->data, old.len)) {
		dimg_buf_free(&old); /* the chain came back to v1's bytes */
		return make_same(c, e, b, src);
	}
	if (!r)
		r = differ_encode(src ? old.data : NULL, old.len, content->data, content->len,
		                  &c->o->diff, &res);
	dimg_buf_free(&old);
	if (!r && (force || res.blob.len < b->len)) {
		mblob_take(b, &res.blob);
		b->fast = 0;
		r = set_payload(e, res.payload, res.codec, src);
		c->st->reencoded++;
	}
	dimg_buf_free(&res.blob);
	return r;
}

/* Checks rebuilt content against e's size and SHA-256. */
static int check_content(struct mctx *c, const struct dimg_entry *e, const struct dimg_buf *nw)
{
	uint8_t sha[32];
	if (nw->len == e->size && dimg_sha256_buf(nw->data, nw->len, sha) == 0 &&
	    memcmp(sha, e->sha256, 32) == 0)
		return 0;
	return mfail(c, -EBADMSG, "%s: rebuilt content does not match its SHA-256", e->path);
}

/* Applies e's patch over the content the accumulated entry a gives: the
 * new content (only a FULL or EMPTY a, or any a with a base). */
static int rebuild(struct mctx *c, const struct dimg_entry *e, const struct mblob *b,
                   const struct dimg_entry *a, const struct mblob *ab, struct dimg_buf *nw)
{
	struct dimg_buf mid = {0};
	int r = entry_content(c, a, ab, &mid);
	if (!r)
		r = apply_to(e, b, &mid, nw);
	if (r < 0 && r != -ENOMEM && !(c->err && *c->err))
		r = mfail(c, r, "%s: cannot rebuild from the chain", e->path);
	if (!r)
		r = check_content(c, e, nw);
	dimg_buf_free(&mid);
	return r;
}

/* The composed v1-relative patch e holds in b, applied to the base:
 * re-encoded when that is smaller. */
static int maybe_reencode(struct mctx *c, struct dimg_entry *e, struct mblob *b)
{
	struct dimg_buf nw = {0};
	int r = entry_content(c, e, b, &nw);
	if (r < 0 && r != -ENOMEM && !(c->err && *c->err))
		r = mfail(c, r, "%s: cannot rebuild from the base and the merged patch", e->path);
	if (!r)
		r = check_content(c, e, &nw);
	if (!r)
		r = reencode(c, e, b, e, &nw, 0);
	dimg_buf_free(&nw);
	return r;
}

static int compose_bsdiff(struct mctx *c, struct dimg_entry *e, struct mblob *b,
                          const struct dimg_entry *a, const struct mblob *ab)
{
	struct dimg_buf z = {0};
	size_t last = b->len;
	int level = c->final_ ? level_for(c, e) : MERGE_FAST_PATCH_LEVEL;
	int r = dimg_bsdiff_compose(ab->p, ab->len, b->p, b->len, level, &z);
	if (r < 0) {
		dimg_buf_free(&z);
		return r == -ENOMEM ? r : mfail(c, r, "%s: cannot compose its patches", e->path);
	}
	mblob_take(b, &z);
	b->fast = !c->final_;
	if ((r = set_payload(e, DIMG_PAYLOAD_PATCH, DIMG_CODEC_BSDIFF, src_of(a))) < 0)
		return r;
	c->st->composed++;
	/* Sizes compare only at real levels: the last fold. */
	if (c->final_ && c->o->base && (double)b->len > c->o->reencode_ratio * (double)last)
		return maybe_reencode(c, e, b);
	return 0;
}

/* A patch as steps: a chain blob's own, or the patch as one step whose
 * output is e's content. */
static int patch_steps(struct mctx *c, const struct dimg_entry *e, const uint8_t *p, size_t len,
                       struct dimg_chain_step *s, size_t *n)
{
	if (e->codec != DIMG_CODEC_CHAIN) {
		s[0] = (struct dimg_chain_step){
		    .codec = e->codec, .size = e->size, .blob = p, .len = len};
		memcpy(s[0].sha256, e->sha256, 32);
		*n = 1;
		return 0;
	}
	int r = dimg_chain_parse(p, len, s, n);
	if (r < 0)
		return mfail(c, r, "%s: its chain of patches is damaged", e->path);
	s[*n - 1].size = e->size; /* the last step's output: the file */
	memcpy(s[*n - 1].sha256, e->sha256, 32);
	return 0;
}

/* A patch an intermediate fold compressed fast, at level. */
static int repack(uint8_t codec, const uint8_t *p, size_t len, int level, struct dimg_buf *out)
{
	if (codec == DIMG_CODEC_GZRE)
		return dimg_gzre_repack(p, len, level, out);
	return dimg_bsdiff_repack(p, len, level, out);
}

/* Composes step x (old -> mid) and step y (mid -> new) into one, in *out,
 * at level: 1 when done, 0 when their codecs do not compose. */
static int compose_step(struct mctx *c, const struct dimg_entry *e, const struct dimg_chain_step *x,
                        const struct dimg_chain_step *y, int level, struct dimg_buf *out)
{
	int r = -ENOTSUP;
	if (x->codec == DIMG_CODEC_BSDIFF && y->codec == DIMG_CODEC_BSDIFF)
		r = dimg_bsdiff_compose(x->blob, x->len, y->blob, y->len, level, out);
	else if (x->codec == DIMG_CODEC_GZRE && y->codec == DIMG_CODEC_GZRE)
		r = dimg_gzre_compose(x->blob, x->len, y->blob, y->len, level, out);
	if (r == -ENOTSUP)
		return 0;
	if (r < 0 && r != -ENOMEM)
		return mfail(c, r, "%s: cannot compose its patches", e->path);
	return r < 0 ? r : 1;
}

/* The steps of a (old -> mid) then those of e (mid -> new), the two
 * meeting in the middle composed when their codecs allow, written as one
 * patch (a single step left) or a chain into b. */
static int join_steps(struct mctx *c, struct dimg_entry *e, struct mblob *b,
                      struct dimg_chain_step *s, size_t na, size_t nb, int a_fast,
                      struct dimg_buf *tmp)
{
	struct dimg_buf out = {0};
	size_t n = na + nb;
	/* One patch as the result, in a fold before the last: fast, the next
	 * fold decodes it again (finish_blobs recompresses what stays). */
	int fast = !c->final_ && n == 2;
	int r = compose_step(c, e, &s[na - 1], &s[na],
	                     fast ? MERGE_FAST_PATCH_LEVEL : real_level(c, e), tmp);
	if (r == 1) { /* the middle pair becomes one step with the second's output */
		s[na].blob = tmp->data;
		s[na].len = tmp->len;
		memmove(&s[na - 1], &s[na], (nb) * sizeof(*s));
		n--;
		c->st->composed++;
	} else if (r < 0) {
		return r;
	} else if (a_fast) { /* a's patch of an earlier fold, kept: at its real level */
		tmp->len = 0;
		if ((r = repack(s[na - 1].codec, s[na - 1].blob, s[na - 1].len, real_level(c, e),
		                tmp)) < 0)
			return r;
		s[na - 1].blob = tmp->data;
		s[na - 1].len = tmp->len;
	}
	if (n > DIMG_CHAIN_MAX)
		return mfail(
		    c, -E2BIG,
		    "%s: its patches do not compose and would chain more than %d; give the "
		    "first delta's base with --base IMAGE|DIR",
		    e->path, DIMG_CHAIN_MAX);
	uint8_t codec = n == 1 ? s[0].codec : DIMG_CODEC_CHAIN;
	r = n == 1 ? dimg_buf_append(&out, s[0].blob, s[0].len) : dimg_chain_encode(s, n, &out);
	if (r < 0) {
		dimg_buf_free(&out);
		return r;
	}
	mblob_take(b, &out);
	b->fast = fast && n == 1;
	e->codec = codec;
	return 0;
}

/* B's patch e over a's patch where the two are not both bsdiff: composed
 * step by step where the codecs allow (gzip-recompress over
 * gzip-recompress), else kept as a chain of patches (codec 4) that applies
 * them in turn. With a base, what stays a chain or grew is re-encoded at
 * the end (finish_blobs / maybe_reencode). */
static int compose_steps(struct mctx *c, struct dimg_entry *e, struct mblob *b,
                         const struct dimg_entry *a, const struct mblob *ab)
{
	struct dimg_chain_step s[2 * DIMG_CHAIN_MAX];
	struct dimg_buf tmp = {0};
	size_t na = 0, nb = 0, last = b->len;
	int r = patch_steps(c, a, ab->p, ab->len, s, &na);
	if (!r)
		r = patch_steps(c, e, b->p, b->len, s + na, &nb);
	if (!r)
		r = join_steps(c, e, b, s, na, nb, ab->fast, &tmp);
	if (!r)
		r = set_payload(e, DIMG_PAYLOAD_PATCH, e->codec, src_of(a));
	dimg_buf_free(&tmp);
	if (!r && c->final_ && c->o->base && e->codec != DIMG_CODEC_CHAIN &&
	    (double)b->len > c->o->reencode_ratio * (double)last)
		r = maybe_reencode(c, e, b);
	return r;
}

/* B's PATCH over an accumulated explicit entry a. */
static int compose_patch(struct mctx *c, struct dimg_entry *e, struct mblob *b,
                         const struct dimg_entry *a, const struct mblob *ab)
{
	struct dimg_buf nw = {0};
	int r;
	if (a->payload == DIMG_PAYLOAD_SAME) { /* patch the base file a came from */
		c->st->remapped++;
		return set_payload(e, DIMG_PAYLOAD_PATCH, e->codec, src_of(a));
	}
	if (a->payload == DIMG_PAYLOAD_PATCH && a->codec == DIMG_CODEC_BSDIFF &&
	    e->codec == DIMG_CODEC_BSDIFF)
		return compose_bsdiff(c, e, b, a, ab);
	if (a->payload == DIMG_PAYLOAD_PATCH)
		return compose_steps(c, e, b, a, ab);
	r = rebuild(c, e, b, a, ab, &nw);
	if (!r) {
		r = store_full(c, e, b, &nw);
		c->st->decoded++;
		/* A full copy where v1 may hold a similar file: try a patch. */
		if (!r && c->o->base && reencode_src(c, e, a))
			r = reencode(c, e, b, a, &nw, 0);
	}
	dimg_buf_free(&nw);
	return r;
}

/* B's SAME over an accumulated explicit entry a: a's payload, e's metadata. */
static int compose_same(struct mctx *c, struct dimg_entry *e, struct mblob *b,
                        const struct dimg_entry *a, const struct mblob *ab)
{
	if (a->size != e->size)
		return mfail(c, -EBADMSG, "%s: same as %s, which has another size", e->path,
		             src_of(e));
	if (a->payload != DIMG_PAYLOAD_SAME)
		memcpy(e->sha256, a->sha256, 32);
	b->p = ab->p;
	b->len = ab->len;
	b->fast = ab->fast;
	b->dict = ab->dict;
	if (a->payload == DIMG_PAYLOAD_SAME)
		c->st->remapped++;
	else if (has_blob(a))
		c->st->copied++;
	int r = set_payload(
	    e, a->payload, a->codec,
	    a->payload == DIMG_PAYLOAD_SAME || a->payload == DIMG_PAYLOAD_PATCH ? src_of(a) : NULL);
	e->flags |= a->flags & DIMG_ENTRY_ZDICT;
	return r;
}

/* A file the delta stored whole where the base has a file at its path (the
 * chain may have come back close to v1): a patch against it if smaller. */
static int full_against_base(struct mctx *c, struct dimg_entry *e, struct mblob *b)
{
	struct dimg_buf nw = {0};
	int r = full_decode(b, &nw);
	if (r < 0 && r != -ENOMEM)
		r = mfail(c, r, "%s: its full copy does not decode", e->path);
	if (!r)
		r = check_content(c, e, &nw);
	if (!r)
		r = reencode(c, e, b, NULL, &nw, 0);
	c->st->copied += e->payload == DIMG_PAYLOAD_FULL;
	dimg_buf_free(&nw);
	return r;
}

/* One explicit entry of B (copied into e, blob b), made relative to v1. */
static int compose_entry(struct mctx *c, const struct mdelta *A, struct dimg_entry *e,
                         struct mblob *b)
{
	if (e->type == DIMG_TYPE_REG && e->payload == DIMG_PAYLOAD_FULL && c->o->base &&
	    reencode_src(c, e, NULL))
		return full_against_base(c, e, b);
	if (e->type != DIMG_TYPE_REG ||
	    (e->payload != DIMG_PAYLOAD_SAME && e->payload != DIMG_PAYLOAD_PATCH)) {
		c->st->copied += has_blob(e);
		return 0;
	}
	ssize_t k = dimg_tree_index(A->x, src_of(e));
	if (k < 0) { /* the source is a v1 entry A kept: same path in v1 */
		c->st->copied += has_blob(e);
		return 0;
	}
	const struct dimg_entry *a = &A->x->v[k];
	if (a->type != DIMG_TYPE_REG)
		return mfail(c, -EBADMSG, "%s: its source %s is not a regular file", e->path,
		             src_of(e));
	if (e->payload == DIMG_PAYLOAD_SAME)
		return compose_same(c, e, b, a, &A->blobs[k]);
	return compose_patch(c, e, b, a, &A->blobs[k]);
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
			return mfail(c, r, "its index runs past the previous delta's target");
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
	r = compose_entry(c, A, &e, &b);
	if (!r)
		r = mdelta_entry(C, &e, &b);
	progress(c, "merging", ++c->done, c->total);
	if (r < 0) {
		dimg_entry_clear(&e);
		dimg_buf_free(&b.own);
	}
	return r;
}

/* C = A then B, as one delta from A's base to B's target. */
static int merge2(struct mctx *c, const struct mdelta *A, const struct mdelta *B,
                  struct mdelta **out)
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
			r = mfail(c, -EBADMSG, "its index ends before the previous delta's target");
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

/* With the base: a stored file whose content is its source's in v1 (the
 * chain came back: a downgrade, a reverted change) becomes SAME, no blob.
 * Sizes and SHA-256 are compared; the base tree's hashes are v1's. */
static int same_as_base(struct mctx *c, struct dimg_entry *e, struct mblob *b)
{
	if (e->type != DIMG_TYPE_REG || !has_blob(e))
		return 0;
	const char *src = e->payload == DIMG_PAYLOAD_PATCH ? src_of(e) : e->path;
	const struct dimg_entry *be = dimg_tree_find(c->o->base, src);
	if (!be || be->type != DIMG_TYPE_REG || be->size != e->size ||
	    memcmp(be->sha256, e->sha256, 32))
		return 0;
	return make_same(c, e, b, src) == 0; /* no memory: keeping the blob is correct too */
}

/* Blobs an intermediate fold compressed fast, recompressed at their level. */
static int finish_blobs(struct mctx *c, struct mdelta *d)
{
	int r = 0;
	for (size_t i = 0; !r && i < d->x->n; i++) {
		struct dimg_entry *e = &d->x->v[i];
		struct mblob *b = &d->blobs[i];
		struct dimg_buf out = {0}, raw = {0};
		progress(c, "finishing", i + 1, d->x->n);
		if (c->o->base && same_as_base(c, e, b))
			continue;
		if (c->o->base && e->payload == DIMG_PAYLOAD_PATCH &&
		    e->codec == DIMG_CODEC_CHAIN) {
			r = maybe_reencode(c, e, b);
			continue;
		}
		if (!b->fast)
			continue;
		if (e->payload == DIMG_PAYLOAD_FULL) {
			r = full_decode(b, &raw);
			if (!r)
				r = dimg_zstd_encode(raw.data, raw.len, level_for(c, e), &out);
		} else {
			r = repack(e->codec, b->p, b->len, level_for(c, e), &out);
		}
		if (!r) {
			mblob_take(b, &out);
			b->fast = 0;
		}
		dimg_buf_free(&raw);
		dimg_buf_free(&out);
	}
	return r;
}

/* The one dictionary the output keeps: the input delta whose dictionary
 * compresses the most bytes of the merged delta's blobs (the first such
 * input on a tie); the other dictionary blobs become plain frames. Counts
 * the output's chain patches on the way. */
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
	for (size_t i = 0; !r && i < d->x->n; i++) {
		const struct dimg_entry *e = &d->x->v[i];
		c->st->chained += e->payload == DIMG_PAYLOAD_PATCH && e->codec == DIMG_CODEC_CHAIN;
		if (d->blobs[i].dict && d->blobs[i].dict != *keep)
			r = undict(c, &d->x->v[i], &d->blobs[i]);
		else if (d->blobs[i].dict)
			c->st->dict_blobs++;
	}
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
		if (has_blob(e))
			r = write_blob(w, &bs, d, i);
		else
			e->blob_off = e->blob_len = e->blob_xxh3 = 0;
	}
	if (!r)
		r = dimg_writer_finish_ops(w, d->ops, d->nops, d->x, d->entries);
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
	return mfail(c, -EXDEV,
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
	return mfail(c, -EXDEV, "the base given has tree %.12s, the delta needs %.12s", got, want);
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
			r = merge2(c, i == 1 ? all[0] : all[2 * i - 1], all[2 * i],
			           &all[2 * i + 1]);
	}
	return r;
}

int merge_write_dimg(const char *out_path, struct dimg_reader *const *rds, const char *const *names,
                     size_t n, const struct merge_opts *o, struct merge_stats *st, char **err)
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
		st->entries = m.d->entries;
		st->explicit_ = m.d->x->n;
		r = packer_write_atomic(out_path, mwrite_fill, &m);
		if (r < 0)
			mfail(&c, r, "cannot write");
	}
	for (size_t i = 0; all && i < 2 * n + 1; i++)
		mdelta_free(all[i]);
	free(all);
	return r;
}
