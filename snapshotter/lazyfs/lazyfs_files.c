/* lazyfs's open files, by node id: the handle the kernel holds for an open
 * regular file is its node id, never a pointer of ours, so that a daemon
 * taking the connection over serves reads on handles a previous daemon
 * opened (it opens the content again on the first such read). One content
 * fd per node serves all its handles; the last release closes it. */
#include "lazyfs-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FILES_BUCKETS 4096

static size_t bucket(uint64_t node)
{
	return (size_t)((node ^ (node >> 32)) * 0x9e3779b97f4a7c15ull >> 52) % FILES_BUCKETS;
}

int lazyfs_files_init(struct lazyfs *fs)
{
	fs->files = calloc(FILES_BUCKETS, sizeof(*fs->files));
	return fs->files ? 0 : -ENOMEM;
}

/* The file for node, or NULL; hlock held. */
static struct lazyfs_file *find(struct lazyfs *fs, uint64_t node)
{
	struct lazyfs_file *f = fs->files[bucket(node)];
	while (f && f->node != node)
		f = f->next;
	return f;
}

static void file_free(struct lazyfs *fs, struct lazyfs_file *f)
{
	close(f->fd);
	lazyfs_cache_put(fs->cache, f->ce);
	lazyfs_image_unref(f->img, 1);
	free(f);
}

/* Unlinks and frees f if nothing uses it; hlock held, and dropped. */
static void maybe_free_unlock(struct lazyfs *fs, struct lazyfs_file *f)
{
	if (f->opens || f->busy) {
		pthread_mutex_unlock(&fs->hlock);
		return;
	}
	struct lazyfs_file **pp = &fs->files[bucket(f->node)];
	while (*pp != f)
		pp = &(*pp)->next;
	*pp = f->next;
	pthread_mutex_unlock(&fs->hlock);
	file_free(fs, f);
}

/* Opens the content of entry idx of img (outside any lock: it may be
 * rebuilt first) and adds it with `opens` opens and `busy` reads, or adds
 * those to the node's file if another thread added it meanwhile. Takes
 * img's reference. */
static int add(struct lazyfs_file **out, struct lazyfs *fs, struct lazyfs_image *img, uint32_t idx,
               unsigned opens, unsigned busy)
{
	struct lazyfs_file *f = calloc(1, sizeof(*f));
	const struct dimg_entry *e = &img->tree->v[idx];
	int r = !f ? -ENOMEM : e->type != DIMG_TYPE_REG ? -EINVAL : 0;
	if (!r)
		r = lazyfs_open_content(img, e, &f->fd, &f->ce);
	if (r < 0) {
		free(f);
		lazyfs_image_unref(img, 1);
		return r;
	}
	f->node = LAZYFS_NODE(img->id, idx);
	f->img = img;
	pthread_mutex_lock(&fs->hlock);
	struct lazyfs_file *had = find(fs, f->node);
	struct lazyfs_file *use = had ? had : f;
	if (!had) {
		f->next = fs->files[bucket(f->node)];
		fs->files[bucket(f->node)] = f;
		lazyfs_opened_note(img, idx);
	}
	use->opens += opens;
	use->busy += busy;
	pthread_mutex_unlock(&fs->hlock);
	if (had)
		file_free(fs, f);
	*out = use;
	return 0;
}

int lazyfs_file_open(struct lazyfs *fs, struct lazyfs_image *img, uint32_t idx)
{
	uint64_t node = LAZYFS_NODE(img->id, idx);
	pthread_mutex_lock(&fs->hlock);
	struct lazyfs_file *f = find(fs, node);
	if (f)
		f->opens++;
	pthread_mutex_unlock(&fs->hlock);
	if (f)
		return 0;
	lazyfs_image_ref(img, 1);
	return add(&f, fs, img, idx, 1, 0);
}

/* A handle this process never opened: the node's leader entry, opened,
 * and counted as one open (how many the kernel has is unknown: the first
 * release closes it, and a read on another such handle opens it again). */
static int adopt(struct lazyfs_file **out, struct lazyfs *fs, uint64_t node)
{
	struct lazyfs_image *img;
	uint32_t idx;
	int r = lazyfs_image_get(&img, fs, node, &idx, 1);
	if (r < 0)
		return r;
	if (img->nodes[idx].leader != idx || img->tree->v[idx].type != DIMG_TYPE_REG) {
		lazyfs_image_unref(img, 1);
		return -EBADF;
	}
	const char *name = img->name, *path = img->tree->v[idx].path;
	lazyfs_image_ref(img, 1); /* names for the log, past add() */
	r = add(out, fs, img, idx, 1, 1);
	if (r == 0)
		snap_debug(fs->lg, "lazyfs: image %s: reopened %s for a previous daemon's handle",
		           name, path);
	else
		snap_err(fs->lg, "lazyfs: image %s: reopen %s: %s", name, path, strerror(-r));
	lazyfs_image_unref(img, 1);
	return r;
}

int lazyfs_file_get(struct lazyfs_file **out, struct lazyfs *fs, uint64_t node)
{
	pthread_mutex_lock(&fs->hlock);
	struct lazyfs_file *f = find(fs, node);
	if (f)
		f->busy++;
	pthread_mutex_unlock(&fs->hlock);
	*out = f;
	return f ? 0 : adopt(out, fs, node);
}

void lazyfs_file_put(struct lazyfs *fs, struct lazyfs_file *f)
{
	pthread_mutex_lock(&fs->hlock);
	f->busy--;
	maybe_free_unlock(fs, f);
}

void lazyfs_file_release(struct lazyfs *fs, uint64_t node)
{
	pthread_mutex_lock(&fs->hlock);
	struct lazyfs_file *f = find(fs, node);
	if (!f) { /* a previous daemon's handle, never read here */
		pthread_mutex_unlock(&fs->hlock);
		return;
	}
	if (f->opens)
		f->opens--;
	maybe_free_unlock(fs, f);
}

void lazyfs_files_free(struct lazyfs *fs)
{
	for (size_t i = 0; fs->files && i < FILES_BUCKETS; i++) {
		while (fs->files[i]) {
			struct lazyfs_file *f = fs->files[i];
			fs->files[i] = f->next;
			file_free(fs, f);
		}
	}
	free(fs->files);
	fs->files = NULL;
}
