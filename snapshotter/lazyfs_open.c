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
};

static int rebuild_into(void *ctx, int fd)
{
	struct rebuild_ctx *rc = ctx;
	int r = dimg_reader_rebuild(rc->img->rd, rc->e, &rc->img->base_files, dimg_write_fd, &fd);
	if (r < 0)
		snap_err(rc->img->fs->lg, "lazyfs: image %s: %s: rebuild failed: %s%s",
		         rc->img->name, rc->e->path, strerror(-r),
		         r == -EBADMSG ? " (corrupt delta, or content not matching its SHA-256)"
		                       : "");
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
	struct rebuild_ctx rc = {img, e};
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
