/* lazyfs: starting and stopping (the connection: lazyfs_conn.c, its
 * workers: lazyfs_loop.c), loading and removing images (lazyfs.h). */
#define FUSE_USE_VERSION 312
#include "lazyfs-holder.h"
#include "lazyfs-internal.h"

#include "dimg/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define LAZYFS_DEFAULT_THREADS 8

/* The kernel gives a FUSE mount 128 KiB of readahead; sequential reads of
 * rebuilt files (one request per window) go several times faster with a
 * larger window, which root sets through the mount's bdi. Best effort. */
#define LAZYFS_READAHEAD_KB 4096
void lazyfs_widen_readahead(struct lazyfs *fs)
{
	uint64_t dev;
	char path[64];
	if (lazyfs_mount_dev(fs->mountpoint, &dev) < 0)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major(dev), minor(dev));
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (dprintf(fd, "%d\n", LAZYFS_READAHEAD_KB) < 0)
		snap_debug(fs->lg, "lazyfs: %s: %s", path, strerror(errno));
	close(fd);
}

/* The mountpoint with its directory made canonical; the last component is
 * not resolved: a live FUSE mount there could hang a lookup. */
static char *canonical_mountpoint(const char *mnt)
{
	char *copy = strdup(mnt), *dir = NULL, *out = NULL;
	if (!copy)
		return NULL;
	char *slash = strrchr(copy, '/');
	const char *base = slash ? slash + 1 : copy;
	if (slash)
		*slash = '\0';
	dir = realpath(slash ? (copy[0] ? copy : "/") : ".", NULL);
	if (dir && base[0] && asprintf(&out, "%s/%s", strcmp(dir, "/") ? dir : "", base) < 0)
		out = NULL;
	free(dir);
	free(copy);
	return out;
}

static int fs_init(struct lazyfs *fs, const struct lazyfs_config *cfg)
{
	pthread_rwlock_init(&fs->lock, NULL);
	pthread_mutex_init(&fs->hlock, NULL);
	pthread_mutex_init(&fs->restore_mu, NULL);
	pthread_cond_init(&fs->restore_cv, NULL);
	fs->conn.fd = fs->conn.holder = fs->conn.journal_fd = fs->conn.stop_efd = -1;
	fs->conn.loop_efd = -1;
	fs->lg = cfg->lg;
	fs->next_id = 1;
	fs->wait_ms = cfg->wait_ms;
	fs->threads = cfg->threads ? cfg->threads : LAZYFS_DEFAULT_THREADS;
	if (fs->threads > LAZYFS_SLOTS)
		fs->threads = LAZYFS_SLOTS;
	clock_gettime(CLOCK_REALTIME, &fs->started);
	if (cfg->holder && !(fs->holder_path = strdup(cfg->holder)))
		return -ENOMEM;
	return lazyfs_files_init(fs);
}

int lazyfs_start(struct lazyfs **out, const struct lazyfs_config *cfg, const char **why)
{
	struct lazyfs *fs = calloc(1, sizeof(*fs));
	const char *dummy;
	int r = -ENOMEM;
	why = why ? why : &dummy;
	*why = "out of memory";
	if (!fs || !(fs->mountpoint = canonical_mountpoint(cfg->mountpoint)))
		goto fail;
	if ((r = fs_init(fs, cfg)) < 0)
		goto fail;
	if ((r = lazyfs_cache_open(&fs->cache, cfg->cache_dir, cfg->cache_max, cfg->lg, why)) < 0)
		goto fail;
	/* The process's first SHA-256 loads OpenSSL's configuration and
	 * providers (5-10 ms here): at start, not in the first reader's open. */
	uint8_t warm[32];
	(void)dimg_sha256_buf("", 0, warm);
	if ((r = lazyfs_prefetch_init(fs, cfg->prefetch_files, cfg->prefetch_bytes)) < 0)
		goto fail;
	if ((r = lazyfs_conn_open(fs, why)) < 0)
		goto fail;
	*why = "cannot start the FUSE threads";
	if ((r = lazyfs_loop_start(fs)) < 0)
		goto fail;
	lazyfs_conn_watch(fs);
	*out = fs;
	return 0;
fail:
	lazyfs_stop(fs);
	return r;
}

