/* lazyfs: mounting and unmounting the FUSE session, loading and removing
 * images (lazyfs.h). */
#define FUSE_USE_VERSION 312
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

static void *loop_main(void *arg)
{
	struct lazyfs *fs = arg;
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	if (!lc) {
		snap_err(fs->lg, "lazyfs: out of memory starting the FUSE loop");
		return NULL;
	}
	fuse_loop_cfg_set_max_threads(lc, fs->threads);
	fuse_loop_cfg_set_idle_threads(lc, fs->threads);
	int r = fuse_session_loop_mt(fs->se, lc);
	if (r != 0)
		snap_warn(fs->lg, "lazyfs: FUSE loop ended: %s", strerror(r < 0 ? -r : EINTR));
	fuse_loop_cfg_destroy(lc);
	return NULL;
}

/* A daemon killed without unmounting leaves a dead mount: stat says
 * ENOTCONN. Detach it so the new mount goes on the directory again. */
static void clear_stale_mount(struct lazyfs *fs, const char *mnt)
{
	struct stat st;
	if (stat(mnt, &st) == 0 || errno != ENOTCONN)
		return;
	if (umount2(mnt, MNT_DETACH) == 0)
		snap_warn(fs->lg, "lazyfs: detached a stale mount at %s", mnt);
	else
		snap_warn(fs->lg, "lazyfs: stale mount at %s: umount: %s", mnt, strerror(errno));
}

static int mount_session(struct lazyfs *fs, const char **why)
{
	char *argv[] = {"di3fs", "-o",
	                "allow_other,default_permissions,ro,fsname=di3fs,subtype=di3fs", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	*why = "cannot create the FUSE session";
	fs->se = fuse_session_new(&args, &lazyfs_ops, sizeof(lazyfs_ops), fs);
	fuse_opt_free_args(&args);
	if (!fs->se)
		return -ENOMEM;
	*why = "cannot mount (is /dev/fuse there, and are we root?)";
	if (fuse_session_mount(fs->se, fs->mountpoint) != 0)
		return -EIO;
	int r = pthread_create(&fs->loop, NULL, loop_main, fs);
	if (r != 0) {
		fuse_session_unmount(fs->se);
		*why = "cannot start the FUSE thread";
		return -r;
	}
	fs->loop_started = 1;
	return 0;
}

/* The kernel gives a FUSE mount 128 KiB of readahead; sequential reads of
 * rebuilt files (one request per window) go several times faster with a
 * larger window, which root sets through the mount's bdi. The mount's
 * device number comes from /proc/self/mountinfo, not from a stat of our
 * own mount. Best effort. */
#define LAZYFS_READAHEAD_KB 4096
void lazyfs_widen_readahead(struct lazyfs *fs)
{
	unsigned maj = 0, min = 0, a, b;
	char line[4096], mp[4096], path[64];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &a, &b, mp) == 3 &&
		    strcmp(mp, fs->mountpoint) == 0) {
			maj = a; /* the last one: the newest mount there */
			min = b;
		}
	fclose(f);
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", maj, min);
	int fd = maj || min ? open(path, O_WRONLY | O_CLOEXEC) : -1;
	if (fd < 0)
		return;
	if (dprintf(fd, "%d\n", LAZYFS_READAHEAD_KB) < 0)
		snap_debug(fs->lg, "lazyfs: %s: %s", path, strerror(errno));
	close(fd);
}

int lazyfs_start(struct lazyfs **out, const struct lazyfs_config *cfg, const char **why)
{
	struct lazyfs *fs = calloc(1, sizeof(*fs));
	const char *dummy;
	int r = -ENOMEM;
	why = why ? why : &dummy;
	*why = "out of memory";
	if (!fs || !(fs->mountpoint = strdup(cfg->mountpoint)))
		goto fail;
	pthread_rwlock_init(&fs->lock, NULL);
	pthread_mutex_init(&fs->hlock, NULL);
	fs->lg = cfg->lg;
	fs->next_id = 1;
	fs->threads = cfg->threads ? cfg->threads : LAZYFS_DEFAULT_THREADS;
	clock_gettime(CLOCK_REALTIME, &fs->started);
	if ((r = lazyfs_cache_open(&fs->cache, cfg->cache_dir, cfg->cache_max, cfg->lg, why)) < 0)
		goto fail;
	/* The process's first SHA-256 loads OpenSSL's configuration and
	 * providers (5-10 ms here): at start, not in the first reader's open. */
	uint8_t warm[32];
	(void)dimg_sha256_buf("", 0, warm);
	clear_stale_mount(fs, fs->mountpoint);
	if ((r = mount_session(fs, why)) < 0)
		goto fail;
	*out = fs;
	return 0;
fail:
	lazyfs_stop(fs);
	return r;
}

