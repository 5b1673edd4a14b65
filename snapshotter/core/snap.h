/* The snapshotter proper: containerd's Snapshotter semantics (as its
 * overlayfs snapshotter has them) over the metadata store and the snapshot
 * directories <root>/snapshots/<id>/{fs,work}. Thread-safe: every call may
 * run concurrently with any other.
 *
 * Each call returns 0 or -errno; on failure *why (when not NULL) points to a
 * static description for the caller's error message. The errno values say
 * what kind of failure it is:
 *   -ENOENT     no such snapshot (or parent)
 *   -EEXIST     the key (or commit name) is taken
 *   -EINVAL     bad argument (empty key, parent not committed, bad label...)
 *   -ENOTEMPTY  the snapshot has children
 *   -EBUSY      the snapshot is of the wrong kind for the call
 *   others      system errors */
#ifndef DI3FS_SNAP_SNAP_H
#define DI3FS_SNAP_SNAP_H

#include "log.h"
#include "snap_types.h"

#include <stdint.h>

struct snap;
struct snap_filter;

#define SNAP_MOUNTS_MAX  1
#define SNAP_OPTIONS_MAX 8

struct snap_mount {
	char *type;
	char *source;
	size_t n_options;
	char *options[SNAP_OPTIONS_MAX];
};

struct snap_mounts {
	size_t n;
	struct snap_mount v[SNAP_MOUNTS_MAX];
};

struct snap_usage {
	int64_t size;   /* bytes allocated on disk */
	int64_t inodes; /* distinct inodes */
};

/* Labels that make a snapshot a delta image (docs in snapshotter/README.md):
 * an active snapshot prepared with SNAP_LABEL_DELTA = "sha256:<hex>" of a
 * .dimg in containerd's content store (namespace SNAP_LABEL_DELTA_NS) is
 * committed as the complete tree of that delta applied to its parent,
 * served lazily by the FUSE filesystem. */
#define SNAP_LABEL_DELTA    "containerd.io/snapshot/di3fs.delta"
#define SNAP_LABEL_DELTA_NS "containerd.io/snapshot/di3fs.namespace"
/* Optional, on a delta image: absolute paths in its tree, one a line, that
 * its start executes (cdimg load writes Entrypoint/Cmd); prefetched at
 * Commit with what they link (snapshotter/README.md, Prefetch). */
#define SNAP_LABEL_PREFETCH "containerd.io/snapshot/di3fs.prefetch"

struct snap_options {
	int lazy;                       /* serve delta images (FUSE; needs root) */
	const char *containerd_address; /* where delta blobs are fetched from */
	uint64_t cache_max;             /* rebuilt-file cache limit, bytes (0: none) */
	unsigned fuse_threads;          /* 0: lazyfs's default */
	/* How long FUSE requests wait for a restarted daemon (an fd holder
	 * keeps the mount meanwhile); 0: no holder, the mount ends with us. */
	unsigned restart_wait_ms;
	int no_prefetch; /* no prefetch of delta images' start files */
};

/* The fd holder's socket under the root (lazyfs.h). */
#define SNAP_FUSE_HOLDER "fuse.sock"

/* Opens the snapshotter rooted at root (created if missing) and reconciles
 * directories with the store: leftovers of interrupted calls and of removed
 * snapshots are deleted. lg must outlive the snapshotter. Without options
 * (snap_open) delta images are refused. With opt->lazy the FUSE filesystem
 * is mounted at <root>/fuse and every delta image in the store is served
 * again. */
int snap_open(struct snap **out, const char *root, const struct snap_log *lg);
int snap_open_opts(struct snap **out, const char *root, const struct snap_log *lg,
                   const struct snap_options *opt, const char **why);
/* Stops serving: the FUSE mount stays (with restart_wait), kept by the fd
 * holder for the next daemon; base views are unmounted. */
void snap_close(struct snap *sn);
/* For a root no daemon serves (its lock held): ends the fd holder, the
 * FUSE mount and the base views a stopped daemon left for its successor. */
int snap_unmount(const char *root, const struct snap_log *lg);

/* Creates an active (kind SNAP_KIND_ACTIVE) or view (SNAP_KIND_VIEW) snapshot
 * named key on top of the committed snapshot parent ("" for none), with the
 * given labels (NULL for none), and returns its mounts. */
int snap_prepare(struct snap_mounts *out, struct snap *sn, enum snap_kind kind, const char *key,
                 const char *parent, const struct snap_labels *labels, const char **why);
/* The mounts of an active snapshot or view. */
int snap_mounts(struct snap_mounts *out, struct snap *sn, const char *key, const char **why);
/* Turns active snapshot key into committed snapshot name; labels replace
 * the old ones (containerd does not inherit them). */
int snap_commit(struct snap *sn, const char *name, const char *key,
                const struct snap_labels *labels, const char **why);
/* Forgets snapshot key; its directory goes at the next snap_cleanup. */
int snap_remove(struct snap *sn, const char *key, const char **why);
int snap_stat(struct snap_info *out, struct snap *sn, const char *key, const char **why);
/* Updates the labels of in->name: paths "labels" (all) or "labels.<key>"
 * (one; removed when in has no such label); no paths = all labels. */
int snap_update(struct snap_info *out, struct snap *sn, const struct snap_info *in,
                const char *const *paths, size_t n_paths, const char **why);
int snap_usage(struct snap_usage *out, struct snap *sn, const char *key, const char **why);
/* Deletes the directories of removed snapshots. */
int snap_cleanup(struct snap *sn, const char **why);

/* One page of snapshots after key *cursor (NULL: from the start) that match
 * filter (NULL: all): at most max entries and about max_bytes of strings.
 * Sets *n = 0 at the end. *cursor is replaced by the last key visited; the
 * caller frees it and the page (snap_list_free). */
int snap_list_page(struct snap_info **out, size_t *n, char **cursor, struct snap *sn,
                   const struct snap_filter *filter, size_t max, size_t max_bytes);
void snap_list_free(struct snap_info *page, size_t n);

void snap_mounts_clear(struct snap_mounts *m);

#endif
