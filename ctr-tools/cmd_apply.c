/* cdimg apply OLD IN.dimg|IN.cdimg -o NEWDIR|NEW.tar: rebuild the target
 * tree, verified, as a directory or as a one-layer OCI image tar. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdimg.h"
#include "cli.h"
#include "dimg/dimg.h"
#include "dimg/hash.h"
#include "dimg/image.h"
#include "dimg/write.h"
#include "layers.h"
#include "ociwrite.h"

static const char apply_help[] =
    "usage: cdimg apply [OPTIONS] OLD IN.dimg|IN.cdimg -o NEWDIR|NEW.tar\n"
    "\n"
    "Rebuilds the target of a delta from the base OLD: an image (OCI image\n"
    "layout directory or tar, `docker save` tar) squashed into one tree, or a\n"
    "plain directory tree. OLD must be the exact tree the delta was made from\n"
    "(checked by tree id). Every rebuilt file's SHA-256 is verified.\n"
    "\n"
    "-o NEWDIR: the target tree as a directory (which must not exist): every\n"
    "file's content, mode (setuid, setgid, sticky), owner, mtime, xattrs,\n"
    "hardlinks, symlinks, devices and fifos. Work happens in a temporary\n"
    "directory next to NEWDIR that is renamed at the end: a failed or\n"
    "interrupted apply leaves nothing at NEWDIR.\n"
    "\n"
    "-o NEW.tar (needs a .cdimg, which carries the target's config): a standard\n"
    "OCI image layout tar (`ctr images import`, `skopeo copy oci-archive:`) of\n"
    "the target image. When the .cdimg records layer recipes and OLD is an\n"
    "image, each original layer tar is rebuilt byte for byte and checked\n"
    "against the config's diff_ids, and the config is the original one: the\n"
    "image ID (config digest) and every diff_id are the original ones; the\n"
    "layers are gzip-compressed where the original ones were (or with --gzip),\n"
    "so compressed layer digests and the manifest digest are new. Otherwise,\n"
    "or with --squash, or if a layer cannot be rebuilt exactly (said on\n"
    "stderr), the layers are squashed into one: the same config settings, new\n"
    "layer, config and manifest digests. Written to a temporary name, renamed\n"
    "when complete.\n"
    "\n"
    "options:\n"
    "  -o, --output PATH    the directory or .tar to create\n"
    "      --ref NAME       image name in NEW.tar (default: the target's name\n"
    "                       recorded in the .cdimg)\n"
    "      --gzip           compress every layer of NEW.tar with gzip\n"
    "      --squash         one squashed layer even when the original layers\n"
    "                       could be given back\n"
    "      --base-ref NAME  pick NAME from a multi-image OLD archive\n"
    "      --platform OS/ARCH  platform to pick from OLD's index\n"
    "      --cache DIR      content store for OLD's files (default: temporary)\n"
    "  -j, --jobs N         threads hashing the base (default: one per core)\n"
    "  -q, --quiet          no progress\n"
    "  -h, --help           this text\n"
    "\n"
    "Run as root to restore ownership and device nodes in NEWDIR; otherwise\n"
    "they are skipped with a warning (NEW.tar always records them).\n";

struct apply_args {
	const char *old, *delta, *out;
	const char *ref, *base_ref, *platform, *cache;
	unsigned jobs;
	int quiet, gzip, oci, squash;
};

struct apply_ctx {
	const struct dimg_reader *rd;
	const struct dimg_files *base;
};

static int content(void *ctx, const struct dimg_entry *e, dimg_write_fn sink, void *sink_ctx)
{
	struct apply_ctx *a = ctx;
	return dimg_reader_rebuild(a->rd, e, a->base, sink, sink_ctx);
}

static int open_base(const struct apply_args *a, int record, struct dimg_image **img,
                     struct cli_progress *p)
{
	struct dimg_image_opts o = {.ref = a->base_ref,
	                            .record_layers = record,
	                            .platform = a->platform,
	                            .cas_dir = a->cache,
	                            .jobs = a->jobs,
	                            .progress = cli_progress_cb,
	                            .pctx = p};
	char *err = NULL;
	int r = dimg_image_open(img, a->old, &o, &err);
	cli_progress_done(p);
	if (r >= 0)
		return 0;
	int code = err ? cli_exit_code(r) : cli_fail(r, a->old, NULL);
	if (err)
		fprintf(stderr, "cdimg: %s: %s\n", a->old, err);
	free(err);
	return code;
}

/* -EXDEV names both sides: the tree ids, and for a .cdimg the configs. */
static int wrong_base(const struct apply_args *a, const struct dimg_reader *rd,
                      const struct dimg_image *base, const struct cdimg_info *ci)
{
	char want[65], have[65];
	dimg_hex32(dimg_reader_base_id(rd), want);
	dimg_hex32(base->tree_id, have);
	fprintf(stderr, "cdimg: %s: wrong base: %s has tree id %.16s...", a->delta, a->old, have);
	if (base->config_digest[0])
		fprintf(stderr, " (config %.19s...)", base->config_digest);
	fprintf(stderr, ", the delta needs tree %.16s...", want);
	if (ci)
		fprintf(stderr, " (config %.19s...)", ci->base_config_digest);
	fprintf(stderr, "\n");
	return CLI_BADINPUT;
}

