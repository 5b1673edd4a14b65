/* A diff of two images (or trees) written out: planned, encoded into a
 * .dimg, and for a .cdimg wrapped with both images' metadata and the
 * target's layer recipes. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "diff.h"

void cdimg_diff_opts_default(struct cdimg_diff_opts *o)
{
	memset(o, 0, sizeof(*o));
	packer_opts_default(&o->po);
}

struct diff_job {
	const struct dimg_image *base, *target;
	struct dimg_tree *plan;
	const struct cdimg_diff_opts *o;
	struct cdimg_diff_result *res;
	unsigned dimg_flags; /* the .dimg's output flags */
};

static int diff_dimg(void *ctx, const char *path, struct dimg_err *err)
{
	struct diff_job *j = ctx;
	struct packer_opts po = j->o->po;
	po.out_flags = j->dimg_flags;
	return packer_write_dimg(path, j->base->tree, &j->base->files, j->plan, &j->target->files,
	                         &po, &j->res->st, err);
}

/* The recipes, or none (1) when a layer cannot be recorded: the .cdimg is
 * still good, apply then gives back one squashed layer. */
static int diff_layers(void *ctx, int fd, struct dimg_err *err)
{
	struct diff_job *j = ctx;
	struct dimg_err why = {0};
	int r = layers_build(fd, j->target, j->base, j->o->po.diff.level, j->o->raw_recipes,
	                     &j->res->layers, &why);
	if (r == 0) {
		j->res->layers_recorded = 1;
		return 0;
	}
	if (r != -ENOTSUP)
		return dimg_err_set(err, r, why.what[0] ? why.what : NULL, why.why[0] ? "%s" : NULL,
		                    why.why);
	snprintf(j->res->layers_why, sizeof(j->res->layers_why), "%s", why.why[0] ? why.why : "?");
	return 1;
}

/* A .cdimg names both images: plain trees are refused before any work. */
static int check_images(const struct dimg_image *base, const struct dimg_image *target,
                        struct dimg_err *err)
{
	if (target->config && target->manifest && base->config)
		return 0;
	return dimg_err_set(err, -EINVAL, NULL,
	                    "the %s is a plain directory tree, not an image: a .cdimg records both "
	                    "images' configs (and the target's manifest)",
	                    base->config ? "target" : "base");
}

static int write_cdimg(const char *out, struct diff_job *j, struct dimg_err *err)
{
	const struct dimg_image *b = j->base, *t = j->target;
	struct cdimg_parts parts = {diff_dimg, j->o->no_layers ? NULL : diff_layers, j};
	struct cdimg_meta m = {.base_config_digest = b->config_digest,
	                       .target_config = t->config,
	                       .target_config_len = t->config_len,
	                       .target_manifest = t->manifest,
	                       .target_manifest_len = t->manifest_len,
	                       .target_manifest_media_type = t->manifest_media_type,
	                       .target_ref = t->ref};
	if (j->o->no_layers)
		snprintf(j->res->layers_why, sizeof(j->res->layers_why), "--no-layers");
	j->dimg_flags = PACKER_REPLACE; /* the temporary file cdimg_write_parts made */
	return cdimg_write_parts(out, &parts, &m, j->o->po.out_flags, &j->res->size, err);
}

int cdimg_write_diff(const char *out, const struct dimg_image *base,
                     const struct dimg_image *target, const struct cdimg_diff_opts *o,
                     struct cdimg_diff_result *res, struct dimg_err *err)
{
	struct diff_job j = {base, target, NULL, o, res, o->po.out_flags};
	memset(res, 0, sizeof(*res));
	int r = o->raw ? 0 : check_images(base, target, err);
	if (r == 0 && (r = differ_plan(base->tree, target->tree, &j.plan)) < 0)
		dimg_err_set(err, r, NULL, "planning the delta: %s", dimg_strerror(r));
	if (r == 0 && o->raw)
		r = diff_dimg(&j, out, err);
	else if (r == 0)
		r = write_cdimg(out, &j, err);
	if (r == 0 && o->raw)
		res->size = res->st.output_size;
	if (r == 0)
		r = dimg_counts_trees(&res->counts, base->tree, j.plan);
	dimg_tree_free(j.plan);
	return r;
}
