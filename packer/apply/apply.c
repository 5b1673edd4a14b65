/* Applying a delta: the base checked, the target resolved, every file
 * rebuilt from the delta and the base and verified, into a directory or an
 * OCI image (original layers from the recipes, else one squashed layer). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "dimg/write.h"
#include "layers.h"

int apply_base_needs_recipes(const struct cdimg_info *ci, int to_image, int squash)
{
	return to_image && !squash && ci && ci->layers;
}

/* -EXDEV names both sides: the tree ids, and for a .cdimg the configs. */
static int wrong_base(const struct apply_src *s, struct dimg_err *err)
{
	char want[65], have[65], cfg[96] = "", need[96] = "";
	dimg_hex32(dimg_reader_base_id(s->rd), want);
	dimg_hex32(s->base->tree_id, have);
	if (s->base->config_digest[0])
		snprintf(cfg, sizeof(cfg), " (config %.19s...)", s->base->config_digest);
	if (s->ci)
		snprintf(need, sizeof(need), " (config %.19s...)", s->ci->base_config_digest);
	return dimg_err_set(
	    err, -EXDEV, s->delta_name,
	    "wrong base: %s has tree id %.16s...%s, the delta needs tree %.16s...%s%s",
	    s->base_name, have, cfg, want, need,
	    s->ci && !s->base->nlayers
	        ? "; give the base image itself, or a directory holding exactly "
	          "its root filesystem"
	        : "");
}

int apply_resolve(const struct apply_src *s, struct dimg_tree **out, struct dimg_err *err)
{
	int r = dimg_image_match(s->base, dimg_reader_base_id(s->rd));
	if (r == -EXDEV)
		return wrong_base(s, err);
	if (r == 0)
		r = dimg_reader_resolve(s->rd, s->base->tree, out);
	if (r == -EXDEV)
		return wrong_base(s, err);
	if (r < 0)
		return dimg_err_set(err, r, s->delta_name, "its index does not fit its base: %s",
		                    dimg_strerror(r));
	return 0;
}

/* Where rebuilt files come from; a file that cannot be rebuilt is the
 * delta's fault, named as such before the writer names its output. */
struct rebuild {
	const struct apply_src *s;
	struct dimg_err *err;
};

static int rebuild_content(void *ctx, const struct dimg_entry *e, dimg_write_fn sink,
                           void *sink_ctx)
{
	struct rebuild *b = ctx;
	int r = dimg_reader_rebuild(b->s->rd, e, &b->s->base->files, sink, sink_ctx);
	if (r < 0 && r != -ENOMEM && r != -ENOSPC && r != -EIO && r != -EDQUOT)
		dimg_err_set(b->err, r, b->s->delta_name, "entry '%s': %s", e->path,
		             dimg_strerror(r));
	return r;
}

int apply_write_dir(const char *out, const struct apply_src *s, const struct dimg_tree *target,
                    unsigned flags, dimg_progress_fn progress, void *pctx, struct dimg_err *err)
{
	struct dimg_err w = {0};
	struct rebuild b = {s, err};
	char *path = NULL;
	int r = dimg_tree_write_dir(target, out, rebuild_content, &b, flags, progress, pctx, &w);
	if (r == 0 || !w.what[0] || !strcmp(w.what, out))
		return r < 0 ? dimg_err_set(err, r, out, w.why[0] ? "%s" : NULL, w.why) : 0;
	/* an entry of the tree: named by where it was to be written */
	if (asprintf(&path, "%s/%s", out, w.what) < 0)
		path = NULL;
	dimg_err_set(err, r, path ? path : out, w.why[0] ? "%s" : NULL, w.why);
	free(path);
	return r;
}

/* ---- one squashed layer ---- */

static int write_squashed(const char *out, const struct apply_src *s,
                          const struct dimg_tree *target, const struct apply_image_opts *o,
                          struct apply_image_result *res, struct dimg_err *err)
{
	struct oci_image_opts io = {.gzip = o->gzip,
	                            .ref = res->ref,
	                            .out_flags = o->out_flags,
	                            .progress = o->progress,
	                            .pctx = o->pctx};
	struct oci_image_result ir;
	struct rebuild b = {s, err};
	int r = oci_image_write(out, target, rebuild_content, &b, s->ci->target_config,
	                        s->ci->target_config_len, &io, &ir, err);
	if (r < 0)
		return r;
	res->layers = 1;
	res->file_size = ir.file_size;
	res->layer_size = ir.layer_size;
	memcpy(res->manifest_digest, ir.manifest_digest, OCI_DIGEST_LEN);
	memcpy(res->config_digest, ir.config_digest, OCI_DIGEST_LEN);
	memcpy(res->layer_digest, ir.layer_digest, OCI_DIGEST_LEN);
	memcpy(res->diff_id, ir.diff_id, OCI_DIGEST_LEN);
	return 0;
}

/* ---- the original layers, from the .cdimg's recipes ---- */

struct exact {
	struct layers_reader *lr;
	struct layers_src src;
	const struct apply_src *s;
	int gzip;
	const struct dimg_entry **by_sha; /* target REG entries sorted by sha256 */
	size_t n;
	struct dimg_err why; /* why a layer could not be rebuilt exactly */
};