static int write_dir(const struct apply_args *a, struct dimg_tree *target, struct apply_ctx *ac,
                     struct cli_progress *p, char **bad)
{
	unsigned flags = 0;
	if (geteuid() != 0) {
		flags |= DIMG_WRITE_NO_OWNER | DIMG_WRITE_NO_DEVICES;
		fprintf(stderr,
		        "cdimg: warning: not root: ownership and device nodes are not restored\n");
	}
	return dimg_tree_write_dir(target, a->out, content, ac, flags, cli_progress_cb, p, bad);
}

static int write_oci(const struct apply_args *a, struct dimg_tree *target, struct apply_ctx *ac,
                     const struct cdimg_info *ci, struct cli_progress *p, char **bad)
{
	struct oci_image_opts o = {.gzip = a->gzip,
	                           .ref = a->ref ? a->ref : ci->target_ref,
	                           .progress = cli_progress_cb,
	                           .pctx = p};
	struct oci_image_result res;
	char h[32];
	int r = oci_image_write(a->out, target, content, ac, ci->target_config,
	                        ci->target_config_len, &o, &res, bad);
	cli_progress_done(p);
	if (r < 0 || a->quiet)
		return r;
	printf("%s: OCI image %s, %s\n", a->out, o.ref ? o.ref : "(unnamed)",
	       cli_human(res.file_size, h, sizeof(h)));
	printf("  manifest %s\n  config   %s\n  layer    %s (%s%s)\n  diff_id  %s\n",
	       res.manifest_digest, res.config_digest, res.layer_digest,
	       cli_human(res.layer_size, h, sizeof(h)), a->gzip ? ", gzip" : "", res.diff_id);
	if (!o.ref)
		fprintf(stderr,
		        "cdimg: warning: the image has no name: give one with --ref NAME\n");
	return 0;
}

/* ---- the original layers, from the .cdimg's recipes ---- */

struct exact {
	struct layers_reader *lr;
	struct layers_src src;
	const struct apply_args *a;
	const struct dimg_reader *rd;
	const struct dimg_files *base_files;
	const struct dimg_entry **by_sha; /* target REG entries sorted by sha256 */
	size_t n;
	char *why;
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
	return dimg_reader_rebuild(x->rd, *e, x->base_files, sink, sink_ctx);
}

