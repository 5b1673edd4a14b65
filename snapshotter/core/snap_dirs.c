/* Snapshot directories: layout, staging, and the sweep that reconciles
 * them with the store at startup and on Cleanup. */
#include "snap-internal.h"
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int snap_dir_path(char *buf, size_t cap, const struct snap *sn, uint64_t id, const char *sub)
{
	if (sub)
		return fsutil_pathf(buf, cap, "%s/%llu/%s", sn->snapdir, (unsigned long long)id,
		                    sub);
	return fsutil_pathf(buf, cap, "%s/%llu", sn->snapdir, (unsigned long long)id);
}

int snap_stage_create(char *buf, size_t cap, const struct snap *sn)
{
	char sub[PATH_MAX];
	int r = fsutil_pathf(buf, cap, "%s/" SNAP_STAGE_PREFIX "XXXXXX", sn->snapdir);

	if (r < 0)
		return r;
	if (!mkdtemp(buf)) /* 0700, like containerd's snapshot dirs */
		return -errno;
	r = fsutil_pathf(sub, sizeof(sub), "%s/fs", buf);
	if (r == 0 && mkdir(sub, 0755) < 0)
		r = -errno;
	if (r == 0)
		r = fsutil_pathf(sub, sizeof(sub), "%s/work", buf);
	if (r == 0 && mkdir(sub, 0711) < 0)
		r = -errno;
	if (r < 0)
		fsutil_rmtree(buf);
	return r;
}

/* Parses a canonical decimal id (no sign, no leading zero); 0 otherwise. */
static uint64_t parse_id(const char *name)
{
	uint64_t v = 0;

	if (name[0] < '1' || name[0] > '9')
		return 0;
	for (const char *p = name; *p; p++) {
		if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	return v;
}

struct victims {
	char **names;
	size_t n, cap;
};

static int victims_add(struct victims *v, const char *name)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;
		char **names = realloc(v->names, cap * sizeof(*names));
		if (!names)
			return -ENOMEM;
		v->names = names;
		v->cap = cap;
	}
	v->names[v->n] = strdup(name);
	if (!v->names[v->n])
		return -ENOMEM;
	v->n++;
	return 0;
}

/* Decides whether entry name of snapdir belongs to no snapshot. */
static int sweep_judge(struct victims *v, const struct snap *sn, struct store_txn *txn,
                       const char *name, uint64_t next_id, int startup)
{
	if (strncmp(name, SNAP_STAGE_PREFIX, strlen(SNAP_STAGE_PREFIX)) == 0)
		return startup ? victims_add(v, name) : 0; /* else a Prepare may be filling it */
	uint64_t id = parse_id(name);
	if (id == 0) {
		snap_warn(sn->lg, "sweep: leaving unexpected entry %s/%s", sn->snapdir, name);
		return 0;
	}
	if (!startup && id >= next_id)
		return 0; /* a Prepare holds this id in its uncommitted transaction */
	int r = store_id_exists(txn, id);
	if (r == 0)
		r = victims_add(v, name);
	return r < 0 ? r : 0;
}

