/* The in-memory tree model: ownership of entries, sorting, lookup, the
 * safety validation every writer relies on, and the canonical tree id. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dimg/hash.h"
#include "dimg/tree.h"
#include "endian-internal.h"
#include "tree-internal.h"

int dimg_path_clean(char *out, const char *raw)
{
	size_t k = 0;
	for (const char *c = raw; *c;) {
		const char *slash = strchr(c, '/');
		size_t len = slash ? (size_t)(slash - c) : strlen(c);
		if (len == 2 && c[0] == '.' && c[1] == '.')
			return -EBADMSG;
		if (len && !(len == 1 && c[0] == '.')) {
			if (k)
				out[k++] = '/';
			memcpy(out + k, c, len);
			k += len;
		}
		c += len + (slash != NULL);
	}
	out[k] = '\0';
	return (int)k;
}

int dimg_tree_new(struct dimg_tree **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void dimg_entry_clear(struct dimg_entry *e)
{
	if (!e)
		return;
	free(e->path);
	free(e->link);
	free(e->src);
	for (uint32_t i = 0; i < e->nxattrs; i++) {
		free(e->xattrs[i].name);
		free(e->xattrs[i].value);
	}
	free(e->xattrs);
	memset(e, 0, sizeof(*e));
}

void dimg_tree_free(struct dimg_tree *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		dimg_entry_clear(&t->v[i]);
	free(t->v);
	free(t);
}

static int dup_str(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

int dimg_entry_copy(struct dimg_entry *dst, const struct dimg_entry *src)
{
	*dst = *src;
	dst->path = dst->link = dst->src = NULL;
	dst->xattrs = NULL;
	dst->nxattrs = 0;
	if (dup_str(&dst->path, src->path) || dup_str(&dst->link, src->link) ||
	    dup_str(&dst->src, src->src))
		goto fail;
	if (src->nxattrs) {
		dst->xattrs = calloc(src->nxattrs, sizeof(*dst->xattrs));
		if (!dst->xattrs)
			goto fail;
		dst->nxattrs = src->nxattrs;
		for (uint32_t i = 0; i < src->nxattrs; i++) {
			const struct dimg_xattr *x = &src->xattrs[i];
			dst->xattrs[i].value_len = x->value_len;
			dst->xattrs[i].name = strdup(x->name);
			dst->xattrs[i].value = malloc(x->value_len ? x->value_len : 1);
			if (!dst->xattrs[i].name || !dst->xattrs[i].value)
				goto fail;
			memcpy(dst->xattrs[i].value, x->value, x->value_len);
		}
	}
	return 0;
fail:
	dimg_entry_clear(dst);
	return -ENOMEM;
}

static int tree_grow(struct dimg_tree *t)
{
	if (t->n < t->cap)
		return 0;
	size_t cap = t->cap ? t->cap * 2 : 64;
	struct dimg_entry *v = realloc(t->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	t->v = v;
	t->cap = cap;
	return 0;
}

int dimg_tree_append(struct dimg_tree *t, const struct dimg_entry *e)
{
	int r = tree_grow(t);
	if (r < 0)
		return r;
	r = dimg_entry_copy(&t->v[t->n], e);
	if (r < 0)
		return r;
	t->n++;
	return 0;
}

int dimg_tree_append_move(struct dimg_tree *t, struct dimg_entry *e)
{
	int r = tree_grow(t);
	if (r < 0)
		return r;
	t->v[t->n++] = *e;
	memset(e, 0, sizeof(*e));
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct dimg_entry *x = a, *y = b;
	return strcmp(x->path, y->path);
}

int dimg_tree_sort(struct dimg_tree *t)
{
	if (t->n > 1)
		qsort(t->v, t->n, sizeof(*t->v), entry_cmp);
	for (size_t i = 1; i < t->n; i++)
		if (strcmp(t->v[i - 1].path, t->v[i].path) == 0)
			return -EEXIST;
	return 0;
}

ssize_t dimg_tree_index(const struct dimg_tree *t, const char *path)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(t->v[mid].path, path);
		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

const struct dimg_entry *dimg_tree_find(const struct dimg_tree *t, const char *path)
{
	ssize_t i = dimg_tree_index(t, path);
	return i < 0 ? NULL : &t->v[i];
}

/* A path is normalised: components non-empty, not "." or "..", no leading
 * or trailing '/'. The root is the empty path. */