void lazyfs_restored(struct lazyfs *fs)
{
	pthread_mutex_lock(&fs->restore_mu);
	fs->restoring = 0;
	pthread_cond_broadcast(&fs->restore_cv);
	pthread_mutex_unlock(&fs->restore_mu);
}

void lazyfs_stop(struct lazyfs *fs)
{
	if (!fs)
		return;
	lazyfs_prefetch_fini(fs); /* it uses images and the cache */
	if (fs->mountpoint)
		lazyfs_restored(fs); /* no worker waits for an image any more */
	lazyfs_loop_stop(fs);
	lazyfs_conn_close(fs);
	/* Images are freed whatever their references: nothing outlives us. */
	lazyfs_files_free(fs);
	for (size_t i = 0; fs->byid && i < fs->nimages; i++)
		lazyfs_image_free(fs->byid[i]);
	free(fs->byid);
	lazyfs_cache_close(fs->cache);
	if (fs->mountpoint) {
		pthread_rwlock_destroy(&fs->lock);
		pthread_mutex_destroy(&fs->hlock);
		pthread_mutex_destroy(&fs->restore_mu);
		pthread_cond_destroy(&fs->restore_cv);
	}
	free(fs->holder_path);
	free(fs->mountpoint);
	free(fs);
}

static int name_ok(const char *name)
{
	size_t n = strlen(name);
	return n > 0 && n < 256 && !strchr(name, '/') && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

static struct lazyfs_image *find_loaded(struct lazyfs *fs, const char *name)
{
	for (size_t i = 0; i < fs->nimages; i++)
		if (fs->byid[i]->loaded && strcmp(fs->byid[i]->name, name) == 0)
			return fs->byid[i];
	return NULL;
}

/* The base tree: a walk of the directory (no hashing) or the base image's
 * tree, borrowed. *own is what the caller frees. */
static int base_tree(struct lazyfs_image *img, const struct lazyfs_base *base,
                     const struct dimg_tree **t, struct dimg_tree **own, const char **why)
{
	*own = NULL;
	if (base->image) {
		*t = base->image->tree;
		lazyfs_image_files(&img->base_files, base->image);
		return 0;
	}
	struct dimg_err err = {0};
	*why = "cannot read the base directory";
	int r = dimg_tree_walk(own, base->dir, DIMG_WALK_NO_HASH, 1, NULL, NULL, &err);
	if (r < 0) {
		snap_err(img->fs->lg, "lazyfs: image %s: base %s: %s: %s", img->name, base->dir,
		         err.what[0] ? err.what : base->dir, strerror(-r));
		return r;
	}
	*t = *own;
	r = dimg_dir_files_open(&img->base_files, base->dir);
	img->base_is_dir = r == 0;
	return r;
}

/* Reads the delta and resolves it: everything but publishing. */
static int load_image(struct lazyfs_image *img, const char *dimg_path,
                      const struct lazyfs_base *base, const char **why)
{
	const struct dimg_tree *bt;
	struct dimg_tree *own;
	*why = "cannot open the delta";
	int r = dimg_reader_open(&img->rd, dimg_path);
	if (r < 0)
		return r == -ENOTSUP || r == -EOVERFLOW ? -EBADMSG : r;
	if ((r = base_tree(img, base, &bt, &own, why)) < 0)
		return r;
	*why = "the delta does not fit the base";
	r = dimg_reader_resolve_unverified(img->rd, bt, &img->tree);
	dimg_tree_free(own);
	if (r < 0)
		return r;
	*why = "out of memory";
	return lazyfs_tree_index(img);
}

static int id_taken(const struct lazyfs *fs, uint64_t id)
{
	for (size_t i = 0; i < fs->nimages; i++)
		if (fs->byid[i]->id == id)
			return 1;
	return 0;
}

/* Publishes img under fs->lock with id (0: the next free one); -EEXIST if
 * the name or the id was taken meanwhile. byid stays sorted by id. */
static int publish(struct lazyfs *fs, struct lazyfs_image *img, uint64_t id)
{
	if (find_loaded(fs, img->name) || (id && id_taken(fs, id)))
		return -EEXIST;
	if (fs->nimages == fs->cap) {
		size_t cap = fs->cap ? fs->cap * 2 : 16;
		struct lazyfs_image **v = realloc(fs->byid, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		fs->byid = v;
		fs->cap = cap;
	}
	img->id = id ? id : fs->next_id;
	if (img->id >= fs->next_id)
		fs->next_id = img->id + 1;
	img->loaded = 1;
	size_t at = fs->nimages;
	while (at > 0 && fs->byid[at - 1]->id > img->id)
		at--;
	memmove(&fs->byid[at + 1], &fs->byid[at], (fs->nimages - at) * sizeof(fs->byid[0]));
	fs->byid[at] = img;
	fs->nimages++;
	return 0;
}

/* Takes the base image (a reference, and a dependent until removed). */
static int hold_base(struct lazyfs *fs, struct lazyfs_image *img, struct lazyfs_image *base)
{
	int r = 0;
	pthread_rwlock_wrlock(&fs->lock);
	if (!base->loaded || base->fs != fs) {
		r = -ENOENT;
	} else {
		base->dependents++;
		lazyfs_image_ref(base, 1);
		img->base_img = base;
	}
	pthread_rwlock_unlock(&fs->lock);
	return r;
}

static void drop_dependent(struct lazyfs *fs, struct lazyfs_image *img)
{
	if (!img->base_img)
		return;
	pthread_rwlock_wrlock(&fs->lock);
	img->base_img->dependents--;
	pthread_rwlock_unlock(&fs->lock);
}

int lazyfs_add(struct lazyfs *fs, const char *name, uint64_t id, const char *dimg_path,
               const struct lazyfs_base *base, struct lazyfs_image **out, const char **why)
{
	const char *dummy;
	why = why ? why : &dummy;
	*why = "bad name, id or base";
	if (!name_ok(name) || !base || !!base->dir == !!base->image || id > UINT32_MAX)
		return -EINVAL;
	*why = "name already loaded";
	if (lazyfs_find(fs, name))
		return -EEXIST;
	struct lazyfs_image *img = calloc(1, sizeof(*img));
	if (!img || !(img->name = strdup(name)) || !(img->dimg_path = strdup(dimg_path))) {
		if (img)
			free(img->name);
		free(img);
		*why = "out of memory";
		return -ENOMEM;
	}
	img->fs = fs;
	atomic_init(&img->refs, 1);
	int r = 0;
	*why = "the base image is not loaded";
	if (base->image)
		r = hold_base(fs, img, base->image);
	if (!r)
		r = load_image(img, dimg_path, base, why);
	if (!r) {
		pthread_rwlock_wrlock(&fs->lock);
		r = publish(fs, img, id);
		pthread_rwlock_unlock(&fs->lock);
		*why = r == -EEXIST ? "name or id already loaded" : *why;
	}
	if (r < 0) {
		drop_dependent(fs, img);
		lazyfs_image_unref(img->base_img, 1);
		lazyfs_image_free(img);
		return r;
	}
	lazyfs_restore_wake(fs);
	if (out)
		*out = img;
	return 0;
}

int lazyfs_remove(struct lazyfs *fs, const char *name)
{
	pthread_rwlock_wrlock(&fs->lock);
	struct lazyfs_image *img = find_loaded(fs, name);
	int r = !img ? -ENOENT : img->dependents ? -EBUSY : 0;
	if (!r) {
		img->loaded = 0;
		if (img->base_img)
			img->base_img->dependents--;
	}
	pthread_rwlock_unlock(&fs->lock);
	if (r < 0)
		return r;
	/* Outside our lock: the kernel may be waiting on a lookup that
	 * needs it. Not cached (never looked up) is fine. */
	fuse_lowlevel_notify_inval_entry(fs->conn.se, FUSE_ROOT_ID, name, strlen(name));
	lazyfs_image_unref(img, 1);
	return 0;
}

struct lazyfs_image *lazyfs_find(struct lazyfs *fs, const char *name)
{
	pthread_rwlock_rdlock(&fs->lock);
	struct lazyfs_image *img = find_loaded(fs, name);
	pthread_rwlock_unlock(&fs->lock);
	return img;
}

void lazyfs_get_stats(struct lazyfs *fs, struct lazyfs_stats *st)
{
	memset(st, 0, sizeof(*st));
	lazyfs_cache_stats(fs->cache, st);
	lazyfs_prefetch_stats(fs, st);
}
