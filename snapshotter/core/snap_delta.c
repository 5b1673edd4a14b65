/* Delta images: a committed snapshot whose tree is a .dimg applied to its
 * parent's tree, served lazily by lazyfs at <root>/fuse/<id>.
 *
 *   Prepare(key, parent, {di3fs.delta: sha256:D, di3fs.namespace: NS})
 *     fetches blob D from containerd's content store (namespace NS) into
 *     <root>/deltas/sha256/<D>, verified, unless it is there already;
 *   Commit(name, key) loads the delta over the parent's tree into lazyfs;
 *     children of the committed snapshot get <root>/fuse/<id> as their
 *     lowest lowerdir (it holds the complete tree).
 * The parent's tree is a directory: a lone layer's fs dir, or a read-only
 * overlay of the parent chain mounted at <snapdir>/<id>/base; or, when the
 * parent is itself a delta image, that image inside lazyfs (chains).
 * The base is not hashed: its identity is containerd's chain id (digests of
 * the layers containerd verified when it unpacked them), and every file
 * rebuilt from it is checked against the SHA-256 the delta records. */
#include "snap-internal.h"
#include "ctrd.h"
#include "fsutil.h"
#include "lazyfs.h"

#include "dimg/dimg.h"
#include "dimg/hash.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define DELTA_DIGEST_PREFIX "sha256:"
#define DELTA_HEX_LEN       64
/* Far deeper than any real chain: a deeper one means a loop. */
#define DELTA_DEPTH_MAX 256

/* A reason with details, valid until the calling thread's next call here
 * (the RPC layer copies it into the reply right away). */
static const char *whyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *whyf(const char *fmt, ...)
{
	static _Thread_local char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return buf;
}

static void set_why(const char **why, const char *text)
{
	if (why)
		*why = text;
}

const char *snap_delta_digest(const struct snap_info *info)
{
	return snap_labels_get(&info->labels, SNAP_LABEL_DELTA);
}

