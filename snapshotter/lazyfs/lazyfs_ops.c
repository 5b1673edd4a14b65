/* lazyfs's FUSE low-level handlers: thin wrappers over the image index and
 * the content opener. Node 1 is the root listing the loaded images; every
 * other node is (image, entry), see LAZYFS_NODE. */
#define FUSE_USE_VERSION 312
#include "lazyfs-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static struct lazyfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void root_stat(struct lazyfs *fs, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
	pthread_rwlock_rdlock(&fs->lock);
	for (size_t i = 0; i < fs->nimages; i++)
		st->st_nlink += (nlink_t)fs->byid[i]->loaded;
	pthread_rwlock_unlock(&fs->lock);
	st->st_size = 4096;
	st->st_blksize = 4096;
	st->st_blocks = 8;
	st->st_mtim = st->st_ctim = st->st_atim = fs->started;
}

/* Replies with entry idx of img and counts the kernel's new reference. */
static void reply_entry(fuse_req_t req, struct lazyfs_image *img, uint32_t idx)
{
	struct fuse_entry_param ep;
	memset(&ep, 0, sizeof(ep));
	lazyfs_tree_stat(img, idx, &ep.attr);
	ep.ino = ep.attr.st_ino;
	ep.attr_timeout = ep.entry_timeout = LAZYFS_TIMEOUT;
	lazyfs_image_lookup(img, 1);
	if (fuse_reply_entry(req, &ep) != 0)
		lazyfs_image_forget(img, 1);
}

static void lookup_root(fuse_req_t req, struct lazyfs *fs, const char *name)
{
	struct lazyfs_image *img;
	int r = lazyfs_image_by_name(&img, fs, name);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	reply_entry(req, img, 0);
	lazyfs_image_unref(img, 1);
}

/* The image of node ino, referenced; or replies the error and NULL. */
static struct lazyfs_image *get_or_reply(fuse_req_t req, fuse_ino_t ino, uint32_t *idx)
{
	struct lazyfs_image *img;
	int r = lazyfs_image_get(&img, fs_of(req), ino, idx, 1);
	if (r < 0)
		fuse_reply_err(req, -r);
	return img;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	uint32_t idx;
	if (parent == FUSE_ROOT_ID) {
		lookup_root(req, fs_of(req), name);
		return;
	}
	struct lazyfs_image *img = get_or_reply(req, parent, &idx);
	if (!img)
		return;
	int64_t k = -1;
	if (img->tree->v[idx].type == DIMG_TYPE_DIR)
		k = lazyfs_tree_child(img, idx, name);
	if (k < 0)
		fuse_reply_err(req, img->tree->v[idx].type == DIMG_TYPE_DIR ? ENOENT : ENOTDIR);
	else
		reply_entry(req, img, (uint32_t)k);
	lazyfs_image_unref(img, 1);
}

