/* Snapshot metadata shared by the store, the snapshot logic and the RPC
 * layer: kinds, labels and one snapshot's info. */
#ifndef DI3FS_SNAP_TYPES_H
#define DI3FS_SNAP_TYPES_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Same numbers as containerd.services.snapshots.v1.Kind on the wire. */
enum snap_kind {
	SNAP_KIND_UNKNOWN = 0,
	SNAP_KIND_VIEW = 1,
	SNAP_KIND_ACTIVE = 2,
	SNAP_KIND_COMMITTED = 3,
};

/* containerd's limit on one label: key and value bytes together. */
#define SNAP_LABEL_MAX 4096

struct snap_label {
	char *key;
	char *value;
};

/* Sorted by key, keys unique. */
struct snap_labels {
	size_t n;
	struct snap_label *v;
};

struct snap_info {
	uint64_t id; /* names the directory <root>/snapshots/<id>; 0 = none */
	enum snap_kind kind;
	char *name;   /* containerd's key: any bytes but NUL, never a path */
	char *parent; /* "" when the snapshot has no parent */
	struct timespec created;
	struct timespec updated;
	struct snap_labels labels;
};

/* Frees what info owns and zeroes it; accepts NULL. */
void snap_info_clear(struct snap_info *info);
/* Deep copy into *out (which is overwritten, not freed). */
int snap_info_copy(struct snap_info *out, const struct snap_info *in);

void snap_labels_clear(struct snap_labels *l);
/* Inserts or replaces key (both strings are copied). */
int snap_labels_set(struct snap_labels *l, const char *key, const char *value);
/* Removes key if present. */
void snap_labels_del(struct snap_labels *l, const char *key);
/* The value of key, or NULL. */
const char *snap_labels_get(const struct snap_labels *l, const char *key);
int snap_labels_copy(struct snap_labels *out, const struct snap_labels *in);
/* -EINVAL when a key is empty or a pair exceeds SNAP_LABEL_MAX. */
int snap_labels_validate(const struct snap_labels *l);

/* "View", "Active", "Committed" or "Unknown", as containerd spells them. */
const char *snap_kind_name(enum snap_kind kind);

#endif