/* The hex part of a "sha256:<64 lower-case hex>" digest, or NULL. */
static const char *digest_hex(const char *digest)
{
	size_t n = strlen(DELTA_DIGEST_PREFIX);

	if (!digest || strncmp(digest, DELTA_DIGEST_PREFIX, n) != 0 ||
	    strlen(digest + n) != DELTA_HEX_LEN)
		return NULL;
	for (const char *p = digest + n; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return NULL;
	return digest + n;
}

static int blob_path(char *buf, size_t cap, const struct snap *sn, const char *hex)
{
	return fsutil_pathf(buf, cap, "%s/deltas/sha256/%s", sn->root, hex);
}

int snap_delta_tree_path(char *buf, size_t cap, const struct snap *sn, uint64_t id)
{
	return fsutil_pathf(buf, cap, "%s/fuse/%llu", sn->root, (unsigned long long)id);
}

/* ---------------------------------------------------------------- fetch */

struct fetch {
	int fd;
	uint64_t size;
	struct dimg_sha256 *sha;
};

static int fetch_sink(void *ctx, const void *p, size_t n)
{
	struct fetch *f = ctx;
	const char *c = p;

	dimg_sha256_update(f->sha, p, n);
	f->size += n;
	while (n > 0) {
		ssize_t w = write(f->fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Streams blob digest from containerd into tmp; checks its SHA-256. */
static int fetch_to(struct snap *sn, const char *digest, const char *ns, int fd, const char **why)
{
	struct fetch f = {.fd = fd};
	struct ctrd *c = NULL;
	struct dimg_err err = {0};
	char hex[65];
	uint8_t got[32];
	int r = dimg_sha256_new(&f.sha);

	if (r == 0)
		r = ctrd_connect(&c, sn->containerd_address, ns, 5000, &err);
	if (r == 0)
		r = ctrd_content_read(c, digest, fetch_sink, &f, &err);
	if (r < 0) {
		set_why(why, whyf("cannot fetch delta %s from containerd at %s (namespace %s): %s",
		                  digest, sn->containerd_address, ns,
		                  err.why[0] ? err.why : strerror(-r)));
	} else {
		dimg_sha256_final(f.sha, got);
		dimg_hex32(got, hex);
		if (strcmp(hex, digest_hex(digest)) != 0) {
			set_why(why,
			        whyf("delta %s from containerd has digest sha256:%s", digest, hex));
			r = -EBADMSG;
		}
	}
	if (r == 0 && fdatasync(fd) < 0)
		r = -errno;
	ctrd_close(c);
	dimg_sha256_free(f.sha);
	return r;
}

/* Opens the .dimg at path to check it is one. */
static int check_dimg(const char *path, const char *digest, const char **why)
{
	struct dimg_reader *rd;
	int r = dimg_reader_open(&rd, path);

	if (r < 0) {
		set_why(why, whyf("delta %s is not a usable .dimg: %s", digest,
		                  r == -ENOTSUP ? "unsupported format version" : strerror(-r)));
		return r == -ENOMEM ? r : -EINVAL;
	}
	dimg_reader_free(rd);
	return 0;
}

int snap_delta_fetch(struct snap *sn, const struct snap_labels *labels, const char **why)
{
	const char *digest = snap_labels_get(labels, SNAP_LABEL_DELTA);
	const char *ns = snap_labels_get(labels, SNAP_LABEL_DELTA_NS);
	const char *hex = digest_hex(digest);
	char final[PATH_MAX], tmp[PATH_MAX];
	struct stat st;

	if (!sn->lfs) {
		set_why(why, "delta images are not served: the snapshotter runs without FUSE");
		return -EINVAL;
	}
	if (!hex) {
		set_why(why, "label " SNAP_LABEL_DELTA " is not a sha256:<hex> digest");
		return -EINVAL;
	}
	int r = blob_path(final, sizeof(final), sn, hex);
	if (r == 0 && stat(final, &st) == 0)
		return 0; /* complete: only renamed into place once verified */
	if (r == 0)
		r = fsutil_pathf(tmp, sizeof(tmp), "%s/deltas/tmp/fetch-XXXXXX", sn->root);
	if (r < 0)
		return r;
	int fd = mkstemp(tmp);
	if (fd < 0)
		return -errno;
	r = fetch_to(sn, digest, ns && ns[0] ? ns : CTRD_DEFAULT_NAMESPACE, fd, why);
	close(fd);
	if (r == 0)
		r = check_dimg(tmp, digest, why);
	if (r == 0 && rename(tmp, final) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	snap_info(sn->lg, "fetched delta %s", digest);
	*strrchr(final, '/') = '\0';
	return fsutil_fsync_dir(final);
}

/* ---------------------------------------------------------------- activation */

static void id_name(char buf[24], uint64_t id)
{
	snprintf(buf, 24, "%llu", (unsigned long long)id);
}

static void unmount_base(const struct snap_log *lg, const char *id_dir)
{
	char base[PATH_MAX];

	if (fsutil_pathf(base, sizeof(base), "%s/base", id_dir) < 0)
		return;
	while (umount2(base, MNT_DETACH) == 0)
		; /* stacked stale mounts of earlier runs */
	if (errno != EINVAL && errno != ENOENT)
		snap_warn(lg, "umount %s: %s", base, strerror(errno));
}

void snap_delta_unmount_base(const struct snap *sn, const char *id_dir)
{
	unmount_base(sn->lg, id_dir);
}

/* The directories of the chain below a delta image, nearest first, joined
 * for overlay's lowerdir; stops at (and includes) a delta ancestor's tree. */
struct lowers {
	char *opt;
	size_t len, cap, n;
	char first[PATH_MAX];
};

static int lowers_add(struct lowers *l, const char *dir)
{
	size_t need = l->len + strlen(dir) + 2;

	if (need > l->cap) {
		size_t cap = need * 2 + 256;
		char *opt = realloc(l->opt, cap);
		if (!opt)
			return -ENOMEM;
		l->opt = opt;
		l->cap = cap;
	}
	int r = fsutil_pathf(l->opt + l->len, l->cap - l->len, "%s%s", l->n ? ":" : "", dir);
	if (r == 0 && l->n == 0)
		r = fsutil_pathf(l->first, sizeof(l->first), "%s", dir);
	if (r < 0)
		return r;
	l->len += strlen(l->opt + l->len);
	l->n++;
	return 0;
}

static int activate_rec(struct snap *sn, struct store_txn *txn, const struct snap_info *info,
                        int depth, const char **why);

/* Collects the parent chain of a delta image into l; a delta ancestor is
 * activated first and ends the chain. */
static int chain_lowers(struct lowers *l, struct snap *sn, struct store_txn *txn,
                        const char *parent, int depth, const char **why)
{
	char dir[PATH_MAX], *next = strdup(parent);
	int r = next ? 0 : -ENOMEM;

	while (r == 0 && next[0]) {
		struct snap_info p;
		if (l->n >= DELTA_DEPTH_MAX * 16) {
			r = -ELOOP;
			break;
		}
		r = store_get(&p, txn, next);
		if (r == -ENOENT) {
			set_why(why, whyf("parent snapshot \"%s\" vanished", next));
			r = -EBADMSG;
		}
		if (r < 0)
			break;
		if (snap_delta_digest(&p)) {
			r = activate_rec(sn, txn, &p, depth + 1, why);
			if (r == 0)
				r = snap_delta_tree_path(dir, sizeof(dir), sn, p.id);
			if (r == 0)
				r = lowers_add(l, dir);
			snap_info_clear(&p);
			break;
		}
		r = snap_dir_path(dir, sizeof(dir), sn, p.id, "fs");
		if (r == 0)
			r = lowers_add(l, dir);
		free(next);
		next = p.parent;
		p.parent = NULL;
		snap_info_clear(&p);
	}
	free(next);
	return r;
}

/* Mounts the read-only overlay of several lower dirs at <id>/base. */
static int mount_base_view(const struct snap *sn, uint64_t id, const struct lowers *l, char *out,
                           size_t cap)
{
	char iddir[PATH_MAX], *opt;
	int r = snap_dir_path(iddir, sizeof(iddir), sn, id, NULL);

	if (r == 0)
		r = snap_dir_path(out, cap, sn, id, "base");
	if (r < 0)
		return r;
	snap_delta_unmount_base(sn, iddir);
	if (mkdir(out, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (asprintf(&opt, "lowerdir=%s", l->opt) < 0)
		return -ENOMEM;
	r = mount("overlay", out, "overlay", MS_RDONLY, opt) < 0 ? -errno : 0;
	free(opt);
	return r;
}

static int activate_rec(struct snap *sn, struct store_txn *txn, const struct snap_info *info,
                        int depth, const char **why)
{
	struct lowers l = {0};
	struct lazyfs_base base = {0};
	char name[24], blob[PATH_MAX], dir[PATH_MAX];
	const char *hex = digest_hex(snap_delta_digest(info));
	int r = 0;

	id_name(name, info->id);
	if (lazyfs_find(sn->lfs, name))
		return 0;
	if (depth > DELTA_DEPTH_MAX) {
		set_why(why, "delta chain too deep (a loop?)");
		return -ELOOP;
	}
	if (!hex) {
		set_why(why, "bad " SNAP_LABEL_DELTA " label");
		return -EINVAL;
	}
	r = blob_path(blob, sizeof(blob), sn, hex);
	if (r == 0 && !info->parent[0]) {
		r = fsutil_pathf(dir, sizeof(dir), "%s/deltas/empty", sn->root);
		base.dir = dir;
	} else if (r == 0) {
		struct snap_info p;
		r = store_get(&p, txn, info->parent);
		if (r == 0 && snap_delta_digest(&p)) {
			char pname[24];
			r = activate_rec(sn, txn, &p, depth + 1, why);
			if (r < 0) /* the parent's own error is logged just before */
				set_why(why, "its parent delta image is not served");
			id_name(pname, p.id);
			base.image = r == 0 ? lazyfs_find(sn->lfs, pname) : NULL;
			if (r == 0 && !base.image)
				r = -ENOENT;
		} else if (r == 0) {
			r = chain_lowers(&l, sn, txn, info->parent, depth, why);
			if (r == 0 && l.n == 1)
				base.dir = l.first;
			else if (r == 0 &&
			         (r = mount_base_view(sn, info->id, &l, dir, sizeof(dir))) == 0)
				base.dir = dir;
		}
		snap_info_clear(&p);
	}
	if (r == 0 && info->id > UINT32_MAX) {
		set_why(why, "snapshot id past 2^32: no FUSE node ids left for it");
		r = -EOVERFLOW;
	}
	if (r == 0) /* node ids from the snapshot id: the same after a restart */
		r = lazyfs_add(sn->lfs, name, info->id, blob, &base, NULL, why);
	if (r < 0 && why && *why)
		snap_err(sn->lg, "delta image \"%s\" (id %s, %s): %s: %s", info->name, name,
		         snap_delta_digest(info), *why, strerror(-r));
	else if (r < 0)
		snap_err(sn->lg, "delta image \"%s\" (id %s, %s): %s", info->name, name,
		         snap_delta_digest(info), strerror(-r));
	else
		snap_debug(sn->lg, "delta image \"%s\" served at %s/fuse/%s", info->name, sn->root,
		           name);
	free(l.opt);
	return r;
}

int snap_delta_activate(struct snap *sn, struct store_txn *txn, const struct snap_info *info,
                        const char **why)
{
	if (!sn->lfs) {
		set_why(why, "delta images are not served: the snapshotter runs without FUSE");
		return -EINVAL;
	}
	pthread_mutex_lock(&sn->delta_mu);
	int r = activate_rec(sn, txn, info, 0, why);
	pthread_mutex_unlock(&sn->delta_mu);
	if (r == 0 && why)
		*why = NULL; /* lazyfs sets a reason before each step */
	return r;
}

void snap_delta_forget(struct snap *sn, uint64_t id)
{
	char name[24], iddir[PATH_MAX];

	if (!sn->lfs)
		return;
	id_name(name, id);
	pthread_mutex_lock(&sn->delta_mu);
	int r = lazyfs_remove(sn->lfs, name);
	pthread_mutex_unlock(&sn->delta_mu);
	if (r < 0 && r != -ENOENT)
		snap_warn(sn->lg, "unloading delta image %s: %s", name, strerror(-r));
	if (snap_dir_path(iddir, sizeof(iddir), sn, id, NULL) == 0)
		snap_delta_unmount_base(sn, iddir);
}

int snap_delta_usage(struct snap_usage *out, const struct snap *sn, const struct snap_info *info)
{
	const char *hex = digest_hex(snap_delta_digest(info));
	char blob[PATH_MAX];
	struct stat st;
	int r = hex ? blob_path(blob, sizeof(blob), sn, hex) : -EINVAL;

	if (r == 0 && stat(blob, &st) < 0)
		r = -errno;
	if (r == 0) {
		out->size += (int64_t)st.st_blocks * 512;
		out->inodes += 1;
	}
	return r;
}

/* ---------------------------------------------------------------- startup, GC */

struct restore {
	struct snap *sn;
	char **keys;
	size_t n, cap;
};

static int restore_visit(void *ctx, const struct snap_info *info)
{
	struct restore *rs = ctx;

	if (info->kind != SNAP_KIND_COMMITTED || !snap_delta_digest(info))
		return 0;
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 16;
		char **keys = realloc(rs->keys, cap * sizeof(*keys));
		if (!keys)
			return -ENOMEM;
		rs->keys = keys;
		rs->cap = cap;
	}
	rs->keys[rs->n] = strdup(info->name);
	return rs->keys[rs->n++] ? 0 : -ENOMEM;
}

/* Serves every committed delta image again (parents first, by recursion).
 * One that fails is logged and left out; the others still come up. */
static int restore_all(struct snap *sn)
{
	struct restore rs = {.sn = sn};
	struct store_txn *txn;
	size_t ok = 0;
	int r = store_begin(&txn, sn->store, 0);

	if (r == 0)
		r = store_scan(txn, NULL, restore_visit, &rs);
	if (r == 0 && rs.n)
		snap_info(sn->lg, "loading %zu delta images again", rs.n);
	for (size_t i = 0; r == 0 && i < rs.n; i++) {
		struct snap_info info;
		const char *why = NULL;
		if (store_get(&info, txn, rs.keys[i]) == 0) {
			if (snap_delta_activate(sn, txn, &info, &why) == 0)
				ok++;
			snap_info_clear(&info);
		}
	}
	store_abort(txn);
	for (size_t i = 0; i < rs.n; i++)
		free(rs.keys[i]);
	free(rs.keys);
	if (r == 0 && rs.n)
		snap_info(sn->lg, "serving %zu of %zu delta images again", ok, rs.n);
	return r;
}

static int clear_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	return 0;
}

int snap_delta_init(struct snap *sn, const struct snap_options *opt, const char **why)
{
	static const char *const subdirs[] = {"deltas/sha256", "deltas/tmp", "deltas/empty",
	                                      "cache"};
	char path[PATH_MAX], cache[PATH_MAX], mnt[PATH_MAX], holder[PATH_MAX];
	int r = 0;

	pthread_mutex_init(&sn->delta_mu, NULL);
	pthread_rwlock_init(&sn->delta_gc_rw, NULL);
	snprintf(sn->containerd_address, sizeof(sn->containerd_address), "%s",
	         opt && opt->containerd_address ? opt->containerd_address : CTRD_DEFAULT_ADDRESS);
	if (!opt || !opt->lazy)
		return 0;
	/* the FUSE mount point may hold a live mount kept for us: only mkdir
	 * (a stat there would wait for the server, that is, for us) */
	if (fsutil_pathf(path, sizeof(path), "%s/fuse", sn->root) == 0 && mkdir(path, 0700) < 0 &&
	    errno != EEXIST)
		r = -errno;
	for (size_t i = 0; r == 0 && i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		r = fsutil_pathf(path, sizeof(path), "%s/%s", sn->root, subdirs[i]);
		if (r == 0)
			r = fsutil_mkdir_p(path, 0700);
	}
	if (r == 0)
		r = fsutil_pathf(path, sizeof(path), "%s/deltas/tmp", sn->root);
	if (r == 0)
		r = clear_dir(path);
	if (r == 0)
		r = fsutil_pathf(cache, sizeof(cache), "%s/cache", sn->root);
	if (r == 0)
		r = fsutil_pathf(mnt, sizeof(mnt), "%s/fuse", sn->root);
	if (r == 0)
		r = fsutil_pathf(holder, sizeof(holder), "%s/" SNAP_FUSE_HOLDER, sn->root);
	if (r < 0) {
		set_why(why, whyf("cannot create %s: %s", path, strerror(-r)));
		return r;
	}
	/* the empty base of a delta with no parent; overlay lowers must be
	 * reachable by others (allow_other serves everyone) */
	if (fsutil_pathf(path, sizeof(path), "%s/deltas/empty", sn->root) == 0)
		chmod(path, 0755);
	struct lazyfs_config lc = {
	    .mountpoint = mnt,
	    .cache_dir = cache,
	    .cache_max = opt->cache_max,
	    .threads = opt->fuse_threads,
	    .lg = sn->lg,
	    .holder = holder,
	    .wait_ms = opt->restart_wait_ms,
	};
	sn->no_prefetch = opt->no_prefetch;
	r = lazyfs_start(&sn->lfs, &lc, why);
	if (r < 0)
		return r;
	r = restore_all(sn);
	lazyfs_restored(sn->lfs);
	return r;
}

/* Read-only overlay base views are the daemon's own (rebuilds read
 * them), never a container's: they go with it, and the next daemon mounts
 * them again. */
static void unmount_base_views(const struct snap_log *lg, const char *snapdir)
{
	char iddir[PATH_MAX];
	DIR *d = opendir(snapdir);
	struct dirent *de;

	while (d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] >= '0' && de->d_name[0] <= '9' &&
		    fsutil_pathf(iddir, sizeof(iddir), "%s/%s", snapdir, de->d_name) == 0)
			unmount_base(lg, iddir);
	}
	if (d)
		closedir(d);
}

int snap_unmount(const char *root, const struct snap_log *lg)
{
	char holder[PATH_MAX], mnt[PATH_MAX], snapdir[PATH_MAX];
	int r = fsutil_pathf(holder, sizeof(holder), "%s/" SNAP_FUSE_HOLDER, root);

	if (r == 0)
		r = fsutil_pathf(mnt, sizeof(mnt), "%s/fuse", root);
	if (r == 0)
		r = fsutil_pathf(snapdir, sizeof(snapdir), "%s/snapshots", root);
	if (r == 0)
		r = lazyfs_unmount(holder, mnt, lg);
	if (r == 0)
		unmount_base_views(lg, snapdir);
	return r;
}

void snap_delta_fini(struct snap *sn)
{
	int lazy = sn->lfs != NULL;
	lazyfs_stop(sn->lfs);
	sn->lfs = NULL;
	if (lazy)
		unmount_base_views(sn->lg, sn->snapdir);
	pthread_rwlock_destroy(&sn->delta_gc_rw);
	pthread_mutex_destroy(&sn->delta_mu);
}

struct blob_refs {
	char (*hex)[DELTA_HEX_LEN + 1];
	size_t n, cap;
};

static int refs_visit(void *ctx, const struct snap_info *info)
{
	struct blob_refs *br = ctx;
	const char *hex = digest_hex(snap_delta_digest(info));

	if (!hex)
		return 0;
	if (br->n == br->cap) {
		size_t cap = br->cap ? br->cap * 2 : 16;
		void *v = realloc(br->hex, cap * sizeof(*br->hex));
		if (!v)
			return -ENOMEM;
		br->hex = v;
		br->cap = cap;
	}
	memcpy(br->hex[br->n++], hex, DELTA_HEX_LEN + 1);
	return 0;
}

static int refs_has(const struct blob_refs *br, const char *hex)
{
	for (size_t i = 0; i < br->n; i++)
		if (strcmp(br->hex[i], hex) == 0)
			return 1;
	return 0;
}

int snap_delta_gc(struct snap *sn)
{
	struct blob_refs br = {0};
	struct store_txn *txn;
	char dir[PATH_MAX];
	int r;

	if (!sn->lfs)
		return 0;
	pthread_rwlock_wrlock(&sn->delta_gc_rw);
	r = fsutil_pathf(dir, sizeof(dir), "%s/deltas/sha256", sn->root);
	if (r == 0)
		r = store_begin(&txn, sn->store, 0);
	if (r == 0) {
		r = store_scan(txn, NULL, refs_visit, &br);
		store_abort(txn);
	}
	DIR *d = r == 0 ? opendir(dir) : NULL;
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || refs_has(&br, de->d_name))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			snap_debug(sn->lg, "removed unused delta sha256:%s", de->d_name);
	}
	if (d)
		closedir(d);
	pthread_rwlock_unlock(&sn->delta_gc_rw);
	free(br.hex);
	return r;
}
