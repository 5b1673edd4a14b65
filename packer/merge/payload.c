/* Merging, one file's payload: a later delta's entry made relative to the
 * first base, by composing its patch with the earlier one's, following
 * renames back to v1, or rebuilding and re-encoding (docs/merge.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dimg/hash.h"
#include "merge-internal.h"

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
		return merge_fail(c, -EBADMSG, "%s: not a regular file of the base", path);
	r = c->o->base_files->open(c->o->base_files->ctx, b, &fd);
	if (r < 0)
		return merge_fail(c, r, "%s: cannot open in the base", path);
	r = read_fd_all(fd, out);
	close(fd);
	if (!r && out->len != b->size)
		r = merge_fail(c, -ESTALE, "%s: the base file changed size", path);
	return r;
}

const char *merge_src_of(const struct dimg_entry *e)
{
	return e->src ? e->src : e->path;
}

/* A FULL blob's content: a plain zstd frame, or one made with its delta's
 * dictionary. */
int merge_full_decode(const struct mblob *b, struct dimg_buf *out)
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
		return merge_full_decode(b, out);
	if (!c->o->base)
		return -ENOTSUP;
	r = base_content(c, merge_src_of(e), &old);
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
void merge_mblob_take(struct mblob *b, struct dimg_buf *own)
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
int merge_level_for(const struct mctx *c, const struct dimg_entry *e)
{
	return c->final_ ? real_level(c, e) : 1;
}

/* A FULL blob compressed with another delta's dictionary than the one
 * the output keeps, made a plain zstd frame at its level. */
int merge_undict(struct mctx *c, struct dimg_entry *e, struct mblob *b)
{
	struct dimg_buf raw = {0}, z = {0};
	int r = merge_full_decode(b, &raw);
	if (r < 0 && r != -ENOMEM)
		r = merge_fail(c, r, "%s: its full copy does not decode", e->path);
	if (!r)
		r = dimg_zstd_encode(raw.data, raw.len, real_level(c, e), &z);
	if (!r) {
		merge_mblob_take(b, &z);
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
	int r = dimg_zstd_encode(content->data, content->len, merge_level_for(c, e), &z);
	if (r < 0)
		return r;
	merge_mblob_take(b, &z);
	b->fast = !c->final_;
	return set_payload(e, DIMG_PAYLOAD_FULL, 0, NULL);
}

/* The base file e is best re-encoded against: the accumulated entry's
 * source, else e's own path; NULL when the base has no such file. */
static const char *reencode_src(struct mctx *c, const struct dimg_entry *e,
                                const struct dimg_entry *a)
{
	const char *src = a && (a->payload == DIMG_PAYLOAD_SAME || a->payload == DIMG_PAYLOAD_PATCH)
	                      ? merge_src_of(a)
	                      : e->path;
	const struct dimg_entry *be = dimg_tree_find(c->o->base, src);
	return be && be->type == DIMG_TYPE_REG ? src : NULL;
}

/* e becomes SAME as v1's file src (its content is that file's): no blob.
 * On failure (no memory) nothing changed. */
int merge_make_same(struct mctx *c, struct dimg_entry *e, struct mblob *b, const char *src)
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
		return merge_make_same(c, e, b, src);
	}
	if (!r)
		r = differ_encode(src ? old.data : NULL, old.len, content->data, content->len,
		                  &c->o->diff, &res);
	dimg_buf_free(&old);
	if (!r && (force || res.blob.len < b->len)) {
		merge_mblob_take(b, &res.blob);
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
	return merge_fail(c, -EBADMSG, "%s: rebuilt content does not match its SHA-256", e->path);
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
	if (r < 0 && r != -ENOMEM && !merge_failed(c))
		r = merge_fail(c, r, "%s: cannot rebuild from the chain", e->path);
	if (!r)
		r = check_content(c, e, nw);
	dimg_buf_free(&mid);
	return r;
}

/* The composed v1-relative patch e holds in b, applied to the base:
 * re-encoded when that is smaller. */
int merge_maybe_reencode(struct mctx *c, struct dimg_entry *e, struct mblob *b)
{
	struct dimg_buf nw = {0};
	int r = entry_content(c, e, b, &nw);
	if (r < 0 && r != -ENOMEM && !merge_failed(c))
		r = merge_fail(c, r, "%s: cannot rebuild from the base and the merged patch",
		               e->path);
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
	int level = c->final_ ? merge_level_for(c, e) : MERGE_FAST_PATCH_LEVEL;
	int r = dimg_bsdiff_compose(ab->p, ab->len, b->p, b->len, level, &z);
	if (r < 0) {
		dimg_buf_free(&z);
		return r == -ENOMEM ? r
		                    : merge_fail(c, r, "%s: cannot compose its patches", e->path);
	}
	merge_mblob_take(b, &z);
	b->fast = !c->final_;
	if ((r = set_payload(e, DIMG_PAYLOAD_PATCH, DIMG_CODEC_BSDIFF, merge_src_of(a))) < 0)
		return r;
	c->st->composed++;
	/* Sizes compare only at real levels: the last fold. */
	if (c->final_ && c->o->base && (double)b->len > c->o->reencode_ratio * (double)last)
		return merge_maybe_reencode(c, e, b);
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
		return merge_fail(c, r, "%s: its chain of patches is damaged", e->path);
	s[*n - 1].size = e->size; /* the last step's output: the file */
	memcpy(s[*n - 1].sha256, e->sha256, 32);
	return 0;
}

