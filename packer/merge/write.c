/* A chain of delta files merged into one (what `cdimg merge` and `cdimg
 * plan --merge` do): the inputs opened, folded into a .dimg, and for a
 * .cdimg wrapped with the first base's config, the last target's config
 * and manifest, and the layer recipes composed along the chain. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdimg.h"
#include "layers.h"
#include "merge.h"
#include "packer.h"

struct inputs {
	struct cdimg **c;
	struct dimg_reader **rd;
	size_t n;
};

static void inputs_free(struct inputs *in)
{
	for (size_t i = 0; i < in->n; i++) {
		dimg_reader_free(in->rd ? in->rd[i] : NULL);
		cdimg_free(in->c ? in->c[i] : NULL);
	}
	free(in->c);
	free(in->rd);
}

static int inputs_open(struct inputs *in, const char *const *paths, size_t n, int raw,
                       struct dimg_err *err)
{
	in->c = calloc(n ? n : 1, sizeof(*in->c));
	in->rd = calloc(n ? n : 1, sizeof(*in->rd));
	in->n = n;
	if (!in->c || !in->rd)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int r = cdimg_open_delta(paths[i], &in->c[i], &in->rd[i], err);
		if (r < 0)
			return r;
	}
	if (raw || (in->c[0] && in->c[n - 1]))
		return 0;
	return dimg_err_set(
	    err, -EINVAL, in->c[0] ? paths[n - 1] : paths[0],
	    "a raw .dimg: a .cdimg output takes the base config from the first "
	    "delta and the target config and manifest from the last, so both must be "
	    ".cdimg files (write a raw delta instead: -o NAME.dimg)");
}

struct merge_job {
	struct inputs *in;
	const char *const *paths;
	struct merge_opts *o;
	struct merge_result *res;
};

static int merged_dimg(void *ctx, const char *path, struct dimg_err *err)
{
	struct merge_job *j = ctx;
	return merge_write_dimg(path, j->in->rd, j->paths, j->in->n, j->o, &j->res->st, err);
}

/* Delta i's target tree from its base tree (NULL: none known), or NULL
 * when it cannot be had. */
static struct dimg_tree *merged_next_tree(const struct inputs *in, size_t i,
                                          const struct dimg_tree *base)
{
	struct dimg_tree *t = NULL;
	if (base && dimg_reader_resolve(in->rd[i], base, &t) < 0)
		t = NULL;
	return t;
}

/* acc (recipes of delta i-1's target, tree prev) composed with delta i's
 * (tree cur) into acc; *lost counts the layers that stay "as in the base". */
static int merged_compose(struct merge_job *j, const struct cdimg_info *ci, size_t i,
                          struct dimg_buf *acc, const struct dimg_tree *prev,
                          const struct dimg_tree *cur, struct dimg_err *err)
{
	struct dimg_buf next = {0};
	size_t taken = 0, lost = 0;
	int r = layers_compose(acc->data, acc->len, prev, ci->layers, (size_t)ci->layers_size, cur,
	                       j->o->level, &next, &taken, &lost, err);
	if (r == 0) {
		dimg_buf_free(acc);
		*acc = next;
		j->res->layers_lost += lost;
	} else {
		dimg_err_what(err, r, j->paths[i]);
		dimg_buf_free(&next);
	}
	return r;
}

/* The last delta's recipes, its layers "as in the base" taken from the
 * earlier deltas' recipes of them (1: the last records none); those with
 * predicted entries are read against the intermediate trees, which the
 * first delta's base gives. */
static int merged_layers(void *ctx, int fd, struct dimg_err *err)
{
	struct merge_job *j = ctx;
	struct dimg_buf acc = {0};
	struct dimg_tree *prev = NULL, *cur = NULL;
	int r = 0;
	for (size_t i = 0; !r && i < j->in->n; i++) {
		const struct cdimg_info *ci = j->in->c[i] ? cdimg_get_info(j->in->c[i]) : NULL;
		dimg_tree_free(prev);
		prev = cur;
		cur = merged_next_tree(j->in, i, i ? prev : j->o->base);
		if (!ci || !ci->layers)
			continue;
		if (!acc.len)
			r = dimg_buf_append(&acc, ci->layers, (size_t)ci->layers_size);
		else
			r = merged_compose(j, ci, i, &acc, prev, cur, err);
	}
	dimg_tree_free(prev);
	dimg_tree_free(cur);
	if (!r && !cdimg_get_info(j->in->c[j->in->n - 1])->layers)
		r = 1;
	if (!r)
		r = dimg_write_fd(&fd, acc.data, acc.len);
	dimg_buf_free(&acc);
	return r;
}

static int merged_cdimg(const char *out, struct merge_job *j, struct dimg_err *err)
{
	const struct cdimg_info *first = cdimg_get_info(j->in->c[0]);
	const struct cdimg_info *last = cdimg_get_info(j->in->c[j->in->n - 1]);
	struct cdimg_parts parts = {merged_dimg, merged_layers, j};
	struct cdimg_meta m = {.base_config_digest = first->base_config_digest,
	                       .target_config = last->target_config,
	                       .target_config_len = last->target_config_len,
	                       .target_manifest = last->target_manifest,
	                       .target_manifest_len = last->target_manifest_len,
	                       .target_manifest_media_type = last->target_manifest_media_type,
	                       .target_ref = last->target_ref};
	unsigned flags = j->o->out_flags;
	j->o->out_flags = PACKER_REPLACE; /* the .dimg: the temporary file cdimg_write_parts made */
	return cdimg_write_parts(out, &parts, &m, flags, &j->res->size, err);
}

int merge_write(const char *out, const char *const *paths, size_t n, int raw,
                const struct merge_opts *o, struct merge_result *res, struct dimg_err *err)
{
	struct inputs in = {0};
	struct merge_opts mo = *o;
	struct merge_job j = {&in, paths, &mo, res};
	memset(res, 0, sizeof(*res));
	int r = n ? inputs_open(&in, paths, n, raw, err) : -EINVAL;
	if (r == 0 && o->base_image) { /* a directory may stand for v1 (dimg_image_match) */
		dimg_image_match(o->base_image, dimg_reader_base_id(in.rd[0]));
		mo.base = o->base_image->tree;
		mo.base_files = &o->base_image->files;
	}
	if (r == 0 && raw)
		r = merged_dimg(&j, out, err);
	else if (r == 0)
		r = merged_cdimg(out, &j, err);
	if (r == 0 && raw)
		res->size = res->st.output_size;
	inputs_free(&in);
	return r;
}
