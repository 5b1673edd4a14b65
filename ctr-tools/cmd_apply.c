/* cdimg apply OLD IN.dimg|IN.cdimg -o NEWDIR|NEW.tar: rebuild the target
 * tree, verified, as a directory or as a one-layer OCI image tar. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "cli.h"
#include "dimg/write.h"
#include "packer.h"

static const char apply_help[] =
    "usage: cdimg apply [OPTIONS] OLD IN.dimg|IN.cdimg -o NEWDIR|NEW.tar\n"
    "\n"
    "Rebuilds the target of a delta from the base OLD: an image (OCI image\n"
    "layout directory or tar, `docker save` tar, or a name as `cdimg copy`\n"
    "takes them: oci:, oci-archive:, docker-archive:, containerd:NAME (at\n"
    "$CONTAINERD_ADDRESS, namespace $CONTAINERD_NAMESPACE), docker://)\n"
    "squashed into one tree, or a plain directory tree. OLD must be the exact\n"
    "tree the delta was made from (checked by tree id). Every rebuilt file's\n"
    "SHA-256 is verified.\n"
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
    "      --force          replace PATH if it exists (never OLD or the delta)\n"
    "      --ref NAME       image name in NEW.tar (default: the target's name\n"
    "                       recorded in the .cdimg)\n"
    "      --gzip           compress every layer of NEW.tar with gzip\n"
    "      --squash         one squashed layer even when the original layers\n"
    "                       could be given back\n"
    "      --base-ref NAME  pick NAME from a multi-image OLD archive\n"
    "      --platform OS/ARCH  platform to pick from OLD's index\n"
    "      --cache DIR      content store for OLD's files (default: temporary)\n"
    "      --hash-cache DIR\n"
    "                       OLD as a directory: SHA-256s of its files kept by\n"
    "                       device, inode, size, mtime and ctime, so a file\n"
    "                       unchanged since it was last hashed is not read to\n"
    "                       check the base (default $XDG_CACHE_HOME/di3fs/hashes\n"
    "                       or ~/.cache/di3fs/hashes; none: read every file).\n"
    "                       Every file written is still verified by its SHA-256\n"
    "  -j, --jobs N         threads hashing the base (default: one per core)\n"
    "  -q, --quiet          no progress\n"
    "  -h, --help           this text\n"
    "\n"
    "Run as root to restore ownership and device nodes in NEWDIR; otherwise\n"
    "they are skipped with a warning (NEW.tar always records them).\n";

struct apply_args {
	struct cli_args c;
	const char *old, *delta;
	const char *ref; /* the output image's name */
	int gzip, oci, squash;
};

static int open_base(const struct apply_args *a, int record, struct dimg_image **img)
{
	struct dimg_image_opts o;
	cli_image_opts(&a->c, 0, &o);
	o.record_layers = record;
	return cli_open_image(img, a->old, &o, a->c.quiet);
}

static int write_dir(const struct apply_args *a, const struct apply_src *s,
                     const struct dimg_tree *target, struct cli_progress *p, struct dimg_err *err)
{
	unsigned flags = a->c.force ? DIMG_WRITE_REPLACE : 0;
	if (geteuid() != 0) {
		flags |= DIMG_WRITE_NO_OWNER | DIMG_WRITE_NO_DEVICES;
		fprintf(stderr,
		        "cdimg: warning: not root: ownership and device nodes are not restored\n");
	}
	int r = apply_write_dir(a->c.out, s, target, flags, cli_progress_cb, p, err);
	uint64_t files = 0, bytes = 0;
	char h[32];
	for (size_t i = 0; i < target->n; i++)
		if (target->v[i].type == DIMG_TYPE_REG)
			files++, bytes += target->v[i].size;
	cli_progress_done(p);
	if (r == 0 && !a->c.quiet)
		printf("%s: the target tree, %zu entries, %" PRIu64
		       " regular files (%s), every file's SHA-256 verified\n",
		       a->c.out, target->n, files, cli_human(bytes, h, sizeof(h)));
	return r;
}

static void print_image(const struct apply_args *a, const struct apply_image_result *res)
{
	char h[32];
	if (res->squash_why[0])
		fprintf(stderr,
		        "cdimg apply: warning: not giving back the original layers (%s): "
		        "writing one squashed layer\n",
		        res->squash_why);
	if (!res->ref)
		fprintf(stderr,
		        "cdimg: warning: the image has no name: give one with --ref NAME\n");
	if (a->c.quiet)
		return;
	if (res->original) {
		printf("%s: OCI image %s, %s, the original %zu layers (every diff_id verified)\n"
		       "  manifest %s\n  config   %s (the original image ID)\n",
		       a->c.out, res->ref ? res->ref : "(unnamed)",
		       cli_human(res->file_size, h, sizeof(h)), res->layers, res->manifest_digest,
		       res->config_digest);
		return;
	}
	printf("%s: OCI image %s, %s\n", a->c.out, res->ref ? res->ref : "(unnamed)",
	       cli_human(res->file_size, h, sizeof(h)));
	printf("  manifest %s\n  config   %s\n  layer    %s (%s%s)\n  diff_id  %s\n",
	       res->manifest_digest, res->config_digest, res->layer_digest,
	       cli_human(res->layer_size, h, sizeof(h)), a->gzip ? ", gzip" : "", res->diff_id);
}