/* A patch an intermediate fold compressed fast, at level. */
int merge_repack(uint8_t codec, const uint8_t *p, size_t len, int level, struct dimg_buf *out)
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
		return merge_fail(c, r, "%s: cannot compose its patches", e->path);
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
		if ((r = merge_repack(s[na - 1].codec, s[na - 1].blob, s[na - 1].len,
		                      real_level(c, e), tmp)) < 0)
			return r;
		s[na - 1].blob = tmp->data;
		s[na - 1].len = tmp->len;
	}
	if (n > DIMG_CHAIN_MAX)
		return merge_fail(
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
	merge_mblob_take(b, &out);
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
		r = set_payload(e, DIMG_PAYLOAD_PATCH, e->codec, merge_src_of(a));
	dimg_buf_free(&tmp);
	if (!r && c->final_ && c->o->base && e->codec != DIMG_CODEC_CHAIN &&
	    (double)b->len > c->o->reencode_ratio * (double)last)
		r = merge_maybe_reencode(c, e, b);
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
		return set_payload(e, DIMG_PAYLOAD_PATCH, e->codec, merge_src_of(a));
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
		return merge_fail(c, -EBADMSG, "%s: same as %s, which has another size", e->path,
		                  merge_src_of(e));
	if (a->payload != DIMG_PAYLOAD_SAME)
		memcpy(e->sha256, a->sha256, 32);
	b->p = ab->p;
	b->len = ab->len;
	b->fast = ab->fast;
	b->dict = ab->dict;
	if (a->payload == DIMG_PAYLOAD_SAME)
		c->st->remapped++;
	else if (merge_has_blob(a))
		c->st->copied++;
	int r = set_payload(e, a->payload, a->codec,
	                    a->payload == DIMG_PAYLOAD_SAME || a->payload == DIMG_PAYLOAD_PATCH
	                        ? merge_src_of(a)
	                        : NULL);
	e->flags |= a->flags & DIMG_ENTRY_ZDICT;
	return r;
}

/* A file the delta stored whole where the base has a file at its path (the
 * chain may have come back close to v1): a patch against it if smaller. */
static int full_against_base(struct mctx *c, struct dimg_entry *e, struct mblob *b)
{
	struct dimg_buf nw = {0};
	int r = merge_full_decode(b, &nw);
	if (r < 0 && r != -ENOMEM)
		r = merge_fail(c, r, "%s: its full copy does not decode", e->path);
	if (!r)
		r = check_content(c, e, &nw);
	if (!r)
		r = reencode(c, e, b, NULL, &nw, 0);
	c->st->copied += e->payload == DIMG_PAYLOAD_FULL;
	dimg_buf_free(&nw);
	return r;
}

/* One explicit entry of B (copied into e, blob b), made relative to v1. */
int merge_compose_entry(struct mctx *c, const struct mdelta *A, struct dimg_entry *e,
                        struct mblob *b)
{
	if (e->type == DIMG_TYPE_REG && e->payload == DIMG_PAYLOAD_FULL && c->o->base &&
	    reencode_src(c, e, NULL))
		return full_against_base(c, e, b);
	if (e->type != DIMG_TYPE_REG ||
	    (e->payload != DIMG_PAYLOAD_SAME && e->payload != DIMG_PAYLOAD_PATCH)) {
		c->st->copied += merge_has_blob(e);
		return 0;
	}
	ssize_t k = dimg_tree_index(A->x, merge_src_of(e));
	if (k < 0) { /* the source is a v1 entry A kept: same path in v1 */
		c->st->copied += merge_has_blob(e);
		return 0;
	}
	const struct dimg_entry *a = &A->x->v[k];
	if (a->type != DIMG_TYPE_REG)
		return merge_fail(c, -EBADMSG, "%s: its source %s is not a regular file", e->path,
		                  merge_src_of(e));
	if (e->payload == DIMG_PAYLOAD_SAME)
		return compose_same(c, e, b, a, &A->blobs[k]);
	return compose_patch(c, e, b, a, &A->blobs[k]);
}
