/* Differ: per-file planning (content matches, patch sources by path and by
 * version-stripped name) and the choice of the smallest encoding. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "differ.h"

void differ_opts_default(struct differ_opts *o)
{
	o->level = 19;
	o->max_diff_size = 512ull << 20;
	o->max_zstdref_window = 1ull << 30;
	o->codecs = DIFFER_CODEC_BSDIFF | DIFFER_CODEC_ZSTDREF | DIFFER_CODEC_GZIP;
}

char *differ_version_key(const char *path)
{
	size_t n = strlen(path);
	char *k = malloc(n + 1), *q = k;
	if (!k)
		return NULL;
	for (const char *p = path; *p;) {
		if (*p >= '0' && *p <= '9') {
			while (*p >= '0' && *p <= '9')
				p++;
			*q++ = '#';
		} else {
			*q++ = *p++;
		}
	}
	*q = '\0';
	return k;
}

/* Base regular files, sorted two ways for lookups by content and by key. */
struct base_index {
	const struct dimg_tree *base;
	size_t *by_sha; /* indices into base->v */
	size_t nsha;
	char **keys; /* keys[i] is the version key of base->v[by_key[i]] */
	size_t *by_key;
	size_t nkey;
};

static int cmp_sha(const void *a, const void *b, void *arg)
{
	const struct dimg_tree *t = arg;
	const struct dimg_entry *x = &t->v[*(const size_t *)a];
	const struct dimg_entry *y = &t->v[*(const size_t *)b];
	int c = memcmp(x->sha256, y->sha256, 32);
	return c ? c : strcmp(x->path, y->path);
}

struct keyed {
	char *key;
	size_t idx;
};

static int cmp_keyed(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static void base_index_free(struct base_index *bi)
{
	for (size_t i = 0; i < bi->nkey; i++)
		free(bi->keys[i]);
	free(bi->keys);
	free(bi->by_key);
	free(bi->by_sha);
}

static int build_key_index(struct base_index *bi)
{
	const struct dimg_tree *b = bi->base;
	struct keyed *kv = calloc(bi->nsha ? bi->nsha : 1, sizeof(*kv));
	bi->keys = calloc(bi->nsha ? bi->nsha : 1, sizeof(char *));
	bi->by_key = calloc(bi->nsha ? bi->nsha : 1, sizeof(size_t));
	if (!kv || !bi->keys || !bi->by_key) {
		free(kv);
		return -ENOMEM;
	}
	for (size_t i = 0; i < bi->nsha; i++) {
		kv[i].idx = bi->by_sha[i];
		kv[i].key = differ_version_key(b->v[kv[i].idx].path);
		if (!kv[i].key) {
			for (size_t j = 0; j < i; j++)
				free(kv[j].key);
			free(kv);
			return -ENOMEM;
		}
	}
	qsort(kv, bi->nsha, sizeof(*kv), cmp_keyed);
	for (size_t i = 0; i < bi->nsha; i++) {
		bi->keys[i] = kv[i].key;
		bi->by_key[i] = kv[i].idx;
	}
	bi->nkey = bi->nsha;
	free(kv);
	return 0;
}

static int base_index_build(struct base_index *bi, const struct dimg_tree *base)
{
	memset(bi, 0, sizeof(*bi));
	bi->base = base;
	bi->by_sha = calloc(base->n ? base->n : 1, sizeof(size_t));
	if (!bi->by_sha)
		return -ENOMEM;
	for (size_t i = 0; i < base->n; i++)
		if (base->v[i].type == DIMG_TYPE_REG)
			bi->by_sha[bi->nsha++] = i;
	qsort_r(bi->by_sha, bi->nsha, sizeof(size_t), cmp_sha, (void *)base);
	int r = build_key_index(bi);
	if (r < 0)
		base_index_free(bi);
	return r;
}

static const struct dimg_entry *find_by_sha(const struct base_index *bi, const uint8_t sha[32])
{
	size_t lo = 0, hi = bi->nsha;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(bi->base->v[bi->by_sha[mid]].sha256, sha, 32) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < bi->nsha && memcmp(bi->base->v[bi->by_sha[lo]].sha256, sha, 32) == 0)
		return &bi->base->v[bi->by_sha[lo]];
	return NULL;
}

