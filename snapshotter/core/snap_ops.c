/* The Snapshotter calls: each is one store transaction, with directory work
 * ordered so that a crash never leaves a record without its directory:
 * Prepare fills a staging dir and renames it to its id inside the write
 * transaction; Remove only drops the record, Cleanup deletes the dir later. */
#include "snap-internal.h"
#include "snap_filter.h"
#include "fsutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void set_why(const char **why, const char *text)
{
	if (why)
		*why = text;
}

static void now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

/* Checks a key from containerd; a store lookup rejects the overlong ones. */
static int check_key(const char *key, const char **why)
{
	if (!key || !key[0]) {
		set_why(why, "empty snapshot key");
		return -EINVAL;
	}
	return 0;
}

/* Reads key in txn, turning store errors into a reason. */
static int get_snapshot(struct snap_info *out, struct store_txn *txn, const char *key,
                        const char *missing, const char **why)
{
	int r = store_get(out, txn, key);

	if (r == -ENOENT)
		set_why(why, missing);
	else if (r == -ENAMETOOLONG)
		set_why(why, "snapshot key too long");
	else if (r == -EBADMSG)
		set_why(why, "snapshot record corrupt");
	return r;
}

/* The new snapshot's fs dir gets its parent's owner, as containerd's
 * overlayfs snapshotter does (it matters with user namespaces). */
static int inherit_owner(const struct snap *sn, const char *stage, uint64_t parent_id)
{
	char pfs[PATH_MAX], fs[PATH_MAX];
	struct stat st;
	int r = snap_dir_path(pfs, sizeof(pfs), sn, parent_id, "fs");

	if (r == 0)
		r = fsutil_pathf(fs, sizeof(fs), "%s/fs", stage);
	if (r < 0)
		return r;
	if (stat(pfs, &st) < 0)
		return -errno;
	return lchown(fs, st.st_uid, st.st_gid) < 0 ? -errno : 0;
}

/* Moves the staging dir to <snapdir>/<id>. A dir already there belongs to
 * no snapshot (its id was never committed): replace it. */
static int stage_install(const struct snap *sn, const char *stage, const char *final)
{
	int r = rename(stage, final) < 0 ? -errno : 0;

	if (r == -EEXIST || r == -ENOTEMPTY) {
		snap_warn(sn->lg, "replacing stale directory %s", final);
		r = fsutil_rmtree(final);
		if (r == 0)
			r = rename(stage, final) < 0 ? -errno : 0;
	}
	/* durable before the record that points at it (kill -9 keeps the page
	 * cache; a power cut would not) */
	return r < 0 ? r : fsutil_fsync_dir(sn->snapdir);
}

/* Checks the key is free and the parent usable; fills *parent_id. */
static int prepare_check(uint64_t *parent_id, struct store_txn *txn, const char *key,
                         const char *parent, const char **why)
{
	struct snap_info info;
	int r = get_snapshot(&info, txn, key, NULL, why);

	if (r == 0) {
		snap_info_clear(&info);
		set_why(why, "snapshot already exists");
		return -EEXIST;
	}
	if (r != -ENOENT)
		return r;
	*parent_id = 0;
	if (!parent || !parent[0])
		return 0;
	r = get_snapshot(&info, txn, parent, "parent snapshot does not exist", why);
	if (r < 0)
		return r;
	if (info.kind != SNAP_KIND_COMMITTED) {
		set_why(why, "parent is not a committed snapshot");
		r = -EINVAL;
	}
	*parent_id = info.id;
	snap_info_clear(&info);
	return r;
}

static int prepare_args(enum snap_kind kind, const char *key, const struct snap_labels *labels,
                        const char **why)
{
	int r = check_key(key, why);

	if (r < 0)
		return r;
	if (kind != SNAP_KIND_ACTIVE && kind != SNAP_KIND_VIEW) {
		set_why(why, "only active snapshots and views can be prepared");
		return -EINVAL;
	}
	if (labels && snap_labels_validate(labels) < 0) {
		set_why(why, "label empty or longer than 4096 bytes");
		return -EINVAL;
	}
	return 0;
}

