/* Writer models for layer recipes (docs/FORMAT.md "Predicted entries"):
 * the header bytes GNU tar, Go's archive/tar (as containerd and docker
 * write layers) or Python's tarfile write for an entry of the target tree,
 * and the per-layer state those bytes depend on (the entry order, which
 * hardlinks were written, the user and group names seen). The recipe
 * writer and reader share it, so a prediction is the same on both sides. */
#ifndef DI3FS_TARMODEL_H
#define DI3FS_TARMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "dimg/tar.h"
#include "dimg/tree.h"
#include "dimg/types.h"

#ifdef __cplusplus
extern "C" {
#endif

enum tarmodel_writer { TARMODEL_GNU = 1, TARMODEL_GO = 2, TARMODEL_PYTHON = 3 };
enum tarmodel_order { TARMODEL_ORDER_TREE = 0, TARMODEL_ORDER_DEPTH = 1 };

#define TARMODEL_BLOCK      DIMG_TAR_BLOCK
#define TARMODEL_PREFIX_MAX 8u
#define TARMODEL_UNIT_MAX   65536u /* header bytes of one entry, predicted or rebuilt */
#define TARMODEL_OWNERS     64u    /* user (group) ids whose names are learned */

struct tarmodel_params {
	uint8_t writer; /* enum tarmodel_writer */
	uint8_t order;  /* enum tarmodel_order */
	uint8_t plen;   /* bytes of prefix */
	char prefix[TARMODEL_PREFIX_MAX];
};

/* A tree's entries in depth-first order (names sorted within each
 * directory): pos[i] is entry i's position, idx[p] the entry at p. */
struct tarmodel_dfs {
	size_t *pos, *idx;
};
int tarmodel_dfs_build(struct tarmodel_dfs *d, const struct dimg_tree *t);
void tarmodel_dfs_free(struct tarmodel_dfs *d);

struct tarmodel_owner {
	uint32_t id;
	uint8_t name[32];
};

struct tarmodel {
	const struct dimg_tree *tree;
	const struct tarmodel_dfs *dfs; /* for TARMODEL_ORDER_DEPTH */
	struct tarmodel_params p;
	size_t next;     /* position of the entry expected next */
	uint32_t *first; /* per group leader: 1 + the entry written as the group's file */
	struct tarmodel_owner users[TARMODEL_OWNERS], groups[TARMODEL_OWNERS];
	size_t nusers, ngroups;
	struct dimg_buf pax, name, link; /* scratch */
	size_t split;                    /* the entry's name cut at split: prefix/name */
};

/* What follows a predicted entry's header bytes: its content, when the
 * prediction is a regular file with data. */
struct tarmodel_pred {
	int has_content;
	uint64_t size;
	const uint8_t *sha256; /* the tree's */
};

/* Prepares m over tree t (borrowed, as is dfs, which may be NULL when
 * no depth-first order is wanted). tarmodel_reset must follow. */
int tarmodel_init(struct tarmodel *m, const struct dimg_tree *t, const struct tarmodel_dfs *dfs);
void tarmodel_free(struct tarmodel *m);
/* -EBADMSG if p is not a valid model (or needs an order m lacks). */
int tarmodel_params_check(const struct tarmodel *m, const struct tarmodel_params *p);
/* Starts a model: the next entry expected is position 0, no hardlink
 * written, no name learned. p must have passed tarmodel_params_check. */
void tarmodel_reset(struct tarmodel *m, const struct tarmodel_params *p);

/* The entry at position next + skip (skip signed): *idx, or -EBADMSG
 * past either end. */
int tarmodel_locate(const struct tarmodel *m, int64_t skip, size_t *idx);
/* The skip tarmodel_locate needs to reach entry idx. */
int64_t tarmodel_skip_to(const struct tarmodel *m, size_t idx);

/* Appends the predicted header bytes of entry idx (extension headers with
 * their data, then the main header; every checksum set) to out. -E2BIG
 * if they would exceed TARMODEL_UNIT_MAX. */
int tarmodel_predict(struct tarmodel *m, size_t idx, struct dimg_buf *out,
                     struct tarmodel_pred *pr);
/* After entry idx was written with main header block hdr (the last block
 * of its header bytes): the next position, the hardlink group, the names. */
void tarmodel_commit(struct tarmodel *m, size_t idx, const uint8_t *hdr);

/* Sets a header block's checksum field as every modelled writer does
 * ("%06o\0 " of the unsigned byte sum with the field as spaces). */
void tarmodel_checksum(uint8_t *hdr);

#ifdef __cplusplus
}
#endif
#endif