static uint64_t size_dist(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

/* Among base files with the same version key, the one closest in size. */
static const struct dimg_entry *find_by_key(const struct base_index *bi, const struct dimg_entry *t)
{
	char *key = differ_version_key(t->path);
	const struct dimg_entry *best = NULL;
	if (!key)
		return NULL;
	size_t lo = 0, hi = bi->nkey;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(bi->keys[mid], key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < bi->nkey && strcmp(bi->keys[i], key) == 0; i++) {
		const struct dimg_entry *c = &bi->base->v[bi->by_key[i]];
		if (c->size &&
		    (!best || size_dist(c->size, t->size) < size_dist(best->size, t->size)))
			best = c;
	}
	free(key);
	return best;
}

static int set_src(struct dimg_entry *e, const char *src)
{
	free(e->src);
	e->src = NULL;
	if (!src || strcmp(src, e->path) == 0)
		return 0;
	e->src = strdup(src);
	return e->src ? 0 : -ENOMEM;
}

static int plan_entry(const struct base_index *bi, struct dimg_entry *e)
{
	e->codec = 0;
	e->blob_off = e->blob_len = e->blob_xxh3 = 0;
	if (e->type != DIMG_TYPE_REG) {
		e->payload = DIMG_PAYLOAD_NONE;
		return set_src(e, NULL);
	}
	if (e->size == 0) {
		e->payload = DIMG_PAYLOAD_EMPTY;
		return set_src(e, NULL);
	}
	const struct dimg_entry *same = dimg_tree_find(bi->base, e->path);
	if (same && (same->type != DIMG_TYPE_REG || memcmp(same->sha256, e->sha256, 32) != 0))
		same = NULL;
	if (!same)
		same = find_by_sha(bi, e->sha256);
	if (same && same->size == e->size) {
		e->payload = DIMG_PAYLOAD_SAME;
		return set_src(e, same->path);
	}
	const struct dimg_entry *src = dimg_tree_find(bi->base, e->path);
	if (!src || src->type != DIMG_TYPE_REG || src->size == 0)
		src = find_by_key(bi, e);
	e->payload = src ? DIMG_PAYLOAD_PATCH : DIMG_PAYLOAD_FULL;
	return set_src(e, src ? src->path : NULL);
}

int differ_plan(const struct dimg_tree *base, const struct dimg_tree *target,
                struct dimg_tree **out)
{
	struct base_index bi;
	struct dimg_tree *t = NULL;
	int r = base_index_build(&bi, base);
	if (r < 0)
		return r;
	r = dimg_tree_new(&t);
	for (size_t i = 0; !r && i < target->n; i++) {
		r = dimg_tree_append(t, &target->v[i]);
		if (!r)
			r = plan_entry(&bi, &t->v[t->n - 1]);
	}
	base_index_free(&bi);
	if (r < 0) {
		dimg_tree_free(t);
		return r;
	}
	*out = t;
	return 0;
}

/* Keeps cand as the patch in *res if no patch is there yet or it is
 * smaller; frees the loser. */
static void keep_patch(struct differ_result *res, struct dimg_buf *cand, uint8_t codec)
{
	if (!res->codec || cand->len < res->blob.len) {
		dimg_buf_free(&res->blob);
		res->blob = *cand;
		res->payload = DIMG_PAYLOAD_PATCH;
		res->codec = codec;
	} else {
		dimg_buf_free(cand);
	}
	memset(cand, 0, sizeof(*cand));
}

/* zstdref at a slow level costs up to twice a bsdiff; a fast probe (a
 * hundredth of the time) tells when it cannot win: its slow level gains at
 * most about a quarter over the probe. Returns 1 to go on, 0 to skip. */
static int zstdref_pays(const uint8_t *old, size_t oldlen, const uint8_t *new_, size_t newlen,
                        const struct differ_opts *o, const struct differ_result *res)
{
	struct dimg_buf probe = {0};
	if (!res->codec || o->level <= 3)
		return 1;
	int r = dimg_zstdref_encode(old, oldlen, new_, newlen, 3, &probe);
	size_t len = probe.len;
	dimg_buf_free(&probe);
	if (r < 0)
		return r;
	return len / 4 * 3 < res->blob.len;
}

static int try_patches(const uint8_t *old, size_t oldlen, const uint8_t *new_, size_t newlen,
                       const struct differ_opts *o, struct differ_result *res)
{
	struct dimg_buf cand = {0};
	int r;
	if (o->codecs & DIFFER_CODEC_GZIP) {
		unsigned inner = ((o->codecs & DIFFER_CODEC_BSDIFF) ? DIMG_GZRE_INNER_BSDIFF : 0) |
		                 ((o->codecs & DIFFER_CODEC_ZSTDREF) ? DIMG_GZRE_INNER_ZSTDREF : 0);
		r = dimg_gzre_encode(old, oldlen, new_, newlen, o->level, inner, &cand);
		/* Not a gzip file zlib recreates: the other codecs remain. */
		if (r == -ENODATA || r == -EFBIG || r == -ENOMEM)
			dimg_buf_free(&cand);
		else if (r < 0)
			goto fail;
		else {
			/* A patch of the deflate bytes is never near a patch of
			 * the content (24x larger on Debian's man pages): the
			 * byte codecs would only cost time. */
			keep_patch(res, &cand, DIMG_CODEC_GZRE);
			return 0;
		}
	}
	if (o->codecs & DIFFER_CODEC_BSDIFF) {
		r = dimg_bsdiff(old, oldlen, new_, newlen, o->level, &cand);
		/* Too large for the codec is not an error: other encodings remain. */
		if (r == -EFBIG || r == -ENOMEM)
			dimg_buf_free(&cand);
		else if (r < 0)
			goto fail;
		else
			keep_patch(res, &cand, DIMG_CODEC_BSDIFF);
	}
	if ((o->codecs & DIFFER_CODEC_ZSTDREF) && oldlen + newlen <= o->max_zstdref_window) {
		if ((r = zstdref_pays(old, oldlen, new_, newlen, o, res)) <= 0)
			return r;
		int level = dimg_zstdref_level(o->level, oldlen, newlen);
		if ((r = dimg_zstdref_encode(old, oldlen, new_, newlen, level, &cand)) < 0)
			goto fail;
		keep_patch(res, &cand, DIMG_CODEC_ZSTDREF);
	}
	return 0;
fail:
	dimg_buf_free(&cand);
	return r;
}

/* The full copy at a slow level costs as much as a patch; it is skipped when
 * the best patch is under half of a fast full copy (the slow level never
 * halves a fast one's size on real files). Otherwise the smaller wins, the
 * full copy on a tie. */
static int settle_full(const uint8_t *new_, size_t newlen, const struct differ_opts *o,
                       struct differ_result *res)
{
	struct dimg_buf full = {0};
	int fast = o->level < 3 ? o->level : 3;
	int r = dimg_zstd_encode(new_, newlen, fast, &full);
	if (r < 0)
		return r;
	if (res->codec && res->blob.len <= full.len / 2) {
		dimg_buf_free(&full);
		return 0;
	}
	if (fast != o->level) {
		dimg_buf_free(&full);
		if ((r = dimg_zstd_encode(new_, newlen, o->level, &full)) < 0)
			return r;
	}
	if (!res->codec || full.len <= res->blob.len) {
		dimg_buf_free(&res->blob);
		res->blob = full;
		res->payload = DIMG_PAYLOAD_FULL;
		res->codec = 0;
	} else {
		dimg_buf_free(&full);
	}
	return 0;
}

int differ_encode(const uint8_t *old, size_t oldlen, const uint8_t *new_, size_t newlen,
                  const struct differ_opts *o, struct differ_result *res)
{
	memset(res, 0, sizeof(*res));
	res->payload = DIMG_PAYLOAD_FULL;
	int r = 0;
	if (old && oldlen && oldlen <= o->max_diff_size && newlen <= o->max_diff_size)
		r = try_patches(old, oldlen, new_, newlen, o, res);
	if (!r)
		r = settle_full(new_, newlen, o, res);
	if (r < 0) {
		dimg_buf_free(&res->blob);
		memset(res, 0, sizeof(*res));
	}
	return r;
}
