/* The squash's tree of paths (squash.c builds it layer by layer,
 * squash_table.c holds it): nodes in a seeded hash table, with child lists
 * and shared inodes for hardlink groups. */
#ifndef DIMG_SQUASH_INTERNAL_H
#define DIMG_SQUASH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cas-internal.h"

/* Directories a path implies but no layer contains (the root too) get this
 * metadata: mode 0755, owner 0:0, mtime 0, no xattrs, so the result does
 * not depend on when or by whom it is computed. */
#define SQ_IMPLIED_DIR_MODE 0755u

/* A regular file's content and metadata: shared by the paths that are
 * hardlinks of one another, so replacing or whiting out one of them
 * leaves the others intact. */
struct sq_inode {
	struct dimg_entry meta; /* type REG, path NULL */
	size_t refs;
	const char *leader; /* set by finish: the group's first path */
};

/* One path of the tree so far. REG nodes keep their metadata in ino. */
struct sq_node {
	struct dimg_entry e; /* e.path is the hash key */
	size_t pathlen;
	uint64_t hash;
	unsigned layer; /* layer that created (or last redefined) it */
	struct sq_inode *ino;
	struct sq_node *parent, *child, *next, *prev; /* child lists */
	struct sq_node *hnext;                        /* hash chain */
};

struct dimg_squash {
	struct dimg_cas_writer *w;
	struct dimg_sha256 *hc, *hu; /* blob (compressed) and tar stream */
	struct sq_node **buckets;    /* path -> node; seeded against flooding */
	size_t nbuckets, count;
	uint64_t seed;
	struct sq_node *root;
	unsigned layer;
	uint64_t total, done, reported;
	dimg_progress_fn progress;
	void *pctx;
	int spent;
	struct dimg_tarsplit *rec; /* layer recipes, if recorded */
};

uint64_t sq_hash(const struct dimg_squash *s, const char *p, size_t n);
struct sq_node *sq_find(const struct dimg_squash *s, const char *p, size_t n);
int sq_grow(struct dimg_squash *s);
int sq_link(struct dimg_squash *s, struct sq_node *x, struct sq_node *parent);
void sq_inode_unref(struct sq_inode *ino);
void sq_node_free(struct sq_node *x);
void sq_unlink(struct dimg_squash *s, struct sq_node *x);
void sq_remove(struct dimg_squash *s, struct sq_node *x);
void sq_hide_lower(struct dimg_squash *s, struct sq_node *x);

#endif
