/* lazyfs images: the per-directory child index over a resolved tree, the
 * stat an entry shows, and image lookup by node id with reference counts. */
#include "lazyfs-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Index of the entry whose path is the first len bytes of p, or -1. */
static int64_t find_prefix(const struct dimg_tree *t, const char *p, size_t len)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *q = t->v[mid].path;
		int c = strncmp(q, p, len);
		if (c == 0)
			c = q[len] != '\0';
		if (c == 0)
			return (int64_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

const char *lazyfs_tree_name(const struct lazyfs_image *img, uint32_t idx)
{
	const char *p = img->tree->v[idx].path;
	const char *slash = strrchr(p, '/');
	return slash ? slash + 1 : p;
}

/* Parents and hardlink leaders; a validated tree has them all. */
static int link_parents(struct lazyfs_image *img)
{
	const struct dimg_tree *t = img->tree;
	for (size_t i = 0; i < t->n; i++) {
		struct lazyfs_node *nd = &img->nodes[i];
		const struct dimg_entry *e = &t->v[i];
		nd->leader = (uint32_t)i;
		nd->nlink = e->type == DIMG_TYPE_DIR ? 2 : 1;
		if (i == 0)
			continue;
		const char *slash = strrchr(e->path, '/');
		int64_t p = find_prefix(t, e->path, slash ? (size_t)(slash - e->path) : 0);
		if (p < 0 || t->v[p].type != DIMG_TYPE_DIR)
			return -EBADMSG;
		nd->parent = (uint32_t)p;
		if (e->type == DIMG_TYPE_HARDLINK) {
			int64_t l = e->link ? find_prefix(t, e->link, strlen(e->link)) : -1;
			if (l < 0 || t->v[l].type != DIMG_TYPE_REG)
				return -EBADMSG;
			nd->leader = (uint32_t)l;
		}
	}
	return 0;
}

/* Children in tree order are sorted by name: they share the prefix
 * "parent/", and what follows is the name alone. */
int lazyfs_tree_index(struct lazyfs_image *img)
{
	const struct dimg_tree *t = img->tree;
	if (t->n == 0 || t->n >= UINT32_MAX || t->v[0].path[0] != '\0')
		return -EBADMSG;
	img->nodes = calloc(t->n, sizeof(*img->nodes));
	img->kids = malloc(t->n * sizeof(*img->kids));
	if (!img->nodes || !img->kids)
		return -ENOMEM;
	int r = link_parents(img);
	if (r < 0)
		return r;
	for (size_t i = 1; i < t->n; i++) {
		struct lazyfs_node *nd = &img->nodes[i];
		img->nodes[nd->parent].kid_n++;
		if (t->v[i].type == DIMG_TYPE_DIR)
			img->nodes[nd->parent].nlink++;
		if (t->v[i].type == DIMG_TYPE_HARDLINK)
			img->nodes[nd->leader].nlink++;
	}
	uint32_t off = 0;
	for (size_t i = 0; i < t->n; i++) {
		img->nodes[i].kid_off = off;
		off += img->nodes[i].kid_n;
		img->nodes[i].kid_n = 0;
	}
	for (size_t i = 1; i < t->n; i++) {
		struct lazyfs_node *p = &img->nodes[img->nodes[i].parent];
		img->kids[p->kid_off + p->kid_n++] = (uint32_t)i;
	}
	return 0;
}

int64_t lazyfs_tree_child(const struct lazyfs_image *img, uint32_t dir, const char *name)
{
	const struct lazyfs_node *d = &img->nodes[dir];
	size_t lo = 0, hi = d->kid_n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t k = img->kids[d->kid_off + mid];
		int c = strcmp(lazyfs_tree_name(img, k), name);
		if (c == 0)
			return k;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static mode_t type_bits(uint8_t type)
{
	switch (type) {
	case DIMG_TYPE_DIR:
		return S_IFDIR;
	case DIMG_TYPE_SYMLINK:
		return S_IFLNK;
	case DIMG_TYPE_CHR:
		return S_IFCHR;
	case DIMG_TYPE_BLK:
		return S_IFBLK;
	case DIMG_TYPE_FIFO:
		return S_IFIFO;
	default:
		return S_IFREG;
	}
}

void lazyfs_tree_stat(const struct lazyfs_image *img, uint32_t idx, struct stat *st)
{
	uint32_t l = img->nodes[idx].leader;
	const struct dimg_entry *e = &img->tree->v[l];
	memset(st, 0, sizeof(*st));
	st->st_ino = LAZYFS_NODE(img->id, l);
	st->st_mode = type_bits(e->type) | (e->mode & 07777);
	st->st_nlink = img->nodes[l].nlink;
	st->st_uid = e->uid;
	st->st_gid = e->gid;
	st->st_size = e->type == DIMG_TYPE_DIR ? 4096 : (off_t)e->size;
	if (e->type == DIMG_TYPE_CHR || e->type == DIMG_TYPE_BLK)
		st->st_rdev = makedev(e->rdev_major, e->rdev_minor);
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
	st->st_mtim.tv_sec = e->mtime_sec;
	st->st_mtim.tv_nsec = e->mtime_nsec;
	st->st_ctim = st->st_atim = st->st_mtim;
}

/* Position of image id in fs->byid (ascending), or -1. */
static ssize_t find_id(const struct lazyfs *fs, uint64_t id)
{
	size_t lo = 0, hi = fs->nimages;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (fs->byid[mid]->id == id)
			return (ssize_t)mid;
		if (fs->byid[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* The image with id, referenced, or NULL; fs->lock held. */
static struct lazyfs_image *get_locked(struct lazyfs *fs, uint64_t id, uint64_t low)
{
	ssize_t k = find_id(fs, id);
	if (k < 0 || low - 1 >= fs->byid[k]->tree->n)
		return NULL;
	atomic_fetch_add(&fs->byid[k]->refs, 1);
	return fs->byid[k];
}

static struct lazyfs_image *by_name_locked(struct lazyfs *fs, const char *name)
{
	for (size_t i = 0; i < fs->nimages; i++)
		if (fs->byid[i]->loaded && strcmp(fs->byid[i]->name, name) == 0) {
			atomic_fetch_add(&fs->byid[i]->refs, 1);
			return fs->byid[i];
		}
	return NULL;
}

/* Waits until an image is loaded after `seen` more had been, or restoring
 * ends: 0 to look again, -ESTALE when done restoring, -EIO past the
 * deadline. */
static int restore_wait(struct lazyfs *fs, uint64_t seen)
{
	int r = 0;
	pthread_mutex_lock(&fs->restore_mu);
	while (r == 0 && fs->restoring && fs->published == seen)
		if (pthread_cond_timedwait(&fs->restore_cv, &fs->restore_mu,
		                           &fs->restore_deadline) == ETIMEDOUT)
			r = -EIO;
	if (r == 0 && !fs->restoring && fs->published == seen)
		r = -ESTALE;
	pthread_mutex_unlock(&fs->restore_mu);
	return r;
}

static uint64_t published(struct lazyfs *fs)
{
	pthread_mutex_lock(&fs->restore_mu);
	uint64_t n = fs->restoring ? fs->published : UINT64_MAX;
	pthread_mutex_unlock(&fs->restore_mu);
	return n;
}

void lazyfs_restore_wake(struct lazyfs *fs)
{
	pthread_mutex_lock(&fs->restore_mu);
	fs->published++;
	pthread_cond_broadcast(&fs->restore_cv);
	pthread_mutex_unlock(&fs->restore_mu);
}

int lazyfs_image_get(struct lazyfs_image **out, struct lazyfs *fs, uint64_t ino, uint32_t *idx,
                     int wait)
{
	uint64_t id = ino >> 32, low = ino & 0xffffffffu;
	int r = id == 0 || low == 0 ? -ESTALE : 0;
	*out = NULL;
	while (r == 0) {
		uint64_t seen = wait ? published(fs) : UINT64_MAX;
		pthread_rwlock_rdlock(&fs->lock);
		*out = get_locked(fs, id, low);
		pthread_rwlock_unlock(&fs->lock);
		if (*out)
			break;
		r = seen == UINT64_MAX ? -ESTALE : restore_wait(fs, seen);
	}
	if (*out)
		*idx = (uint32_t)(low - 1);
	return r;
}

int lazyfs_image_by_name(struct lazyfs_image **out, struct lazyfs *fs, const char *name)
{
	int r = 0;
	*out = NULL;
	while (r == 0) {
		uint64_t seen = published(fs);
		pthread_rwlock_rdlock(&fs->lock);
		*out = by_name_locked(fs, name);
		pthread_rwlock_unlock(&fs->lock);
		if (*out)
			break;
		r = seen == UINT64_MAX ? -ENOENT : restore_wait(fs, seen);
	}
	return r == -ESTALE ? -ENOENT : r;
}

void lazyfs_image_lookup(struct lazyfs_image *img, uint64_t n)
{
	atomic_fetch_add(&img->lookups, n);
	atomic_fetch_add(&img->refs, n);
}

void lazyfs_image_forget(struct lazyfs_image *img, uint64_t n)
{
	uint64_t had = atomic_load(&img->lookups), take;
	do
		take = had < n ? had : n;
	while (!atomic_compare_exchange_weak(&img->lookups, &had, had - take));
	if (take)
		lazyfs_image_unref(img, take);
}

void lazyfs_image_ref(struct lazyfs_image *img, uint64_t n)
{
	atomic_fetch_add(&img->refs, n);
}

/* A reference may be taken again under the read lock after the count hit
 * zero, so the image is only taken out (write lock) if it is still in the
 * table and still unreferenced; whoever does that frees it. */
void lazyfs_image_unref(struct lazyfs_image *img, uint64_t n)
{
	while (img) {
		struct lazyfs *fs = img->fs;
		uint64_t id = img->id;
		if (atomic_fetch_sub(&img->refs, n) != n)
			return;
		pthread_rwlock_wrlock(&fs->lock);
		ssize_t k = find_id(fs, id);
		struct lazyfs_image *gone = NULL;
		if (k >= 0 && atomic_load(&fs->byid[k]->refs) == 0) {
			gone = fs->byid[k];
			memmove(&fs->byid[k], &fs->byid[k + 1],
			        (fs->nimages - (size_t)k - 1) * sizeof(fs->byid[0]));
			fs->nimages--;
		}
		pthread_rwlock_unlock(&fs->lock);
		if (!gone)
			return;
		img = gone->base_img;
		gone->base_img = NULL;
		lazyfs_image_free(gone);
		n = 1;
	}
}

void lazyfs_image_free(struct lazyfs_image *img)
{
	if (!img)
		return;
	if (img->base_is_dir)
		dimg_dir_files_close(&img->base_files);
	dimg_reader_free(img->rd);
	dimg_tree_free(img->tree);
	free(img->nodes);
	free(img->kids);
	free(img->name);
	free(img->dimg_path);
	free(img);
}
