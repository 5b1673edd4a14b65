/* What snap_*.c share: the snapshotter's state and directory layout
 * (<root>/snapshots/<id>/{fs,work}, staging dirs new-*, <root>/metadata). */
#ifndef DI3FS_SNAP_SNAP_INTERNAL_H
#define DI3FS_SNAP_SNAP_INTERNAL_H

#include "snap.h"
#include "store.h"

#include <limits.h>
#include <pthread.h>

#define SNAP_STAGE_PREFIX "new-"

struct snap {
	char root[PATH_MAX];
	char snapdir[PATH_MAX]; /* <root>/snapshots */
	struct store *store;
	const struct snap_log *lg;

	/* delta images (snap_delta.c); lfs is NULL when they are refused */
	struct lazyfs *lfs;
	char containerd_address[PATH_MAX];
	pthread_mutex_t delta_mu;     /* serialises activations */
	pthread_rwlock_t delta_gc_rw; /* fetch+record (shared) vs blob GC (exclusive) */
	int no_prefetch;              /* snap_options */

	pthread_mutex_t cleanup_mu;
	int cleanup_running; /* a sweep is under way (guarded by cleanup_mu) */
	int cleanup_again;   /* another Cleanup came in meanwhile: sweep once more */
};

/* <snapdir>/<id> when sub is NULL, else <snapdir>/<id>/<sub>. */
int snap_dir_path(char *buf, size_t cap, const struct snap *sn, uint64_t id, const char *sub);

/* Creates <snapdir>/new-XXXXXX/{fs,work}, path into buf. */
int snap_stage_create(char *buf, size_t cap, const struct snap *sn);

/* Deletes directories no stored snapshot owns. At startup (nothing else
 * running) also staging dirs and ids not yet allocated; otherwise only ids
 * below the store's next id, which no concurrent Prepare can be filling. */
int snap_sweep(struct snap *sn, int startup);

/* Builds the mounts of info (active or view), reading parents in txn. */
int snap_build_mounts(struct snap_mounts *out, const struct snap *sn, struct store_txn *txn,
                      const struct snap_info *info);

/* ---- delta images (snap_delta.c) ---- */

/* The .dimg digest label of info, or NULL for an ordinary snapshot. */
const char *snap_delta_digest(const struct snap_info *info);
/* Starts lazyfs and serves every committed delta image of the store. */
int snap_delta_init(struct snap *sn, const struct snap_options *opt, const char **why);
void snap_delta_fini(struct snap *sn);
/* Prepare with a delta label: makes sure the .dimg is in <root>/deltas
 * (fetched from containerd's content store and verified). Called with
 * delta_gc_rw held shared until the record is stored. */
int snap_delta_fetch(struct snap *sn, const struct snap_labels *labels, const char **why);
/* Commit of a delta snapshot: loads info (committed, in txn) into lazyfs. */
int snap_delta_activate(struct snap *sn, struct store_txn *txn, const struct snap_info *info,
                        const char **why);
/* After a delta image's Commit: queues the prefetch of the files in its
 * di3fs.prefetch label and those a previous run of it opened first (the
 * store's note). Never fails the Commit: problems are logged. */
void snap_delta_prefetch(struct snap *sn, struct store_txn *txn, const struct snap_info *info);
/* Delta image id (of .dimg digest) is being removed in txn: notes the
 * files its run opened first, for the next load of the same delta. */
void snap_delta_note_opened(struct snap *sn, struct store_txn *txn, const char *digest,
                            uint64_t id);
/* The snapshot id's tree is gone from the store: unload it. */
void snap_delta_forget(struct snap *sn, uint64_t id);
/* The directory a delta image's tree is seen at: <root>/fuse/<id>. */
int snap_delta_tree_path(char *buf, size_t cap, const struct snap *sn, uint64_t id);
/* Disk use of a delta image: its .dimg. */
int snap_delta_usage(struct snap_usage *out, const struct snap *sn, const struct snap_info *info);
/* Deletes fetched .dimg files no snapshot refers to. */
int snap_delta_gc(struct snap *sn);
/* Unmounts <snapdir>/<id>/base if a delta image's base view is there. */
void snap_delta_unmount_base(const struct snap *sn, const char *id_dir);

#endif
