/* Where a lazyfs regular file's bytes come from: the base (a directory, or
 * the base image's own file, recursively) or the cache, rebuilt on first
 * use. Only real files are ever opened, never a path through the mount. */
#include "lazyfs-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

struct rebuild_ctx {
	struct lazyfs_image *img;
	const struct dimg_entry *e;
	int base_err; /* opening the base file failed so: not this delta's fault */
};

/* img->base_files.open, noting a failure: a chain's base image may fail to
 * rebuild the file this patch applies to. */
static int open_base_noted(void *ctx, const struct dimg_entry *want, int *fd)
{
	struct rebuild_ctx *rc = ctx;
	const struct dimg_files *bf = &rc->img->base_files;
	int r = bf->open(bf->ctx, want, fd);
	if (r < 0)
		rc->base_err = r;
	return r;
}

static void log_rebuild_error(const struct rebuild_ctx *rc, int r)
{
	const struct lazyfs_image *img = rc->img;
	const char *src = rc->e->src ? rc->e->src : rc->e->path;
	if (rc->base_err && img->base_img)
		snap_err(img->fs->lg,
		         "lazyfs: image %s (delta %s): %s: rebuild failed: its base file %s in "
		         "image %s (delta %s) cannot be opened: %s",
		         img->name, img->dimg_path, rc->e->path, src, img->base_img->name,
		         img->base_img->dimg_path, strerror(-rc->base_err));
	else if (rc->base_err)
		snap_err(img->fs->lg,
		         "lazyfs: image %s (delta %s): %s: rebuild failed: its base file %s "
		         "cannot be opened: %s",
		         img->name, img->dimg_path, rc->e->path, src, strerror(-rc->base_err));
	else
		snap_err(img->fs->lg, "lazyfs: image %s (delta %s): %s: rebuild failed: %s%s",
		         img->name, img->dimg_path, rc->e->path, strerror(-r),
		         r == -EBADMSG ? " (corrupt delta, or content not matching its SHA-256)"
		                       : "");
}

static int rebuild_into(void *ctx, int fd)
{
	struct rebuild_ctx *rc = ctx;
	struct dimg_files base = {open_base_noted, rc};
	int r = dimg_reader_rebuild(rc->img->rd, rc->e, &base, dimg_write_fd, &fd);
	if (r < 0)
		log_rebuild_error(rc, r);
	return r;
}

static int open_base(struct lazyfs_image *img, const struct dimg_entry *e, int *fd)
{
	struct dimg_entry s = {0};
	s.path = e->src ? e->src : e->path;
	s.type = DIMG_TYPE_REG;
	s.size = e->size;
	return img->base_files.open(img->base_files.ctx, &s, fd);
}

static int open_empty(int *fd)
{
	*fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return *fd < 0 ? -errno : 0;
}

int lazyfs_open_content(struct lazyfs_image *img, const struct dimg_entry *e, int *fd,
                        struct lazyfs_cached **ce)
{
	struct rebuild_ctx rc = {img, e, 0};
	*ce = NULL;
	*fd = -1;
	switch (e->payload) {
	case DIMG_PAYLOAD_EMPTY:
		return open_empty(fd);
	case DIMG_PAYLOAD_SAME:
		return open_base(img, e, fd);
	case DIMG_PAYLOAD_FULL:
	case DIMG_PAYLOAD_PATCH:
		return lazyfs_cache_get(img->fs->cache, e->sha256, rebuild_into, &rc, ce, fd);
	default:
		return -EINVAL;
	}
}

/* A base image's file by path, as dimg_files gives it: a plain fd. The
 * cache handle is dropped at once; an evicted file stays readable through
 * the fd until it is closed. */
static int image_files_open(void *ctx, const struct dimg_entry *want, int *fd)
{
	struct lazyfs_image *base = ctx;
	struct lazyfs_cached *ce;
	ssize_t i = dimg_tree_index(base->tree, want->path);
	*fd = -1;
	if (i < 0)
		return -ENOENT;
	const struct dimg_entry *e = &base->tree->v[base->nodes[i].leader];
	if (e->type != DIMG_TYPE_REG)
		return -ESTALE;
	int r = lazyfs_open_content(base, e, fd, &ce);
	lazyfs_cache_put(base->fs->cache, ce);
	return r;
}

void lazyfs_image_files(struct dimg_files *out, struct lazyfs_image *base)
{
	out->open = image_files_open;
	out->ctx = base;
}
