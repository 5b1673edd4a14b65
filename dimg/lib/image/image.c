/* dimg_image_open/free: decides what kind of image a path is (plain rootfs
 * directory, OCI layout directory or tar, docker-save tar) and owns the
 * result's tree, content access and metadata. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cas-internal.h"
#include "squash-internal.h"
#include "dimg/image.h"

/* What dimg_image.priv points to: how the files of this image are opened. */
struct image_priv {
	int is_dir;           /* files came from dimg_dir_files_open */
	struct dimg_cas *cas; /* files come from this store */
	FILE *recipes;        /* layer recipes, when recorded (unlinked temp file) */
};

/* A walk's error names a file by its path in the tree: named here by a
 * path the user can look at. */
static int walk_err(struct dimg_err *err, int r, const char *root, const struct dimg_err *w)
{
	char *full = NULL;
	if (!w->what[0] || !strcmp(w->what, root))
		return dimg_err_set(err, r, root, w->why[0] ? "%s" : NULL, w->why);
	if (asprintf(&full, "%s/%s", root, w->what) < 0)
		full = NULL;
	dimg_err_set(err, r, full ? full : root, w->why[0] ? "%s" : NULL, w->why);
	free(full);
	return r;
}

static int image_open_dir(struct dimg_image *img, const char *path, const struct dimg_image_opts *o,
                          struct dimg_err *err)
{
	struct dimg_err werr = {0};
	struct image_priv *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	img->priv = p;
	struct dimg_walk_opts wo = {.nthreads = o->jobs,
	                            .hash_cache = o->hash_cache,
	                            .progress = o->progress,
	                            .pctx = o->pctx};
	int r = dimg_tree_walk_opts(&img->tree, path, &wo, &werr);
	if (r < 0)
		return walk_err(err, r, path, &werr);
	r = dimg_dir_files_open(&img->files, path);
	if (r < 0)
		return dimg_err_set(err, r, path, NULL);
	p->is_dir = 1;
	return dimg_tree_id(img->tree, img->tree_id);
}

/* An image layout or docker save: layers squashed into the store. */
static int image_open_layers(struct dimg_image *img, const char *path, int is_dir,
                             const struct dimg_image_opts *o, struct dimg_err *err)
{
	struct image_priv *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	img->priv = p;
	int r = dimg_cas_open(&p->cas, o->cas_dir);
	if (r < 0 && o->cas_dir)
		return dimg_err_set(err, r, o->cas_dir, NULL);
	if (r < 0)
		return dimg_err_set(err, r, NULL, "the temporary content store: %s", strerror(-r));
	if (o->record_layers && !(p->recipes = tmpfile())) {
		r = -errno;
		return dimg_err_set(err, r, NULL, "a temporary file for layer recipes: %s",
		                    strerror(-r));
	}
	r = dimg_oci_open(img, path, is_dir, o, p->cas, p->recipes, err);
	if (r == 0)
		r = dimg_cas_files_open(&img->files, p->cas, img->tree);
	if (r == 0)
		r = dimg_tree_id(img->tree, img->tree_id);
	return r;
}

int dimg_image_open(struct dimg_image **out, const char *path, const struct dimg_image_opts *o,
                    struct dimg_err *err)
{
	static const struct dimg_image_opts defaults;
	struct stat st;
	int r;

	*out = NULL;
	if (!o)
		o = &defaults;
	struct dimg_image *img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	if (stat(path, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		r = dimg_oci_probe_dir(path);
		if (r > 0)
			r = image_open_layers(img, path, 1, o, err);
		else if (r == 0)
			r = image_open_dir(img, path, o, err);
	} else if (S_ISREG(st.st_mode)) {
		r = image_open_layers(img, path, 0, o, err);
	} else {
		r = dimg_err_set(err, -EINVAL, path, "not an image, a directory or a tar file");
	}
	if (r < 0)
		goto fail;
	*out = img;
	return 0;
fail:
	dimg_image_free(img);
	return dimg_err_what(err, r, path);
}

void dimg_image_free(struct dimg_image *img)
{
	if (!img)
		return;
	struct image_priv *p = img->priv;
	if (p && p->is_dir)
		dimg_dir_files_close(&img->files);
	if (p && p->cas) {
		dimg_cas_files_close(&img->files);
		dimg_cas_free(p->cas);
	}
	if (p && p->recipes)
		fclose(p->recipes);
	free(p);
	free(img->layers);
	dimg_tree_free(img->tree);
	free(img->config);
	free(img->manifest);
	free(img->manifest_media_type);
	free(img->ref);
	free(img);
}

int dimg_image_recipe_read(const struct dimg_image *img, uint64_t off, void *buf, size_t n)
{
	const struct image_priv *p = img->priv;
	uint8_t *b = buf;
	if (!p || !p->recipes)
		return -ENOENT;
	while (n) {
		ssize_t k = pread(fileno(p->recipes), b, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EOVERFLOW;
		b += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

int dimg_image_open_content(const struct dimg_image *img, const uint8_t sha256[32], int *fd)
{
	const struct image_priv *p = img->priv;
	*fd = -1;
	if (!p || !p->cas)
		return -ENOENT;
	return dimg_cas_open_blob(p->cas, sha256, fd);
}

/* The tree id with the root entry replaced by root. */
static int id_with_root(struct dimg_tree *t, const struct dimg_entry *root, uint8_t out[32])
{
	struct dimg_entry saved = t->v[0];
	t->v[0] = *root;
	int r = dimg_tree_id(t, out);
	t->v[0] = saved;
	return r;
}

int dimg_image_implied_root_id(const struct dimg_image *img, uint8_t out[32])
{
	struct dimg_tree *t = img->tree;
	if (!t || !t->n || t->v[0].path[0] || t->v[0].type != DIMG_TYPE_DIR)
		return -EINVAL;
	struct dimg_entry root = {
	    .path = t->v[0].path, .type = DIMG_TYPE_DIR, .mode = SQ_IMPLIED_DIR_MODE};
	return id_with_root(t, &root, out);
}

int dimg_image_match(struct dimg_image *img, const uint8_t want[32])
{
	const struct image_priv *p = img->priv;
	uint8_t id[32];
	if (!memcmp(img->tree_id, want, 32))
		return 0;
	if (!p || !p->is_dir || dimg_image_implied_root_id(img, id) < 0 || memcmp(id, want, 32))
		return -EXDEV;
	struct dimg_entry *root = &img->tree->v[0];
	char *path = root->path;
	root->path = NULL;
	dimg_entry_clear(root);
	*root =
	    (struct dimg_entry){.path = path, .type = DIMG_TYPE_DIR, .mode = SQ_IMPLIED_DIR_MODE};
	memcpy(img->tree_id, id, 32);
	return 0;
}