static int exact_begin(void *ctx, size_t i, int *gzip)
{
	struct exact *x = ctx;
	struct layers_layer l;
	int r = layers_next(x->lr, i, &l, &x->why);
	*gzip = x->a->gzip || l.comp == LAYERS_COMP_GZIP;
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

/* 1: the original layers were written; 0: they could not be (x->why says
 * why: the caller squashes instead); -errno: a failure of another kind. */
static int write_exact(const struct apply_args *a, struct exact *x, const struct cdimg_info *ci,
                       const struct dimg_tree *target)
{
	struct oci_layers_result res;
	char h[32];
	int r = layers_open(&x->lr, ci->layers, (size_t)ci->layers_size, &x->why);
	if (r == 0)
		r = exact_index(x, target);
	if (r < 0)
		return r == -ENOMEM ? r : 0;
	struct oci_layers_opts o = {.n = layers_count(x->lr),
	                            .begin = exact_begin,
	                            .ref = a->ref ? a->ref : ci->target_ref};
	r = oci_image_write_layers(a->out, exact_layer, x, ci->target_config, ci->target_config_len,
	                           &o, &res);
	if (r == -EBADMSG || r == -EXDEV || r == -ENOTSUP || r == -EINVAL) {
		if (!x->why)
			x->why = strdup(res.why[0] ? res.why : strerror(-r));
		return 0;
	}
	if (r < 0)
		return r;
	if (!a->quiet)
		printf("%s: OCI image %s, %s, the original %zu layers (every diff_id verified)\n"
		       "  manifest %s\n  config   %s (the original image ID)\n",
		       a->out, o.ref ? o.ref : "(unnamed)", cli_human(res.file_size, h, sizeof(h)),
		       o.n, res.manifest_digest, res.config_digest);
	return 1;
}

static void exact_free(struct exact *x)
{
	layers_free(x->lr);
	free(x->by_sha);
	free(x->why);
}

/* The original layers when the delta and the base allow, else squashed. */
static int write_image(const struct apply_args *a, struct dimg_tree *target, struct apply_ctx *ac,
                       const struct dimg_image *base, const struct cdimg_info *ci,
                       struct cli_progress *p, char **bad)
{
	struct exact x = {.a = a, .rd = ac->rd, .base_files = ac->base};
	int r = 0;
	if (a->squash)
		return write_oci(a, target, ac, ci, p, bad);
	if (!ci->layers)
		x.why = strdup("the delta records no layer recipes");
	else if (!base->nlayers)
		x.why = strdup("the base is a plain directory, not an image");
	else {
		x.src = (struct layers_src){base, exact_content, &x, target};
		r = write_exact(a, &x, ci, target);
	}
	if (r == 0) {
		fprintf(stderr,
		        "cdimg apply: warning: not giving back the original layers (%s): "
		        "writing one squashed layer\n",
		        x.why ? x.why : "?");
		r = write_oci(a, target, ac, ci, p, bad);
	}
	exact_free(&x);
	return r < 0 ? r : 0;
}

static int run_apply(const struct apply_args *a)
{
	struct cdimg *c = NULL;
	struct dimg_reader *rd = NULL;
	struct dimg_image *base = NULL;
	struct dimg_tree *target = NULL;
	struct cli_progress p;
	char *bad = NULL;
	int r, code;
	cli_progress_init(&p, a->quiet);
	if ((code = cli_open_delta(a->delta, &c, &rd)))
		return code;
	const struct cdimg_info *ci = c ? cdimg_get_info(c) : NULL;
	if (a->oci && !ci) {
		fprintf(stderr,
		        "cdimg apply: %s is a raw .dimg: it has no image config, so it can only\n"
		        "be applied to a directory (-o NEWDIR); an OCI image needs a .cdimg\n",
		        a->delta);
		code = CLI_USAGE;
		goto out;
	}
	if ((code = open_base(a, a->oci && !a->squash && ci && ci->layers, &base, &p)))
		goto out;
	if ((r = dimg_reader_resolve(rd, base->tree, &target)) < 0) {
		code = r == -EXDEV ? wrong_base(a, rd, base, ci)
		                   : cli_fail(r, a->delta, "index does not match its base");
		goto out;
	}
	struct apply_ctx ac = {rd, &base->files};
	r = a->oci ? write_image(a, target, &ac, base, ci, &p, &bad)
	           : write_dir(a, target, &ac, &p, &bad);
	cli_progress_done(&p);
	if (r < 0) {
		char what[4096 + 64];
		snprintf(what, sizeof(what), "%s: entry '%s'", a->delta, bad ? bad : "?");
		code = cli_fail(r, what, NULL);
		goto out;
	}
	code = CLI_OK;
out:
	free(bad);
	dimg_tree_free(target);
	dimg_image_free(base);
	dimg_reader_free(rd);
	cdimg_free(c);
	return code;
}

static int parse(int argc, char **argv, struct apply_args *a)
{
	static const struct option opts[] = {{"output", required_argument, 0, 'o'},
	                                     {"jobs", required_argument, 0, 'j'},
	                                     {"quiet", no_argument, 0, 'q'},
	                                     {"help", no_argument, 0, 'h'},
	                                     {"ref", required_argument, 0, 'R'},
	                                     {"base-ref", required_argument, 0, 'B'},
	                                     {"platform", required_argument, 0, 'P'},
	                                     {"cache", required_argument, 0, 'K'},
	                                     {"gzip", no_argument, 0, 'z'},
	                                     {"squash", no_argument, 0, 'S'},
	                                     {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "o:j:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			a->out = optarg;
			break;
		case 'j':
			if (cli_parse_uint(optarg, 1, 1024, &a->jobs) < 0) {
				fprintf(stderr, "cdimg apply: bad value '%s'\n", optarg);
				return CLI_USAGE;
			}
			break;
		case 'q':
			a->quiet = 1;
			break;
		case 'R':
			a->ref = optarg;
			break;
		case 'B':
			a->base_ref = optarg;
			break;
		case 'P':
			a->platform = optarg;
			break;
		case 'K':
			a->cache = optarg;
			break;
		case 'z':
			a->gzip = 1;
			break;
		case 'S':
			a->squash = 1;
			break;
		case 'h':
			fputs(apply_help, stdout);
			return -1;
		default:
			fputs(apply_help, stderr);
			return CLI_USAGE;
		}
	}
	if (optind + 2 != argc || !a->out) {
		fputs(apply_help, stderr);
		return CLI_USAGE;
	}
	a->old = argv[optind];
	a->delta = argv[optind + 1];
	size_t n = strlen(a->out);
	a->oci = n >= 4 && !strcmp(a->out + n - 4, ".tar");
	return 0;
}

int cmd_apply(int argc, char **argv)
{
	struct apply_args a = {0};
	int r = parse(argc, argv, &a);
	if (r == -1)
		return CLI_OK;
	if (r)
		return r;
	return run_apply(&a);
}