static int fill_info(struct snap_info *info, enum snap_kind kind, const char *key,
                     const char *parent, const struct snap_labels *labels)
{
	info->kind = kind;
	info->name = strdup(key);
	info->parent = strdup(parent ? parent : "");
	if (!info->name || !info->parent)
		return -ENOMEM;
	now(&info->created);
	info->updated = info->created;
	return labels ? snap_labels_copy(&info->labels, labels) : 0;
}

static int prepare_locked(struct snap_mounts *out, struct snap *sn, enum snap_kind kind,
                          const char *key, const char *parent, const struct snap_labels *labels,
                          const char **why);

int snap_prepare(struct snap_mounts *out, struct snap *sn, enum snap_kind kind, const char *key,
                 const char *parent, const struct snap_labels *labels, const char **why)
{
	int delta = labels && snap_labels_get(labels, SNAP_LABEL_DELTA) != NULL;

	memset(out, 0, sizeof(*out));
	if (!delta)
		return prepare_locked(out, sn, kind, key, parent, labels, why);
	if (kind != SNAP_KIND_ACTIVE) {
		set_why(why, "a delta image is prepared as an active snapshot");
		return -EINVAL;
	}
	/* the fetched blob must not be collected before the record names it */
	pthread_rwlock_rdlock(&sn->delta_gc_rw);
	int r = snap_delta_fetch(sn, labels, why);
	if (r == 0)
		r = prepare_locked(out, sn, kind, key, parent, labels, why);
	pthread_rwlock_unlock(&sn->delta_gc_rw);
	return r;
}

static int prepare_locked(struct snap_mounts *out, struct snap *sn, enum snap_kind kind,
                          const char *key, const char *parent, const struct snap_labels *labels,
                          const char **why)
{
	struct snap_info info = {0};
	struct store_txn *txn = NULL;
	char stage[PATH_MAX], final[PATH_MAX];
	uint64_t parent_id = 0;
	int installed = 0, staged = 0;

	memset(out, 0, sizeof(*out));
	int r = prepare_args(kind, key, labels, why);
	if (r < 0)
		return r;
	r = snap_stage_create(stage, sizeof(stage), sn);
	if (r < 0)
		goto fail;
	staged = 1;
	r = store_begin(&txn, sn->store, 1);
	if (r == 0)
		r = prepare_check(&parent_id, txn, key, parent, why);
	if (r == 0 && parent_id)
		r = inherit_owner(sn, stage, parent_id);
	if (r == 0)
		r = store_alloc_id(&info.id, txn);
	if (r == 0)
		r = fill_info(&info, kind, key, parent, labels);
	if (r == 0)
		r = snap_dir_path(final, sizeof(final), sn, info.id, NULL);
	if (r == 0)
		r = stage_install(sn, stage, final);
	if (r < 0)
		goto fail;
	installed = 1;
	r = store_put(txn, &info, 1);
	if (r == 0)
		r = snap_build_mounts(out, sn, txn, &info);
	if (r < 0)
		goto fail;
	r = store_commit(txn);
	txn = NULL;
	if (r < 0)
		goto fail;
	snap_info_clear(&info);
	return 0;
fail:
	store_abort(txn);
	if (staged && fsutil_rmtree(installed ? final : stage) < 0)
		snap_warn(sn->lg, "cannot remove %s; the next sweep will",
		          installed ? final : stage);
	snap_mounts_clear(out);
	snap_info_clear(&info);
	return r;
}

int snap_mounts(struct snap_mounts *out, struct snap *sn, const char *key, const char **why)
{
	struct snap_info info;
	struct store_txn *txn;

	memset(out, 0, sizeof(*out));
	int r = check_key(key, why);
	if (r < 0)
		return r;
	r = store_begin(&txn, sn->store, 0);
	if (r < 0)
		return r;
	r = get_snapshot(&info, txn, key, "snapshot does not exist", why);
	if (r == 0) {
		if (info.kind == SNAP_KIND_ACTIVE || info.kind == SNAP_KIND_VIEW) {
			r = snap_build_mounts(out, sn, txn, &info);
		} else {
			set_why(why,
			        "snapshot is committed: only active snapshots and views mount");
			r = -EBUSY;
		}
		snap_info_clear(&info);
	}
	store_abort(txn);
	return r;
}

