/* The squash's path table: a hash table of nodes, seeded against
 * flooding, with parent/child links so a directory can be removed or
 * hidden with everything below it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "squash-internal.h"

/* ---- the path table ---- */

uint64_t sq_hash(const struct dimg_squash *s, const char *p, size_t n)
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

int sq_grow(struct dimg_squash *s)
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

void sq_unlink(struct dimg_squash *s, struct sq_node *x)
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
