/* Private to the squash (squash.c, squash_paths.c): the tree being
 * built, a layer being read, and the path-table and message helpers. */
#ifndef DIMG_SQUASH_INTERNAL_H
#define DIMG_SQUASH_INTERNAL_H

#include <archive.h>
#include <stddef.h>
#include <stdint.h>

#include "cas-internal.h"
#include "dimg/hash.h"

/* Limits beyond which an entry is hostile rather than unusual. */
#define SQ_FILE_MAX        (1ULL << 40) /* 1 TiB */
#define SQ_PATH_MAX        4095
#define SQ_XATTR_VALUE_MAX 65536 /* Linux XATTR_SIZE_MAX */
#define SQ_XATTR_NAME_MAX  255
#define SQ_PROGRESS_STEP   (4u << 20)

/* Directories a path implies but no layer contains get this metadata, so
 * the result does not depend on when or by whom it is computed. */
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

/* State of one layer being read: blob -> (filters, raw format) -> tar. */
struct sq_layer {
	struct dimg_squash *s;
	struct dimg_layer_info *li;
	const struct dimg_layer_src *src;
	struct archive *raw; /* decompresses; its data is the tar stream */
	struct archive *tar; /* parses the tar stream fed from raw */
	uint64_t csize, usize;
	int raw_eof, src_eof;
	int cb_err;        /* first -errno met in a read callback */
	char cb_msg[96];   /* and what it was */
	const char *entry; /* raw path of the entry at hand, for messages */
	char *msg;         /* the first refusal, for *err */
};

struct sq_node *sq_find(const struct dimg_squash *s, const char *p, size_t n);
int sq_link(struct dimg_squash *s, struct sq_node *x, struct sq_node *parent);
void sq_inode_unref(struct sq_inode *ino);
void sq_node_free(struct sq_node *x);
void sq_remove(struct dimg_squash *s, struct sq_node *x);
void sq_hide_lower(struct dimg_squash *s, struct sq_node *x);
int sq_fail(struct sq_layer *L, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int sq_norm(struct sq_layer *L, const char *raw, const char *what, char **out);
struct sq_node *sq_node_new(const char *path, size_t len, uint8_t type, unsigned layer);
int sq_parent_of(struct sq_layer *L, const char *path, struct sq_node **out);

#endif