/* The committed snapshot's labels: the Commit's, except that a delta
 * image stays one (its di3fs labels are kept). */
static int commit_labels(struct snap_labels *have, const struct snap_labels *given)
{
	static const char *const keep[] = {SNAP_LABEL_DELTA, SNAP_LABEL_DELTA_NS};
	char *kept[2] = {NULL, NULL};
	int r = 0;

	for (size_t i = 0; i < 2; i++) {
		const char *v = snap_labels_get(have, keep[i]);
		if (v && !(kept[i] = strdup(v)))
			r = -ENOMEM;
	}
	snap_labels_clear(have);
	if (r == 0 && given)
		r = snap_labels_copy(have, given);
	for (size_t i = 0; r == 0 && i < 2; i++)
		if (kept[i])
			r = snap_labels_set(have, keep[i], kept[i]);
	free(kept[0]);
	free(kept[1]);
	return r;
}

static int commit_in_txn(struct snap_info *out, struct store_txn *txn, const char *name,
                         const char *key, const struct snap_labels *labels, const char **why)
{
	struct snap_info info, other;
	int r = get_snapshot(&info, txn, key, "snapshot does not exist", why);

	if (r < 0)
		return r;
	if (info.kind != SNAP_KIND_ACTIVE) {
		set_why(why, "snapshot is not active");
		r = -EBUSY;
		goto out;
	}
	r = get_snapshot(&other, txn, name, NULL, why);
	if (r == 0) {
		snap_info_clear(&other);
		set_why(why, "a snapshot with the commit name already exists");
		r = -EEXIST;
		goto out;
	}
	if (r != -ENOENT)
		goto out;
	r = store_del(txn, key);
	if (r < 0)
		goto out;
	free(info.name);
	info.name = strdup(name);
	r = info.name ? 0 : -ENOMEM;
	if (r == 0)
		r = commit_labels(&info.labels, labels);
	info.kind = SNAP_KIND_COMMITTED;
	now(&info.created);
	info.updated = info.created;
	if (r == 0)
		r = store_put(txn, &info, 1);
	if (r == 0) {
		*out = info;
		return 0;
	}
out:
	snap_info_clear(&info);
	return r;
}

int snap_commit(struct snap *sn, const char *name, const char *key,
                const struct snap_labels *labels, const char **why)
{
	struct store_txn *txn;
	int r = check_key(key, why);

	if (r == 0)
		r = check_key(name, why);
	if (r == 0 && labels && snap_labels_validate(labels) < 0) {
		set_why(why, "label empty or longer than 4096 bytes");
		r = -EINVAL;
	}
	if (r == 0)
		r = store_begin(&txn, sn->store, 1);
	if (r < 0)
		return r;
	struct snap_info info;
	r = commit_in_txn(&info, txn, name, key, labels, why);
	int delta = r == 0 && snap_delta_digest(&info);
	if (delta)
		r = snap_delta_activate(sn, txn, &info, why);
	if (delta && r == 0) /* queued; a failed commit below removes the image */
		snap_delta_prefetch(sn, txn, &info);
	uint64_t id = info.id;
	if (r == 0 || delta)
		snap_info_clear(&info);
	if (r < 0) {
		store_abort(txn);
		if (delta)
			snap_delta_forget(sn, id);
		return r;
	}
	r = store_commit(txn);
	if (r < 0 && delta)
		snap_delta_forget(sn, id);
	return r;
}