static int write_image(const struct apply_args *a, const struct apply_src *s,
                       const struct dimg_tree *target, struct cli_progress *p, struct dimg_err *err)
{
	struct apply_image_opts o = {.squash = a->squash,
	                             .gzip = a->gzip,
	                             .ref = a->ref,
	                             .out_flags = a->c.force ? PACKER_REPLACE : 0,
	                             .progress = cli_progress_cb,
	                             .pctx = p};
	struct apply_image_result res;
	int r = apply_write_image(a->c.out, s, target, &o, &res, err);
	cli_progress_done(p);
	if (r == 0)
		print_image(a, &res);
	return r;
}

/* A failure of the output (a full disk above all) says "writing OUT" and
 * the entry of it; one of the inputs names the input (the delta for a
 * file it cannot rebuild). */
static int report(const struct apply_args *a, int r, const struct dimg_err *err)
{
	size_t n = strlen(a->c.out);
	if (strncmp(err->what, a->c.out, n) || (err->what[n] && err->what[n] != '/'))
		return cli_report(r, err, a->c.out);
	fprintf(stderr, "cdimg: writing %s: ", a->c.out);
	if (err->what[n])
		fprintf(stderr, "entry '%s': ", err->what + n + 1);
	fprintf(stderr, "%s\n", err->why[0] ? err->why : dimg_strerror(r));
	return cli_exit_code(r);
}

static int run_apply(const struct apply_args *a)
{
	struct cdimg *c = NULL;
	struct dimg_reader *rd = NULL;
	struct dimg_image *base = NULL;
	struct dimg_tree *target = NULL;
	struct dimg_err err = {0};
	struct cli_progress p;
	int r, code;
	const char *inputs[] = {a->old, a->delta};
	if ((code = cli_check_output(&a->c, inputs, 2)))
		return code;
	cli_progress_init(&p, a->c.quiet);
	if ((r = cdimg_open_delta(a->delta, &c, &rd, &err)) < 0)
		return cli_report(r, &err, a->delta);
	const struct cdimg_info *ci = c ? cdimg_get_info(c) : NULL;
	if (a->oci && !ci) {
		fprintf(stderr,
		        "cdimg apply: %s is a raw .dimg: it has no image config, so it can only\n"
		        "be applied to a directory (-o NEWDIR); an OCI image needs a .cdimg\n",
		        a->delta);
		code = CLI_USAGE;
		goto out;
	}
	if ((code = open_base(a, apply_base_needs_recipes(ci, a->oci, a->squash), &base)))
		goto out;
	struct apply_src s = {a->delta, rd, ci, a->old, base};
	r = apply_resolve(&s, &target, &err);
	if (r == 0)
		r = a->oci ? write_image(a, &s, target, &p, &err)
		           : write_dir(a, &s, target, &p, &err);
	cli_progress_done(&p);
	code = r < 0 ? report(a, r, &err) : CLI_OK;
out:
	dimg_tree_free(target);
	dimg_image_free(base);
	dimg_reader_free(rd);
	cdimg_free(c);
	return code;
}

static int apply_option(void *ctx, int c, const char *arg)
{
	struct apply_args *a = ctx;
	if (c == 'R')
		a->ref = arg;
	else if (c == 'z')
		a->gzip = 1;
	else if (c == 'S')
		a->squash = 1;
	else
		return -2;
	return 0;
}

static int parse(int argc, char **argv, struct apply_args *a)
{
	static const struct option opts[] = {CLI_OPTION_OUTPUT,
	                                     CLI_OPTION_FORCE,
	                                     CLI_OPTION_JOBS,
	                                     CLI_OPTION_QUIET,
	                                     CLI_OPTION_HELP,
	                                     CLI_OPTION_BASE_REF,
	                                     CLI_OPTION_PLATFORM,
	                                     CLI_OPTION_CACHE,
	                                     CLI_OPTION_HASH_CACHE,
	                                     {"ref", required_argument, 0, 'R'},
	                                     {"gzip", no_argument, 0, 'z'},
	                                     {"squash", no_argument, 0, 'S'},
	                                     {0, 0, 0, 0}};
	static const char *const names[] = {"OLD (the base image or tree)",
	                                    "DELTA (the .cdimg or .dimg to apply)"};
	int r;
	a->c = (struct cli_args){.cmd = "apply", .help = apply_help};
	if ((r = cli_getopt(&a->c, argc, argv, ":o:j:qh", opts, apply_option, a)) ||
	    (r = cli_positionals(&a->c, argc, argv, optind, 2, 2, names, 1)))
		return r;
	a->old = argv[optind];
	a->delta = argv[optind + 1];
	size_t n = strlen(a->c.out);
	a->oci = n >= 4 && !strcmp(a->c.out + n - 4, ".tar");
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
	cli_hash_cache(&a.c);
	return run_apply(&a);
}