static int path_ok(const char *p)
{
	if (*p == '\0')
		return 1;
	const char *c = p;
	for (;;) {
		const char *slash = strchr(c, '/');
		size_t len = slash ? (size_t)(slash - c) : strlen(c);
		if (len == 0 || (len == 1 && c[0] == '.') ||
		    (len == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		if (!slash)
			return 1;
		c = slash + 1;
	}
}

/* Index of the parent directory entry of t->v[i], found by binary search. */
static ssize_t parent_index(const struct dimg_tree *t, size_t i)
{
	const char *p = t->v[i].path;
	const char *slash = strrchr(p, '/');
	if (!slash)
		return dimg_tree_index(t, "");
	size_t len = (size_t)(slash - p);
	char buf[4096];
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, p, len);
	buf[len] = '\0';
	return dimg_tree_index(t, buf);
}

static int xattrs_ok(const struct dimg_entry *e)
{
	for (uint32_t i = 0; i < e->nxattrs; i++) {
		size_t nl = e->xattrs[i].name ? strlen(e->xattrs[i].name) : 0;
		if (nl == 0 || nl > 255 || e->xattrs[i].value_len > (1u << 24))
			return 0;
		if (i && strcmp(e->xattrs[i - 1].name, e->xattrs[i].name) >= 0)
			return 0;
	}
	return 1;
}

static int is_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static int entry_ok(const struct dimg_tree *t, size_t i)
{
	const struct dimg_entry *e = &t->v[i];
	if (!e->path || !path_ok(e->path) || strlen(e->path) >= 4096)
		return 0;
	if (i && strcmp(t->v[i - 1].path, e->path) >= 0)
		return 0;
	if (i == 0 ? (e->path[0] != '\0' || e->type != DIMG_TYPE_DIR) : e->path[0] == '\0')
		return 0;
	if (i) {
		ssize_t pi = parent_index(t, i);
		if (pi < 0 || t->v[pi].type != DIMG_TYPE_DIR)
			return 0;
	}
	if (e->mode & ~07777u || e->mtime_nsec >= 1000000000u || !xattrs_ok(e))
		return 0;
	if (e->type != DIMG_TYPE_REG && !is_zero(e->sha256, 32))
		return 0;
	if (e->type != DIMG_TYPE_CHR && e->type != DIMG_TYPE_BLK &&
	    (e->rdev_major || e->rdev_minor))
		return 0;
	switch (e->type) {
	case DIMG_TYPE_DIR:
	case DIMG_TYPE_FIFO:
		return !e->link && e->size == 0;
	case DIMG_TYPE_CHR:
	case DIMG_TYPE_BLK:
		return !e->link && e->size == 0;
	case DIMG_TYPE_REG:
		return !e->link;
	case DIMG_TYPE_SYMLINK:
		return e->link && e->link[0] && strlen(e->link) == e->size;
	case DIMG_TYPE_HARDLINK: {
		/* Another name of the leader: it has no metadata of its own. */
		if (!e->link || e->mode || e->uid || e->gid || e->mtime_sec || e->mtime_nsec ||
		    e->size || e->nxattrs)
			return 0;
		ssize_t li = dimg_tree_index(t, e->link);
		return li >= 0 && (size_t)li < i && t->v[li].type == DIMG_TYPE_REG;
	}
	default:
		return 0;
	}
}

int dimg_tree_validate(const struct dimg_tree *t, struct dimg_err *err)
{
	if (t->n == 0)
		return dimg_err_set(err, -EBADMSG, NULL, "the tree has no root directory");
	for (size_t i = 0; i < t->n; i++)
		if (!entry_ok(t, i))
			return dimg_err_set(err, -EBADMSG, t->v[i].path ? t->v[i].path : "",
			                    "not a valid entry of a tree");
	return 0;
}

static int str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

int dimg_entry_meta_equal(const struct dimg_entry *a, const struct dimg_entry *b)
{
	if (a->type != b->type || a->mode != b->mode || a->uid != b->uid || a->gid != b->gid ||
	    a->mtime_sec != b->mtime_sec || a->mtime_nsec != b->mtime_nsec || a->size != b->size ||
	    a->rdev_major != b->rdev_major || a->rdev_minor != b->rdev_minor ||
	    memcmp(a->sha256, b->sha256, 32) != 0 || !str_eq(a->link, b->link) ||
	    !str_eq(a->path, b->path) || a->nxattrs != b->nxattrs)
		return 0;
	for (uint32_t i = 0; i < a->nxattrs; i++) {
		const struct dimg_xattr *x = &a->xattrs[i], *y = &b->xattrs[i];
		if (strcmp(x->name, y->name) != 0 || x->value_len != y->value_len ||
		    memcmp(x->value, y->value, x->value_len) != 0)
			return 0;
	}
	return 1;
}

static void put_u32(struct dimg_sha256 *h, uint32_t v)
{
	uint8_t b[4];
	le32enc(b, v);
	dimg_sha256_update(h, b, 4);
}

static void put_u64(struct dimg_sha256 *h, uint64_t v)
{
	uint8_t b[8];
	le64enc(b, v);
	dimg_sha256_update(h, b, 8);
}

static void put_str(struct dimg_sha256 *h, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	put_u32(h, (uint32_t)n);
	dimg_sha256_update(h, s ? s : "", n);
}

/* The canonical encoding is described in docs/FORMAT.md "Tree id". */
static void hash_entry(struct dimg_sha256 *h, const struct dimg_entry *e)
{
	uint8_t type = e->type;
	put_str(h, e->path);
	dimg_sha256_update(h, &type, 1);
	put_u32(h, e->mode);
	put_u32(h, e->uid);
	put_u32(h, e->gid);
	put_u64(h, (uint64_t)e->mtime_sec);
	put_u32(h, e->mtime_nsec);
	put_u64(h, e->size);
	put_u32(h, e->rdev_major);
	put_u32(h, e->rdev_minor);
	dimg_sha256_update(h, e->sha256, 32);
	put_str(h, e->link);
	put_u32(h, e->nxattrs);
	for (uint32_t i = 0; i < e->nxattrs; i++) {
		put_str(h, e->xattrs[i].name);
		put_u32(h, e->xattrs[i].value_len);
		dimg_sha256_update(h, e->xattrs[i].value, e->xattrs[i].value_len);
	}
}

int dimg_tree_id(const struct dimg_tree *t, uint8_t out[32])
{
	static const char domain[16] = "di3fs-tree-v1";
	struct dimg_sha256 *h;
	int r = dimg_sha256_new(&h);
	if (r < 0)
		return r;
	dimg_sha256_update(h, domain, sizeof(domain));
	put_u64(h, t->n);
	for (size_t i = 0; i < t->n; i++)
		hash_entry(h, &t->v[i]);
	dimg_sha256_final(h, out);
	dimg_sha256_free(h);
	return 0;
}

void dimg_hex32(const uint8_t in[32], char out[65])
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[64] = '\0';
}
