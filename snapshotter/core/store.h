/* The snapshot metadata store: LMDB under <root>/metadata, one write
 * transaction at a time, readers never blocked. Every change a snapshot RPC
 * makes is one transaction, so a crash (kill -9) leaves the store as it was
 * before or after that RPC, never in between. */
#ifndef DI3FS_SNAP_STORE_H
#define DI3FS_SNAP_STORE_H

#include "snap_types.h"

#include <stdint.h>

struct store;
struct store_txn;

/* Opens (creating if needed) the store in directory dir. */
int store_open(struct store **out, const char *dir);
/* Closes the store; every transaction must have ended. Accepts NULL. */
void store_close(struct store *st);

/* Starts a transaction; a write transaction waits for any other to end. */
int store_begin(struct store_txn **out, struct store *st, int write);
/* Commits and frees txn (also when committing fails). */
int store_commit(struct store_txn *txn);
/* Discards and frees txn; accepts NULL. */
void store_abort(struct store_txn *txn);

/* Reads the snapshot named key into *out (the caller clears it). -ENOENT if
 * absent, -EINVAL for an empty key, -ENAMETOOLONG past the store's limit. */
int store_get(struct snap_info *out, struct store_txn *txn, const char *key);
/* Writes info under info->name, keeping the id and parent indexes in step.
 * With create set, -EEXIST if the name is taken. */
int store_put(struct store_txn *txn, const struct snap_info *info, int create);
/* Deletes the snapshot named key and its index entries; -ENOENT if absent. */
int store_del(struct store_txn *txn, const char *key);
/* 1 if some snapshot names key as its parent, 0 if none, or -errno. */
int store_has_children(struct store_txn *txn, const char *key);
/* 1 if a snapshot has this id, 0 if none, or -errno. */
int store_id_exists(struct store_txn *txn, uint64_t id);
/* Takes the next id (ids are never reused once committed). */
int store_alloc_id(uint64_t *out, struct store_txn *txn);
/* The id the next store_alloc_id would return. */
int store_peek_id(uint64_t *out, struct store_txn *txn);

/* Called per snapshot in key order: return 0 to go on, 1 to stop, <0 to
 * stop with that error. info is valid during the call only. */
typedef int (*store_visit_fn)(void *ctx, const struct snap_info *info);
/* Visits the snapshots whose key sorts after `after` (all when NULL). */
int store_scan(struct store_txn *txn, const char *after, store_visit_fn fn, void *ctx);

/* Per-image notes, apart from snapshot records (they outlive a removed
 * snapshot): the files a run of the image name (a delta's digest) opened first, the
 * next load's prefetch seeds (snapshotter/README.md). A string, malloc'd;
 * -ENOENT if none. Kept in the meta database under "opened:<name>". */
int store_opened_get(char **out, struct store_txn *txn, const char *name);
int store_opened_put(struct store_txn *txn, const char *name, const char *paths);

/* Longest key the store accepts, in bytes. */
size_t store_max_key(const struct store *st);

#endif