int snap_remove(struct snap *sn, const char *key, const char **why)
{
	struct snap_info info;
	struct store_txn *txn;
	int r = check_key(key, why);

	if (r == 0)
		r = store_begin(&txn, sn->store, 1);
	if (r < 0)
		return r;
	r = get_snapshot(&info, txn, key, "snapshot does not exist", why);
	uint64_t delta_id = r == 0 && snap_delta_digest(&info) ? info.id : 0;
	if (delta_id)
		snap_delta_note_opened(sn, txn, snap_delta_digest(&info), delta_id);
	if (r == 0) {
		snap_info_clear(&info);
		r = store_has_children(txn, key);
		if (r > 0) {
			set_why(why, "cannot remove a snapshot with children");
			r = -ENOTEMPTY;
		}
	}
	if (r == 0)
		r = store_del(txn, key);
	if (r < 0) {
		store_abort(txn);
		return r;
	}
	r = store_commit(txn);
	if (r == 0 && delta_id)
		snap_delta_forget(sn, delta_id);
	return r;
}

int snap_stat(struct snap_info *out, struct snap *sn, const char *key, const char **why)
{
	struct store_txn *txn;
	int r = check_key(key, why);

	memset(out, 0, sizeof(*out));
	if (r == 0)
		r = store_begin(&txn, sn->store, 0);
	if (r < 0)
		return r;
	r = get_snapshot(out, txn, key, "snapshot does not exist", why);
	store_abort(txn);
	return r;
}

/* Applies one field path of an Update to labels. */
static int update_path(struct snap_labels *labels, const struct snap_info *in, const char *path,
                       const char **why)
{
	if (strcmp(path, "labels") == 0) {
		snap_labels_clear(labels);
		return snap_labels_copy(labels, &in->labels);
	}
	if (strncmp(path, "labels.", 7) == 0 && path[7]) {
		const char *key = path + 7, *value = snap_labels_get(&in->labels, key);
		if (!value) {
			snap_labels_del(labels, key);
			return 0;
		}
		return snap_labels_set(labels, key, value);
	}
	set_why(why, "only labels can be updated");
	return -EINVAL;
}

static int update_in_txn(struct snap_info *out, struct store_txn *txn, const struct snap_info *in,
                         const char *const *paths, size_t n_paths, const char **why)
{
	int r = get_snapshot(out, txn, in->name, "snapshot does not exist", why);

	if (r < 0)
		return r;
	if (n_paths == 0) {
		snap_labels_clear(&out->labels);
		r = snap_labels_copy(&out->labels, &in->labels);
	}
	for (size_t i = 0; r == 0 && i < n_paths; i++)
		r = update_path(&out->labels, in, paths[i], why);
	if (r == 0 && snap_labels_validate(&out->labels) < 0) {
		set_why(why, "label empty or longer than 4096 bytes");
		r = -EINVAL;
	}
	now(&out->updated);
	if (r == 0)
		r = store_put(txn, out, 0);
	return r;
}

int snap_update(struct snap_info *out, struct snap *sn, const struct snap_info *in,
                const char *const *paths, size_t n_paths, const char **why)
{
	struct store_txn *txn;
	int r = check_key(in->name, why);

	memset(out, 0, sizeof(*out));
	if (r == 0)
		r = store_begin(&txn, sn->store, 1);
	if (r < 0)
		return r;
	r = update_in_txn(out, txn, in, paths, n_paths, why);
	if (r < 0) {
		store_abort(txn);
		snap_info_clear(out);
		return r;
	}
	r = store_commit(txn);
	if (r < 0)
		snap_info_clear(out);
	return r;
}

int snap_usage(struct snap_usage *out, struct snap *sn, const char *key, const char **why)
{
	struct snap_info info;
	struct store_txn *txn;
	char fs[PATH_MAX];
	int r = check_key(key, why);

	memset(out, 0, sizeof(*out));
	if (r == 0)
		r = store_begin(&txn, sn->store, 0);
	if (r < 0)
		return r;
	r = get_snapshot(&info, txn, key, "snapshot does not exist", why);
	store_abort(txn); /* du can take long: hold no transaction meanwhile */
	if (r < 0)
		return r;
	r = snap_dir_path(fs, sizeof(fs), sn, info.id, "fs");
	if (r == 0)
		r = fsutil_du(&out->size, &out->inodes, fs);
	if (r == 0 && info.kind == SNAP_KIND_COMMITTED && snap_delta_digest(&info))
		r = snap_delta_usage(out, sn, &info);
	snap_info_clear(&info);
	if (r == -ENOENT)
		set_why(why, "snapshot was removed meanwhile");
	return r;
}