/* Lists the entries of snapdir that no committed snapshot owns. */
static int sweep_collect(struct victims *v, struct snap *sn, int startup)
{
	struct store_txn *txn;
	uint64_t next_id;
	int r = store_begin(&txn, sn->store, 0);

	if (r < 0)
		return r;
	r = store_peek_id(&next_id, txn);
	DIR *d = r == 0 ? opendir(sn->snapdir) : NULL;
	if (r == 0 && !d)
		r = -errno;
	struct dirent *de;
	while (r == 0 && (errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		r = sweep_judge(v, sn, txn, de->d_name, next_id, startup);
	}
	if (r == 0 && errno)
		r = -errno;
	if (d)
		closedir(d);
	store_abort(txn);
	return r;
}

int snap_sweep(struct snap *sn, int startup)
{
	struct victims v = {0};
	char path[PATH_MAX];
	int r = sweep_collect(&v, sn, startup);

	for (size_t i = 0; i < v.n; i++) {
		int e = fsutil_pathf(path, sizeof(path), "%s/%s", sn->snapdir, v.names[i]);
		if (e == 0) {
			snap_delta_unmount_base(sn, path); /* a removed delta image's */
			e = fsutil_rmtree(path);
		}
		if (e < 0) {
			snap_warn(sn->lg, "sweep: cannot remove %s: %s", path, strerror(-e));
			if (r == 0)
				r = e;
		} else {
			snap_debug(sn->lg, "sweep: removed %s (no snapshot owns it)", path);
		}
		free(v.names[i]);
	}
	free(v.names);
	return r;
}

/* Startup check of each record's directory. A missing work dir is
 * recreated (it holds nothing between mounts); a missing fs dir cannot be,
 * and is reported. */
static int verify_visit(void *ctx, const struct snap_info *info)
{
	const struct snap *sn = ctx;
	char fs[PATH_MAX], work[PATH_MAX];
	struct stat st;

	if (snap_dir_path(fs, sizeof(fs), sn, info->id, "fs") < 0 ||
	    snap_dir_path(work, sizeof(work), sn, info->id, "work") < 0)
		return 0;
	if (stat(fs, &st) < 0)
		snap_err(sn->lg, "snapshot \"%s\" (id %llu): %s: %s", info->name,
		         (unsigned long long)info->id, fs, strerror(errno));
	else if (info->kind == SNAP_KIND_ACTIVE && stat(work, &st) < 0 && errno == ENOENT &&
	         mkdir(work, 0711) == 0)
		snap_warn(sn->lg, "snapshot \"%s\": recreated %s", info->name, work);
	return 0;
}

static int snap_verify(struct snap *sn, size_t *count)
{
	struct store_txn *txn;
	int r = store_begin(&txn, sn->store, 0);

	if (r < 0)
		return r;
	r = store_scan(txn, NULL, verify_visit, sn);
	uint64_t next;
	if (r == 0)
		r = store_peek_id(&next, txn);
	store_abort(txn);
	if (r == 0)
		*count = (size_t)(next - 1);
	return r;
}

static int snap_dirs_init(struct snap *sn, const char *root)
{
	char meta[PATH_MAX];
	int r = fsutil_pathf(sn->root, sizeof(sn->root), "%s", root);

	if (r == 0)
		r = fsutil_pathf(sn->snapdir, sizeof(sn->snapdir), "%s/snapshots", root);
	if (r == 0)
		r = fsutil_pathf(meta, sizeof(meta), "%s/metadata", root);
	if (r == 0)
		r = fsutil_mkdir_p(sn->snapdir, 0700);
	if (r == 0)
		r = fsutil_mkdir_p(meta, 0700);
	if (r == 0)
		r = store_open(&sn->store, meta);
	return r;
}

int snap_open(struct snap **out, const char *root, const struct snap_log *lg)
{
	return snap_open_opts(out, root, lg, NULL, NULL);
}

int snap_open_opts(struct snap **out, const char *root, const struct snap_log *lg,
                   const struct snap_options *opt, const char **why)
{
	struct snap *sn = calloc(1, sizeof(*sn));
	size_t ids = 0;

	if (!sn)
		return -ENOMEM;
	sn->lg = lg;
	pthread_mutex_init(&sn->cleanup_mu, NULL);
	int r = snap_dirs_init(sn, root);
	if (r == 0)
		r = snap_sweep(sn, 1);
	if (r == 0)
		r = snap_verify(sn, &ids);
	if (r == 0)
		r = snap_delta_init(sn, opt, why);
	if (r < 0) {
		snap_close(sn);
		return r;
	}
	snap_info(lg, "snapshots in %s, metadata in %s/metadata, %zu ids allocated so far",
	          sn->snapdir, sn->root, ids);
	*out = sn;
	return 0;
}

void snap_close(struct snap *sn)
{
	if (!sn)
		return;
	snap_delta_fini(sn);
	store_close(sn->store);
	pthread_mutex_destroy(&sn->cleanup_mu);
	free(sn);
}
