/* In-memory file trees: the metadata of every entry of an image's root
 * filesystem, sorted by path, with content hashes. Trees hold no file data. */
#ifndef DIMG_TREE_H
#define DIMG_TREE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dimg/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Entry types; the values are part of the on-disk formats. */
enum dimg_type {
	DIMG_TYPE_DIR = 1,
	DIMG_TYPE_REG = 2,
	DIMG_TYPE_SYMLINK = 3,
	DIMG_TYPE_HARDLINK = 4, /* another name of the regular file at `link` */
	DIMG_TYPE_CHR = 5,
	DIMG_TYPE_BLK = 6,
	DIMG_TYPE_FIFO = 7,
};

/* How a regular file of a delta's target tree is obtained; on-disk values. */
enum dimg_payload {
	DIMG_PAYLOAD_NONE = 0,  /* not a regular file */
	DIMG_PAYLOAD_EMPTY = 1, /* zero bytes */
	DIMG_PAYLOAD_SAME = 2,  /* bytes equal to base file `src` */
	DIMG_PAYLOAD_FULL = 3,  /* blob is a zstd frame of the content */
	DIMG_PAYLOAD_PATCH = 4, /* blob is a patch (codec) against base `src` */
};

struct dimg_xattr {
	char *name;     /* NUL-terminated */
	uint8_t *value; /* value_len bytes, may contain NULs */
	uint32_t value_len;
};

struct dimg_entry {
	char *path; /* relative, no leading '/', "" is the root directory */
	uint8_t type;
	uint32_t mode; /* permission and setuid/setgid/sticky bits: 07777 */
	uint32_t uid, gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint64_t size; /* regular: bytes; symlink: strlen(link) */
	uint32_t rdev_major, rdev_minor;
	uint8_t sha256[32];        /* regular files only, else zero */
	char *link;                /* symlink target or hardlink leader path */
	struct dimg_xattr *xattrs; /* sorted by name, unique */
	uint32_t nxattrs;

	/* Delta payload (only in trees read from a .dimg / planned by differ). */
	uint8_t payload;   /* enum dimg_payload */
	uint8_t codec;     /* enum dimg_codec, for DIMG_PAYLOAD_PATCH */
	uint8_t flags;     /* DIMG_ENTRY_* below */
	char *src;         /* base path for SAME/PATCH; NULL means the entry's own path */
	uint64_t blob_off; /* absolute offset of the blob in the .dimg */
	uint64_t blob_len;
	uint64_t blob_xxh3; /* XXH3-64 of the blob bytes */
};

/* Entry flags (the record's flags byte). ZDICT: a FULL blob compressed
 * with the delta's shared zstd dictionary. */
#define DIMG_ENTRY_ZDICT 0x01u

struct dimg_tree {
	struct dimg_entry *v; /* sorted by strcmp(path), unique */
	size_t n, cap;
};

/* Allocates an empty tree. */
int dimg_tree_new(struct dimg_tree **out);
void dimg_tree_free(struct dimg_tree *t);
void dimg_entry_clear(struct dimg_entry *e);

/* Deep-copies src into *dst (dst uninitialised on entry). */
int dimg_entry_copy(struct dimg_entry *dst, const struct dimg_entry *src);

/* Appends a deep copy of e. The caller keeps e. Order is not checked here. */
int dimg_tree_append(struct dimg_tree *t, const struct dimg_entry *e);

/* Appends e by moving its pointers in; e is zeroed afterwards. */
int dimg_tree_append_move(struct dimg_tree *t, struct dimg_entry *e);

/* Sorts by path (strcmp). Returns -EEXIST if two entries share a path. */
int dimg_tree_sort(struct dimg_tree *t);

/* Binary search by path; NULL if absent. */
const struct dimg_entry *dimg_tree_find(const struct dimg_tree *t, const char *path);
ssize_t dimg_tree_index(const struct dimg_tree *t, const char *path);