/* No waiting: a node of an image not loaded again has nothing to drop. */
static void forget_one(struct lazyfs *fs, fuse_ino_t ino, uint64_t n)
{
	struct lazyfs_image *img;
	uint32_t idx;
	if (ino == FUSE_ROOT_ID || lazyfs_image_get(&img, fs, ino, &idx, 0) < 0)
		return;
	lazyfs_image_forget(img, n);
	lazyfs_image_unref(img, 1);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		forget_one(fs_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	uint32_t idx;
	if (ino == FUSE_ROOT_ID) {
		root_stat(fs_of(req), &st);
		fuse_reply_attr(req, &st, LAZYFS_ROOT_TIMEOUT);
		return;
	}
	struct lazyfs_image *img = get_or_reply(req, ino, &idx);
	if (!img)
		return;
	lazyfs_tree_stat(img, idx, &st);
	fuse_reply_attr(req, &st, LAZYFS_TIMEOUT);
	lazyfs_image_unref(img, 1);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	uint32_t idx;
	if (ino == FUSE_ROOT_ID) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	struct lazyfs_image *img = get_or_reply(req, ino, &idx);
	if (!img)
		return;
	const struct dimg_entry *e = &img->tree->v[idx];
	if (e->type == DIMG_TYPE_SYMLINK && e->link)
		fuse_reply_readlink(req, e->link);
	else
		fuse_reply_err(req, EINVAL);
	lazyfs_image_unref(img, 1);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	uint32_t idx;
	if (ino == FUSE_ROOT_ID) {
		fuse_reply_open(req, fi);
		return;
	}
	struct lazyfs_image *img = get_or_reply(req, ino, &idx);
	if (!img)
		return;
	int dir = img->tree->v[idx].type == DIMG_TYPE_DIR;
	lazyfs_image_unref(img, 1);
	if (!dir) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fi->cache_readdir = 1; /* the listing never changes */
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

/* A readdir reply being filled; plus: readdirplus (counts references). */
struct dirbuf {
	fuse_req_t req;
	char *p;
	size_t len, cap;
	int plus;
};

/* Adds one entry; 0 when it did not fit (the reply is full). */
static int dirbuf_add(struct dirbuf *b, const char *name, const struct stat *st, off_t next,
                      struct lazyfs_image *img)
{
	size_t n;
	if (b->plus) {
		struct fuse_entry_param ep;
		memset(&ep, 0, sizeof(ep));
		ep.attr = *st;
		ep.ino = st->st_ino;
		ep.attr_timeout = ep.entry_timeout = img ? LAZYFS_TIMEOUT : LAZYFS_ROOT_TIMEOUT;
		n = fuse_add_direntry_plus(b->req, b->p + b->len, b->cap - b->len, name, &ep, next);
	} else {
		n = fuse_add_direntry(b->req, b->p + b->len, b->cap - b->len, name, st, next);
	}
	if (n > b->cap - b->len)
		return 0;
	b->len += n;
	/* The kernel takes a reference on every entry but "." and "..". */
	if (b->plus && img && strcmp(name, ".") != 0 && strcmp(name, "..") != 0)
		lazyfs_image_lookup(img, 1);
	return 1;
}

/* Offsets: 1 after ".", 2 after "..", 3 + k after child k (images in the
 * root: 2 + image id, stable while images come and go). */
static void readdir_image(struct dirbuf *b, struct lazyfs_image *img, uint32_t idx, off_t off)
{
	const struct lazyfs_node *d = &img->nodes[idx];
	struct stat st;
	if (off < 1) {
		lazyfs_tree_stat(img, idx, &st);
		if (!dirbuf_add(b, ".", &st, 1, img))
			return;
	}
	if (off < 2) {
		if (idx == 0)
			root_stat(img->fs, &st);
		else
			lazyfs_tree_stat(img, d->parent, &st);
		if (!dirbuf_add(b, "..", &st, 2, img))
			return;
	}
	for (uint32_t k = off > 2 ? (uint32_t)(off - 2) : 0; k < d->kid_n; k++) {
		uint32_t c = img->kids[d->kid_off + k];
		lazyfs_tree_stat(img, c, &st);
		if (!dirbuf_add(b, lazyfs_tree_name(img, c), &st, 3 + (off_t)k, img))
			return;
	}
}

static void readdir_root(struct dirbuf *b, struct lazyfs *fs, off_t off)
{
	struct stat st;
	root_stat(fs, &st);
	if (off < 1 && !dirbuf_add(b, ".", &st, 1, NULL))
		return;
	if (off < 2 && !dirbuf_add(b, "..", &st, 2, NULL))
		return;
	pthread_rwlock_rdlock(&fs->lock);
	for (size_t i = 0; i < fs->nimages; i++) {
		struct lazyfs_image *img = fs->byid[i];
		if (!img->loaded || (off_t)(img->id + 2) <= off)
			continue;
		lazyfs_tree_stat(img, 0, &st);
		if (!dirbuf_add(b, img->name, &st, (off_t)(img->id + 2), img))
			break;
	}
	pthread_rwlock_unlock(&fs->lock);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
	struct dirbuf b = {req, malloc(size ? size : 1), 0, size, plus};
	uint32_t idx;
	struct lazyfs_image *img = NULL;
	if (!b.p) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (ino == FUSE_ROOT_ID) {
		readdir_root(&b, fs_of(req), off);
	} else if ((img = get_or_reply(req, ino, &idx)) == NULL) {
		free(b.p);
		return;
	} else {
		readdir_image(&b, img, idx, off);
	}
	fuse_reply_buf(req, b.p, b.len);
	free(b.p);
	lazyfs_image_unref(img, 1);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, 1);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lazyfs *fs = fs_of(req);
	if (!__atomic_exchange_n(&fs->readahead_set, 1, __ATOMIC_RELAXED))
		lazyfs_widen_readahead(fs);
	uint32_t idx;
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (ino == FUSE_ROOT_ID) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	struct lazyfs_image *img = get_or_reply(req, ino, &idx);
	if (!img)
		return;
	uint32_t leader = img->nodes[idx].leader;
	const struct dimg_entry *e = &img->tree->v[leader];
	int r = e->type != DIMG_TYPE_REG ? -EINVAL : lazyfs_file_open(fs, img, leader);
	if (r < 0 && r != -ENOMEM && r != -EMFILE && r != -ENFILE) {
		snap_err(fs->lg, "lazyfs: image %s: open %s: %s", img->name, e->path, strerror(-r));
		r = -EIO;
	}
	if (r < 0) {
		lazyfs_image_unref(img, 1);
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = LAZYFS_NODE(img->id, leader); /* no pointer: a restarted daemon finds it */
	fi->keep_cache = 1;                    /* the content never changes */
	fi->noflush = 1;
	lazyfs_image_unref(img, 1);
	if (fuse_reply_open(req, fi) != 0)
		lazyfs_file_release(fs, fi->fh);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	struct lazyfs *fs = fs_of(req);
	struct lazyfs_file *f;
	int r = lazyfs_file_get(&f, fs, fi->fh ? fi->fh : ino);
	if (r < 0) {
		fuse_reply_err(req, r == -ESTALE ? ESTALE : EIO);
		return;
	}
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY;
	bv.buf[0].fd = f->fd;
	bv.buf[0].pos = off;
	fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
	lazyfs_file_put(fs, f);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	lazyfs_file_release(fs_of(req), fi->fh ? fi->fh : ino);
	fuse_reply_err(req, 0);
}

/* getxattr/listxattr replies: the size when asked for it (size 0), ERANGE
 * when the caller's buffer is too small. */
static void reply_sized(fuse_req_t req, const void *p, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, p, len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	uint32_t idx;
	if (ino == FUSE_ROOT_ID) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	struct lazyfs_image *img = get_or_reply(req, ino, &idx);
	if (!img)
		return;
	const struct dimg_entry *e = &img->tree->v[img->nodes[idx].leader];
	const struct dimg_xattr *x = NULL;
	for (uint32_t i = 0; i < e->nxattrs && !x; i++)
		if (strcmp(e->xattrs[i].name, name) == 0)
			x = &e->xattrs[i];
	if (x)
		reply_sized(req, x->value, x->value_len, size);
	else
		fuse_reply_err(req, ENODATA);
	lazyfs_image_unref(img, 1);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	uint32_t idx;
	if (ino == FUSE_ROOT_ID) {
		reply_sized(req, "", 0, size);
		return;
	}
	struct lazyfs_image *img = get_or_reply(req, ino, &idx);
	if (!img)
		return;
	const struct dimg_entry *e = &img->tree->v[img->nodes[idx].leader];
	size_t len = 0;
	for (uint32_t i = 0; i < e->nxattrs; i++)
		len += strlen(e->xattrs[i].name) + 1;
	char *buf = malloc(len ? len : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
	} else {
		size_t at = 0;
		for (uint32_t i = 0; i < e->nxattrs; i++) {
			size_t n = strlen(e->xattrs[i].name) + 1;
			memcpy(buf + at, e->xattrs[i].name, n);
			at += n;
		}
		reply_sized(req, buf, len, size);
	}
	free(buf);
	lazyfs_image_unref(img, 1);
}

/* Space: that of the cache's filesystem, where rebuilt files go (what
 * `df` on a delta image can usefully tell); files: the entries served, none
 * free (read-only). */
static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct lazyfs *fs = fs_of(req);
	struct statvfs sv;
	uint64_t files = 0;
	(void)ino;
	if (lazyfs_cache_statvfs(fs->cache, &sv) < 0) {
		memset(&sv, 0, sizeof(sv));
		sv.f_bsize = sv.f_frsize = 4096;
	}
	pthread_rwlock_rdlock(&fs->lock);
	for (size_t i = 0; i < fs->nimages; i++)
		files += fs->byid[i]->tree ? fs->byid[i]->tree->n : 0;
	pthread_rwlock_unlock(&fs->lock);
	sv.f_files = files;
	sv.f_ffree = sv.f_favail = 0;
	sv.f_namemax = 255;
	sv.f_flag |= ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct lazyfs *fs = userdata;
	fs->conn.init_done = 1;
	/* Reads can move cache pages straight into the reply. */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
}

const struct fuse_lowlevel_ops lazyfs_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .open = op_open,
    .read = op_read,
    .release = op_release,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .statfs = op_statfs,
};
