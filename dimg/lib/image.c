/* dimg_image_open/free: decides what kind of image a path is (plain rootfs
 * directory, OCI layout directory or tar, docker-save tar) and owns the
 * result's tree, content access and metadata. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dimg/image.h"

/* What dimg_image.priv points to: how the files of this image are opened. */
struct image_priv {
	int is_dir; /* files came from dimg_dir_files_open */
};

/* Sets *err (if asked for) to a malloc'd "what: reason" message. */
static void image_err(char **err, int r, const char *what)
{
	if (!err || *err)
		return;
	const char *why = strerror(r < 0 ? -r : r);
	size_t n = strlen(what) + 2 + strlen(why) + 1;
	char *m = malloc(n);
	if (!m)
		return;
	snprintf(m, n, "%s: %s", what, why);
	*err = m;
}

static int image_open_dir(struct dimg_image *img, const char *path, const struct dimg_image_opts *o,
                          char **err)
{
	char *err_path = NULL;
	struct image_priv *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	img->priv = p;
	int r = dimg_tree_walk(&img->tree, path, 0, o->jobs, o->progress, o->pctx, &err_path);
	if (r < 0) {
		image_err(err, r, err_path ? err_path : path);
		free(err_path);
		return r;
	}
	r = dimg_dir_files_open(&img->files, path);
	if (r < 0) {
		image_err(err, r, path);
		return r;
	}
	p->is_dir = 1;
	return dimg_tree_id(img->tree, img->tree_id);
}

int dimg_image_open(struct dimg_image **out, const char *path, const struct dimg_image_opts *o,
                    char **err)
{
	static const struct dimg_image_opts defaults;
	struct stat st;
	int r;

	*out = NULL;
	if (err)
		*err = NULL;
	if (!o)
		o = &defaults;
	struct dimg_image *img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	if (stat(path, &st) < 0) {
		r = -errno;
		image_err(err, r, path);
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		r = image_open_dir(img, path, o, err);
	} else {
		r = -ENOTSUP;
		image_err(err, r, path);
	}
	if (r < 0)
		goto fail;
	*out = img;
	return 0;
fail:
	dimg_image_free(img);
	return r;
}

void dimg_image_free(struct dimg_image *img)
{
	if (!img)
		return;
	struct image_priv *p = img->priv;
	if (p && p->is_dir)
		dimg_dir_files_close(&img->files);
	free(p);
	dimg_tree_free(img->tree);
	free(img->config);
	free(img->manifest);
	free(img->manifest_media_type);
	free(img->ref);
	free(img);
}