/* Looks up a name never cached (we never reply negative entries), so that
 * the kernel sends a request. */
static void *wake_main(void *arg)
{
	struct stat st;
	(void)stat(arg, &st);
	return NULL;
}

/* The workers sleep in read(2) on /dev/fuse: after fuse_session_exit, the
 * first request answered ends the loop (the loop cancels the rest). The
 * waker may need several requests (a permission check, then the lookup)
 * and hang on the second: closing /dev/fuse in lazyfs_stop aborts it. */
static void stop_loop(struct lazyfs *fs, pthread_t *waker, char **wake_path)
{
	fuse_session_exit(fs->se);
	size_t n = strlen(fs->mountpoint) + 64;
	*wake_path = malloc(n);
	if (*wake_path) {
		snprintf(*wake_path, n, "%s/.di3fs-stop-%ld", fs->mountpoint, (long)getpid());
		if (pthread_create(waker, NULL, wake_main, *wake_path) != 0) {
			free(*wake_path);
			*wake_path = NULL;
		}
	}
	pthread_join(fs->loop, NULL);
}

void lazyfs_stop(struct lazyfs *fs)
{
	if (!fs)
		return;
	pthread_t waker;
	char *wake_path = NULL;
	if (fs->loop_started)
		stop_loop(fs, &waker, &wake_path);
	if (fs->se) {
		/* Closes /dev/fuse (aborting the connection for files still
		 * open and for the waker) and detaches the mount. */
		fuse_session_unmount(fs->se);
		fuse_session_destroy(fs->se);
	}
	if (wake_path) {
		pthread_join(waker, NULL);
		free(wake_path);
	}
	/* Images are freed whatever their references: no handle outlives us. */
	lazyfs_handles_free(fs);
	for (size_t i = 0; fs->byid && i < fs->nimages; i++)
		lazyfs_image_free(fs->byid[i]);
	free(fs->byid);
	lazyfs_cache_close(fs->cache);
	if (fs->mountpoint) {
		pthread_rwlock_destroy(&fs->lock);
		pthread_mutex_destroy(&fs->hlock);
	}
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

/* Publishes img under fs->lock; -EEXIST if the name was taken meanwhile. */
static int publish(struct lazyfs *fs, struct lazyfs_image *img)
{
	if (find_loaded(fs, img->name))
		return -EEXIST;
	if (fs->nimages == fs->cap) {
		size_t cap = fs->cap ? fs->cap * 2 : 16;
		struct lazyfs_image **v = realloc(fs->byid, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		fs->byid = v;
		fs->cap = cap;
	}
	img->id = fs->next_id++;
	img->loaded = 1;
	fs->byid[fs->nimages++] = img;
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

int lazyfs_add(struct lazyfs *fs, const char *name, const char *dimg_path,
               const struct lazyfs_base *base, struct lazyfs_image **out, const char **why)
{
	const char *dummy;
	why = why ? why : &dummy;
	*why = "bad name or base";
	if (!name_ok(name) || !base || !!base->dir == !!base->image)
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
		r = publish(fs, img);
		pthread_rwlock_unlock(&fs->lock);
		*why = r == -EEXIST ? "name already loaded" : *why;
	}
	if (r < 0) {
		drop_dependent(fs, img);
		lazyfs_image_unref(img->base_img, 1);
		lazyfs_image_free(img);
		return r;
	}
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
	fuse_lowlevel_notify_inval_entry(fs->se, FUSE_ROOT_ID, name, strlen(name));
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
}
