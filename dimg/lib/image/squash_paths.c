/* The squash's path table (a seeded hash of every path, child lists),
 * normalised paths, implied directories, and refusal messages. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <xxhash.h>

#include "squash-internal.h"

/* ---- the path table ---- */

static uint64_t sq_hash(const struct dimg_squash *s, const char *p, size_t n)
{
	return XXH3_64bits_withSeed(p, n, s->seed);
}

struct sq_node *sq_find(const struct dimg_squash *s, const char *p, size_t n)
{
	uint64_t h = sq_hash(s, p, n);
	for (struct sq_node *x = s->buckets[h & (s->nbuckets - 1)]; x; x = x->hnext)
		if (x->hash == h && x->pathlen == n && memcmp(x->e.path, p, n) == 0)
			return x;
	return NULL;
}

static int sq_grow(struct dimg_squash *s)
{
	size_t nb = s->nbuckets * 2;
	struct sq_node **b = calloc(nb, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < s->nbuckets; i++) {
		for (struct sq_node *x = s->buckets[i], *nx; x; x = nx) {
			nx = x->hnext;
			x->hnext = b[x->hash & (nb - 1)];
			b[x->hash & (nb - 1)] = x;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = nb;
	return 0;
}

/* Adds node (path set) to the table and to parent's children. */
int sq_link(struct dimg_squash *s, struct sq_node *x, struct sq_node *parent)
{
	if (s->count >= s->nbuckets && sq_grow(s) < 0)
		return -ENOMEM;
	x->pathlen = strlen(x->e.path);
	x->hash = sq_hash(s, x->e.path, x->pathlen);
	struct sq_node **b = &s->buckets[x->hash & (s->nbuckets - 1)];
	x->hnext = *b;
	*b = x;
	s->count++;
	x->parent = parent;
	if (parent) {
		x->next = parent->child;
		if (parent->child)
			parent->child->prev = x;
		parent->child = x;
	}
	return 0;
}

void sq_inode_unref(struct sq_inode *ino)
{
	if (ino && --ino->refs == 0) {
		dimg_entry_clear(&ino->meta);
		free(ino);
	}
}

void sq_node_free(struct sq_node *x)
{
	dimg_entry_clear(&x->e);
	sq_inode_unref(x->ino);
	free(x);
}

static void sq_unlink(struct dimg_squash *s, struct sq_node *x)
{
	struct sq_node **pp = &s->buckets[x->hash & (s->nbuckets - 1)];
	while (*pp != x)
		pp = &(*pp)->hnext;
	*pp = x->hnext;
	s->count--;
	if (x->prev)
		x->prev->next = x->next;
	else if (x->parent)
		x->parent->child = x->next;
	if (x->next)
		x->next->prev = x->prev;
}

void sq_remove(struct dimg_squash *s, struct sq_node *x)
{
	while (x->child)
		sq_remove(s, x->child);
	sq_unlink(s, x);
	sq_node_free(x);
}

/* Hides what lower layers put at x: removes x if a lower layer made it;
 * a directory this layer (re)defined keeps only this layer's children.
 * OCI: whiteouts apply to lower layers only, whatever the entry order. */
void sq_hide_lower(struct dimg_squash *s, struct sq_node *x)
{
	if (x->layer < s->layer) {
		sq_remove(s, x);
		return;
	}
	if (x->e.type != DIMG_TYPE_DIR)
		return;
	for (struct sq_node *c = x->child, *nc; c; c = nc) {
		nc = c->next;
		sq_hide_lower(s, c);
	}
}

/* ---- messages ---- */

int sq_fail(struct sq_layer *L, int r, const char *fmt, ...)
{
	char *why = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&why, fmt, ap) < 0)
		why = NULL;
	va_end(ap);
	if (L->entry)
		dimg_errf(&L->msg, "layer %s: entry '%s': %s", L->li->name, L->entry,
		          why ? why : "refused");
	else
		dimg_errf(&L->msg, "layer %s: %s", L->li->name, why ? why : "refused");
	free(why);
	return r;
}

/* ---- paths ---- */

/* Normalises a tar path: drops "./" and empty or "." components, refuses
 * absolute paths and ".." (never resolved: a layer cannot step out). */
int sq_norm(struct sq_layer *L, const char *raw, const char *what, char **out)
{
	*out = NULL;
	if (!raw)
		return sq_fail(L, -EBADMSG, "%s is missing or unreadable", what);
	if (raw[0] == '/')
		return sq_fail(L, -EBADMSG, "absolute %s refused", what);
	size_t n = strlen(raw);
	if (n > SQ_PATH_MAX)
		return sq_fail(L, -EOVERFLOW, "%s longer than %d bytes", what, SQ_PATH_MAX);
	char *p = malloc(n + 1);
	if (!p)
		return -ENOMEM;
	size_t k = 0;
	for (const char *c = raw; *c;) {
		const char *slash = strchr(c, '/');
		size_t len = slash ? (size_t)(slash - c) : strlen(c);
		if (len == 2 && c[0] == '.' && c[1] == '.') {
			free(p);
			return sq_fail(L, -EBADMSG, "'..' in %s refused", what);
		}
		if (len && !(len == 1 && c[0] == '.')) {
			if (k)
				p[k++] = '/';
			memcpy(p + k, c, len);
			k += len;
		}
		c += len + (slash != NULL);
	}
	p[k] = '\0';
	*out = p;
	return 0;
}

struct sq_node *sq_node_new(const char *path, size_t len, uint8_t type, unsigned layer)
{
	struct sq_node *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->e.path = strndup(path, len);
	if (!x->e.path) {
		free(x);
		return NULL;
	}
	x->e.type = type;
	x->layer = layer;
	return x;
}

/* The directory at path[0..len): found, or made as an implied directory
 * (see SQ_IMPLIED_DIR_MODE) with its own missing parents. A symlink or
 * other non-directory on the way refuses the entry. */
static int sq_dir_at(struct sq_layer *L, const char *path, size_t len, struct sq_node **out)
{
	struct dimg_squash *s = L->s;
	struct sq_node *x = sq_find(s, path, len), *parent;
	if (x) {
		*out = x;
		if (x->e.type == DIMG_TYPE_DIR)
			return 0;
		if (x->e.type == DIMG_TYPE_SYMLINK)
			return sq_fail(L, -ELOOP, "parent '%.*s' is a symlink", (int)len, path);
		return sq_fail(L, -EBADMSG, "parent '%.*s' is not a directory", (int)len, path);
	}
	const char *slash = memrchr(path, '/', len);
	int r = slash ? sq_dir_at(L, path, (size_t)(slash - path), &parent) : 0;
	if (r < 0)
		return r;
	if (!slash)
		parent = s->root;
	x = sq_node_new(path, len, DIMG_TYPE_DIR, s->layer);
	if (!x)
		return -ENOMEM;
	x->e.mode = SQ_IMPLIED_DIR_MODE;
	if ((r = sq_link(s, x, parent)) < 0) {
		sq_node_free(x);
		return r;
	}
	*out = x;
	return 0;
}

int sq_parent_of(struct sq_layer *L, const char *path, struct sq_node **out)
{
	const char *slash = strrchr(path, '/');
	if (!slash) {
		*out = L->s->root;
		return 0;
	}
	return sq_dir_at(L, path, (size_t)(slash - path), out);
}
