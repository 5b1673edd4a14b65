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

#endif