/* Checks that the tree is one a safe writer can materialise: sorted and
 * unique paths; every path normalised (no empty, ".", ".." components, no
 * leading or trailing '/'); a root entry "" that is a directory; each
 * entry's parent is a DIR entry of the tree (so no path passes through a
 * symlink); hardlinks name an earlier REG entry and carry no metadata of
 * their own; symlink size matches; nanoseconds < 10^9; sha256 only on REG,
 * rdev only on devices; xattr names 1..255 bytes, values <= 16 MiB. Returns 0
 * or -EBADMSG, err (NULL allowed) naming the offending path. */
int dimg_tree_validate(const struct dimg_tree *t, struct dimg_err *err);

/* Equality of two entries as the tree id sees them (path, type, mode,
 * owner, mtime, size, rdev, sha256, link, xattrs). Payload fields ignored.
 * Entries at different paths are never equal. */
int dimg_entry_meta_equal(const struct dimg_entry *a, const struct dimg_entry *b);

/* SHA-256 over the canonical encoding of every entry (docs/FORMAT.md). */
int dimg_tree_id(const struct dimg_tree *t, uint8_t out[32]);

/* Lower-case hex of 32 bytes into out[65]. */
void dimg_hex32(const uint8_t in[32], char out[65]);

/* Opens regular files of a tree for reading; returns an fd the caller
 * closes, or -errno. The file is found by e->path in the provider's own
 * tree (callers may pass an entry with only the path set). Used for the
 * base of a delta and the target of a diff. */
struct dimg_files {
	int (*open)(void *ctx, const struct dimg_entry *e, int *out_fd);
	void *ctx;
};

/* Files under a directory, opened by entry path without following any
 * symlink (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or a component walk
 * with O_NOFOLLOW where openat2 is missing). *out owns a dup of the root. */
int dimg_dir_files_open(struct dimg_files *out, const char *root);
void dimg_dir_files_close(struct dimg_files *f);

#define DIMG_WALK_NO_HASH 0x1u /* leave sha256 zero (fast listing) */

/* Reads the directory tree at `root` into *out: lstat of every entry,
 * symlink targets, xattrs (llistxattr), hardlinks (st_nlink>1, by dev/ino;
 * the first path in sorted order is the REG leader, others HARDLINK), and
 * the SHA-256 of every regular file. Sockets are skipped. Never follows a
 * symlink. nthreads (0 = one per core) hash files in parallel; the result
 * does not depend on it. On error err (NULL allowed) names the file that
 * failed: its path in the tree, or root itself. */
int dimg_tree_walk(struct dimg_tree **out, const char *root, unsigned flags, unsigned nthreads,
                   dimg_progress_fn progress, void *pctx, struct dimg_err *err);

struct dimg_walk_stats {
	uint64_t files_hashed, bytes_hashed; /* read and hashed by this walk */
	uint64_t files_cached;               /* digests taken from the hash cache */
};

struct dimg_walk_opts {
	unsigned flags;    /* DIMG_WALK_* */
	unsigned nthreads; /* hashing threads, 0 = one per core */
	/* Directory of the persistent hash cache (NULL: none): regular files
	 * whose device, inode, size, mtime and ctime match what an earlier walk
	 * of the same root stored are not read again. Used only on local
	 * filesystems that keep ctime themselves (ext4, xfs, btrfs, tmpfs,
	 * f2fs); its files must be ours and closed to others. Failing to read
	 * or write it is never an error. */
	const char *hash_cache;
	dimg_progress_fn progress;
	void *pctx;
	struct dimg_walk_stats *stats; /* filled in when non-NULL */
};

/* dimg_tree_walk with options. */
int dimg_tree_walk_opts(struct dimg_tree **out, const char *root, const struct dimg_walk_opts *o,
                        struct dimg_err *err);

#ifdef __cplusplus
}
#endif
#endif