int snap_cleanup(struct snap *sn, const char **why)
{
	int r = 0;

	pthread_mutex_lock(&sn->cleanup_mu);
	if (sn->cleanup_running) {
		/* the running sweep goes round once more; no need to wait for it */
		sn->cleanup_again = 1;
		pthread_mutex_unlock(&sn->cleanup_mu);
		return 0;
	}
	sn->cleanup_running = 1;
	do {
		sn->cleanup_again = 0;
		pthread_mutex_unlock(&sn->cleanup_mu);
		int s = snap_sweep(sn, 0);
		if (s < 0 && r == 0)
			r = s;
		pthread_mutex_lock(&sn->cleanup_mu);
	} while (sn->cleanup_again);
	sn->cleanup_running = 0;
	pthread_mutex_unlock(&sn->cleanup_mu);
	int g = snap_delta_gc(sn);
	if (g < 0 && r == 0)
		r = g;
	if (r < 0)
		set_why(why, "some directories could not be removed");
	return r;
}

struct list_ctx {
	const struct snap_filter *filter;
	struct snap_info *page;
	size_t n, max, bytes, max_bytes;
	char *last;
};

static size_t info_bytes(const struct snap_info *info)
{
	size_t n = 64 + strlen(info->name) + strlen(info->parent);

	for (size_t i = 0; i < info->labels.n; i++)
		n += 8 + strlen(info->labels.v[i].key) + strlen(info->labels.v[i].value);
	return n;
}

static int list_visit(void *ctx, const struct snap_info *info)
{
	struct list_ctx *lc = ctx;

	if (!snap_filter_match(lc->filter, info))
		return 0;
	int r = snap_info_copy(&lc->page[lc->n], info);
	if (r < 0)
		return r;
	lc->n++;
	lc->bytes += info_bytes(info);
	char *last = strdup(info->name);
	if (!last)
		return -ENOMEM;
	free(lc->last);
	lc->last = last;
	return lc->n >= lc->max || lc->bytes >= lc->max_bytes;
}

int snap_list_page(struct snap_info **out, size_t *n, char **cursor, struct snap *sn,
                   const struct snap_filter *filter, size_t max, size_t max_bytes)
{
	struct list_ctx lc = {.filter = filter, .max = max ? max : 1, .max_bytes = max_bytes};
	struct store_txn *txn;

	*out = NULL;
	*n = 0;
	lc.page = calloc(lc.max, sizeof(*lc.page));
	if (!lc.page)
		return -ENOMEM;
	int r = store_begin(&txn, sn->store, 0);
	if (r == 0) {
		r = store_scan(txn, *cursor, list_visit, &lc);
		store_abort(txn);
	}
	if (r < 0) {
		snap_list_free(lc.page, lc.n);
		free(lc.last);
		return r;
	}
	if (lc.last) {
		free(*cursor);
		*cursor = lc.last;
	}
	*out = lc.page;
	*n = lc.n;
	return 0;
}

void snap_list_free(struct snap_info *page, size_t n)
{
	for (size_t i = 0; page && i < n; i++)
		snap_info_clear(&page[i]);
	free(page);
}

void snap_mounts_clear(struct snap_mounts *m)
{
	for (size_t i = 0; i < SNAP_MOUNTS_MAX; i++) {
		free(m->v[i].type);
		free(m->v[i].source);
		for (size_t j = 0; j < m->v[i].n_options; j++)
			free(m->v[i].options[j]);
	}
	memset(m, 0, sizeof(*m));
}