static int entry_sha_cmp(const void *x, const void *y)
{
	const struct dimg_entry *a = *(const struct dimg_entry *const *)x;
	const struct dimg_entry *b = *(const struct dimg_entry *const *)y;
	return memcmp(a->sha256, b->sha256, 32);
}

static int key_sha_cmp(const void *key, const void *y)
{
	const struct dimg_entry *b = *(const struct dimg_entry *const *)y;
	return memcmp(key, b->sha256, 32);
}

/* layers_src.content: a target file with this content, rebuilt. */
static int exact_content(void *ctx, const uint8_t sha[32], uint64_t size, dimg_write_fn sink,
                         void *sink_ctx)
{
	struct exact *x = ctx;
	const struct dimg_entry **e = bsearch(sha, x->by_sha, x->n, sizeof(*e), key_sha_cmp);
	if (!e || (*e)->size != size)
		return -ENOENT;
	return dimg_reader_rebuild(x->s->rd, *e, &x->s->base->files, sink, sink_ctx);
}

static int exact_begin(void *ctx, size_t i, int *gzip)
{
	struct exact *x = ctx;
	struct layers_layer l;
	int r = layers_next(x->lr, i, &l, &x->why);
	*gzip = x->gzip || l.comp == LAYERS_COMP_GZIP;
	return r;
}

static int exact_layer(void *ctx, size_t i, dimg_write_fn sink, void *sink_ctx)
{
	struct exact *x = ctx;
	(void)i;
	return layers_write(x->lr, &x->src, sink, sink_ctx, &x->why);
}

static int exact_index(struct exact *x, const struct dimg_tree *t)
{
	x->by_sha = malloc((t->n ? t->n : 1) * sizeof(*x->by_sha));
	if (!x->by_sha)
		return -ENOMEM;
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].type == DIMG_TYPE_REG && t->v[i].size)
			x->by_sha[x->n++] = &t->v[i];
	qsort(x->by_sha, x->n, sizeof(*x->by_sha), entry_sha_cmp);
	return 0;
}

/* A failure that means "not these layers" (the caller squashes) rather
 * than a failure of the write. */
static int not_exact(int r)
{
	return r == -EBADMSG || r == -EXDEV || r == -ENOTSUP || r == -EINVAL;
}

/* 1: the original layers were written; 0: they could not be (x->why says
 * why: the caller squashes instead); -errno: a failure of another kind. */
static int write_exact(const char *out, struct exact *x, const struct apply_image_opts *o,
                       struct apply_image_result *res, struct dimg_err *err)
{
	const struct cdimg_info *ci = x->s->ci;
	struct oci_layers_result lres;
	int r = layers_open(&x->lr, ci->layers, (size_t)ci->layers_size, &x->why);
	if (r < 0)
		return r == -ENOMEM ? r : 0;
	struct oci_layers_opts lo = {.n = layers_count(x->lr),
	                             .begin = exact_begin,
	                             .ref = res->ref,
	                             .out_flags = o->out_flags};
	r = oci_image_write_layers(out, exact_layer, x, ci->target_config, ci->target_config_len,
	                           &lo, &lres, &x->why);
	if (r < 0 && not_exact(r)) {
		if (!x->why.why[0])
			snprintf(x->why.why, sizeof(x->why.why), "%s", dimg_strerror(r));
		return 0;
	}
	if (r < 0) /* the output's own failure (a full disk): named by out */
		return dimg_err_set(err, r, x->why.what[0] ? x->why.what : out,
		                    x->why.why[0] ? "%s" : NULL, x->why.why);
	res->original = 1;
	res->layers = lo.n;
	res->file_size = lres.file_size;
	memcpy(res->manifest_digest, lres.manifest_digest, OCI_DIGEST_LEN);
	memcpy(res->config_digest, lres.config_digest, OCI_DIGEST_LEN);
	return 1;
}

int apply_write_image(const char *out, const struct apply_src *s, const struct dimg_tree *target,
                      const struct apply_image_opts *o, struct apply_image_result *res,
                      struct dimg_err *err)
{
	struct exact x = {.s = s, .gzip = o->gzip};
	int r = 0;
	memset(res, 0, sizeof(*res));
	if (!s->ci)
		return dimg_err_set(err, -EINVAL, s->delta_name,
		                    "a raw .dimg has no image config: an OCI image needs a .cdimg");
	res->ref = o->ref ? o->ref : s->ci->target_ref;
	if (o->squash)
		return write_squashed(out, s, target, o, res, err);
	if (!s->ci->layers)
		dimg_err_set(&x.why, 0, NULL, "the delta records no layer recipes");
	else if (!s->base->nlayers)
		dimg_err_set(&x.why, 0, NULL, "the base is a plain directory, not an image");
	else {
		x.src = (struct layers_src){s->base, exact_content, &x, target};
		if ((r = exact_index(&x, target)) == 0)
			r = write_exact(out, &x, o, res, err);
	}
	if (r == 0) {
		snprintf(res->squash_why, sizeof(res->squash_why), "%s",
		         x.why.why[0] ? x.why.why : "?");
		r = write_squashed(out, s, target, o, res, err);
	}
	layers_free(x.lr);
	free(x.by_sha);
	return r < 0 ? r : 0;
}
