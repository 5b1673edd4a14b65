/* cdimg diff OLD NEW -o OUT: open both images (or trees), plan, encode,
 * write a raw .dimg or wrap it into a .cdimg OCI artifact. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "diff.h"

static const char diff_help[] =
    "usage: cdimg diff [OPTIONS] OLD NEW -o OUT.cdimg|OUT.dimg\n"
    "\n"
    "Compares OLD (the base) and NEW (the target) and writes a delta holding the\n"
    "complete NEW tree: unchanged entries and files equal to any OLD file cost\n"
    "nothing, changed files are stored as the smallest of a bsdiff patch, a zstd\n"
    "patch against the old file, or a zstd copy.\n"
    "\n"
    "OLD and NEW are images (an OCI image layout directory or tar, a `docker save`\n"
    "tar, or a name as `cdimg copy` takes them: oci:DIR[:REF], oci-archive:,\n"
    "docker-archive:, containerd:NAME[:TAG] at $CONTAINERD_ADDRESS in namespace\n"
    "$CONTAINERD_NAMESPACE, docker://), whose layers are squashed into one tree,\n"
    "or plain directory trees.\n"
    "An output ending in .dimg gets the raw delta; any other name gets a .cdimg:\n"
    "an OCI artifact carrying the delta and NEW's config and manifest, which\n"
    "needs both sides to be images. A .cdimg also records how to rebuild each\n"
    "of NEW's original layer tars byte for byte (layer recipes; contents neither\n"
    "image's tree holds are embedded), so `cdimg apply` can give back the\n"
    "original layers, diff_ids and config digest.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE       the delta to write (written to a temp name, renamed)\n"
    "      --force             replace FILE if it exists (never OLD or NEW)\n"
    "      --ref NAME          pick NAME from multi-image archives (both sides)\n"
    "      --base-ref NAME     ... from OLD only\n"
    "      --target-ref NAME   ... from NEW only\n"
    "      --platform OS/ARCH  platform to pick from an index (default: this machine)\n"
    "      --cache DIR         content store for the images' files (default: a\n"
    "                          temporary one, removed at exit)\n"
    "      --hash-cache DIR    directory trees: SHA-256s of their files kept by\n"
    "                          device, inode, size, mtime and ctime, so files\n"
    "                          unchanged since an earlier diff or apply are not\n"
    "                          read again (default $XDG_CACHE_HOME/di3fs/hashes\n"
    "                          or ~/.cache/di3fs/hashes; none: read all; used\n"
    "                          on ext4, xfs, btrfs, tmpfs and f2fs only)\n"
    "  -j, --jobs N            encoder threads (default: one per core); the output\n"
    "                          is byte-identical for any N\n"
    "  -l, --level N           zstd level 1..22 (default 19)\n"
    "      --max-diff-size SZ  files larger than SZ (e.g. 512M) are stored whole\n"
    "                          instead of patched (default 512M; bounds memory)\n"
    "      --zstdref-window SZ zstdref (zstd with the old file as its window) is\n"
    "                          tried while old + new fit SZ (default 1G): applying\n"
    "                          such a patch holds up to the new file in memory\n"
    "      --codecs LIST       patch codecs to try: bsdiff,zstdref,gzip (default all;\n"
    "                          gzip: a gzip file zlib recreates exactly is patched\n"
    "                          as its decompressed content and recompressed, with\n"
    "                          the byte codecs listed; bsdiff,gzip makes deltas\n"
    "                          that cdimg merge composes without any image)\n"
    "      --no-layers         do not record layer recipes (apply then gives back\n"
    "                          one squashed layer)\n"
    "      --recipes MODE      predicted (default): each layer entry's tar headers\n"
    "                          recorded as what its writer (GNU tar, Go, Python)\n"
    "                          makes of the tree entry, and how they differ; raw:\n"
    "                          the headers as they are (larger; for measuring, or\n"
    "                          for readers of recipes version 1)\n"
    "      --no-dict           no shared zstd dictionary for small new files (by\n"
    "                          default one is trained on the files up to 64 KiB\n"
    "                          stored whole, and kept when it makes the delta smaller)\n"
    "      --json              print the summary as JSON on stdout\n"
    "  -q, --quiet             no progress, no summary\n"
    "  -h, --help              this text\n";

struct diff_args {
	struct cli_args c;
	const char *old, *nw;
	struct cdimg_diff_opts d;
};

static int parse_codecs(const char *s, unsigned *mask)
{
	char *copy = strdup(s), *save = NULL;
	*mask = 0;
	if (!copy)
		return -1;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strcmp(t, "bsdiff"))
			*mask |= DIFFER_CODEC_BSDIFF;
		else if (!strcmp(t, "zstdref"))
			*mask |= DIFFER_CODEC_ZSTDREF;
		else if (!strcmp(t, "gzip"))
			*mask |= DIFFER_CODEC_GZIP;
		else if (strcmp(t, "none") != 0) {
			free(copy);
			return -1;
		}
	}
	free(copy);
	return 0;
}

/* The diff's own options; -1 for a bad value (said). */
static int diff_option(void *ctx, int c, const char *arg)
{
	struct diff_args *a = ctx;
	switch (c) {
	case 'M':
		return cli_parse_size(arg, &a->d.po.diff.max_diff_size) < 0
		           ? cli_bad_value(&a->c, "--max-diff-size", arg,
		                           "is not a size (a number, K, M or G after it)")
		           : 0;
	case 'W':
		return cli_parse_size(arg, &a->d.po.diff.max_zstdref_window) < 0
		           ? cli_bad_value(&a->c, "--zstdref-window", arg,
		                           "is not a size (a number, K, M or G after it)")
		           : 0;
	case 'C':
		return parse_codecs(arg, &a->d.po.diff.codecs) < 0
		           ? cli_bad_value(&a->c, "--codecs", arg,
		                           "is not a list of bsdiff, zstdref, gzip or none")
		           : 0;
	case 'D':
		a->d.po.no_dict = 1;
		return 0;
	case 'R':
		a->c.base_ref = a->c.target_ref = arg;
		return 0;
	case 'N':
		a->d.no_layers = 1;
		return 0;
	case 'E':
		if (strcmp(arg, "raw") && strcmp(arg, "predicted"))
			return cli_bad_value(&a->c, "--recipes", arg, "is not predicted or raw");
		a->d.raw_recipes = !strcmp(arg, "raw");
		return 0;
	default:
		return -2;
	}
}

static int parse(int argc, char **argv, struct diff_args *a)
{
	static const struct option opts[] = {CLI_OPTION_OUTPUT,
	                                     CLI_OPTION_FORCE,
	                                     CLI_OPTION_JOBS,
	                                     CLI_OPTION_LEVEL,
	                                     CLI_OPTION_JSON,
	                                     CLI_OPTION_QUIET,
	                                     CLI_OPTION_HELP,
	                                     CLI_OPTION_BASE_REF,
	                                     CLI_OPTION_TARGET_REF,
	                                     CLI_OPTION_PLATFORM,
	                                     CLI_OPTION_CACHE,
	                                     CLI_OPTION_HASH_CACHE,
	                                     {"ref", required_argument, 0, 'R'},
	                                     {"max-diff-size", required_argument, 0, 'M'},
	                                     {"codecs", required_argument, 0, 'C'},
	                                     {"no-dict", no_argument, 0, 'D'},
	                                     {"no-layers", no_argument, 0, 'N'},
	                                     {"zstdref-window", required_argument, 0, 'W'},
	                                     {"recipes", required_argument, 0, 'E'},
	                                     {0, 0, 0, 0}};
	static const char *const names[] = {"OLD (the base image or tree)",
	                                    "NEW (the target image or tree)"};
	int r;
	a->c = (struct cli_args){.cmd = "diff", .help = diff_help};
	cdimg_diff_opts_default(&a->d);
	if ((r = cli_getopt(&a->c, argc, argv, ":o:j:l:qh", opts, diff_option, a)) ||
	    (r = cli_positionals(&a->c, argc, argv, optind, 2, 2, names, 1)))
		return r;
	a->old = argv[optind];
	a->nw = argv[optind + 1];
	a->d.po.jobs = a->c.jobs;
	if (a->c.level)
		a->d.po.diff.level = a->c.level;
	size_t n = strlen(a->c.out);
	a->d.raw = n >= 5 && !strcmp(a->c.out + n - 5, ".dimg");
	return 0;
}

static struct json_object *layers_json(const struct cdimg_diff_result *res)
{
	struct json_object *o = json_object_new_object();
	const struct layers_stats *st = &res->layers;
	json_object_object_add(o, "recorded", json_object_new_boolean(res->layers_recorded));
	if (!res->layers_recorded) {
		json_object_object_add(o, "why", json_object_new_string(res->layers_why));
		return o;
	}
	json_object_object_add(o, "layers", json_object_new_int64((int64_t)st->layers));
	json_object_object_add(o, "from_base", json_object_new_int64((int64_t)st->from_base));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)st->blob_size));
	json_object_object_add(o, "raw_bytes", json_object_new_int64((int64_t)st->raw_bytes));
	json_object_object_add(o, "refs", json_object_new_int64((int64_t)st->refs));
	json_object_object_add(o, "inline_files", json_object_new_int64((int64_t)st->inline_files));
	json_object_object_add(o, "inline_bytes", json_object_new_int64((int64_t)st->inline_bytes));
	json_object_object_add(o, "version", json_object_new_int64((int64_t)st->version));
	json_object_object_add(o, "entries", json_object_new_int64((int64_t)st->entries));
	json_object_object_add(o, "entries_exact", json_object_new_int64((int64_t)st->exact));
	json_object_object_add(o, "entries_patched", json_object_new_int64((int64_t)st->patched));
	json_object_object_add(o, "entries_raw", json_object_new_int64((int64_t)st->raw_entries));
	json_object_object_add(o, "layers_unchecked",
	                       json_object_new_int64((int64_t)st->unchecked));
	return o;
}

static void print_layers(const struct cdimg_diff_result *res)
{
	char h[32], h2[32];
	if (!res->layers_recorded) {
		printf("  layers: not recorded (%s): apply gives back one squashed layer\n",
		       res->layers_why);
		return;
	}
	printf("  layers: %zu original layers recorded (%zu as in the base), recipes %s; "
	       "%" PRIu64 " contents embedded (%s)\n",
	       res->layers.layers, res->layers.from_base,
	       cli_human(res->layers.blob_size, h, sizeof(h)), res->layers.inline_files,
	       cli_human(res->layers.inline_bytes, h2, sizeof(h2)));
	if (res->layers.version >= LAYERS_VERSION)
		printf("  layer entries: %" PRIu64 " as their writer predicts, %" PRIu64
		       " patched, %" PRIu64 " as they are\n",
		       res->layers.exact, res->layers.patched, res->layers.raw_entries);
}

static void print_json(const struct diff_args *a, const struct cdimg_diff_result *res)
{
	const struct packer_stats *st = &res->st;
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "output", json_object_new_string(a->c.out));
	json_object_object_add(o, "format", json_object_new_string(a->d.raw ? "dimg" : "cdimg"));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)res->size));
	json_object_object_add(o, "dimg_size", json_object_new_int64((int64_t)st->output_size));
	cli_counts_json(o, &res->counts);
	json_object_object_add(o, "encoded_input_bytes",
	                       json_object_new_int64((int64_t)st->input_bytes));
	if (!a->d.raw)
		json_object_object_add(o, "layers", layers_json(res));
	json_object_object_add(o, "dictionary_size",
	                       json_object_new_int64((int64_t)st->dict_bytes));
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	json_object_put(o);
}

static void print_summary(const struct diff_args *a, const struct cdimg_diff_result *res)
{
	const struct packer_stats *st = &res->st;
	char h[32], h2[32];
	if (a->c.json)
		return print_json(a, res);
	if (a->c.quiet)
		return;
	if (a->d.raw)
		printf("%s: %s\n", a->c.out, cli_human(st->output_size, h, sizeof(h)));
	else
		printf("%s: %s (.dimg %s + OCI wrapping %" PRIu64 " B)\n", a->c.out,
		       cli_human(res->size, h, sizeof(h)),
		       cli_human(st->output_size, h2, sizeof(h2)), res->size - st->output_size);
	cli_counts_print(&res->counts);
	printf("  %s of changed files encoded\n", cli_human(st->input_bytes, h, sizeof(h)));
	if (!a->d.raw)
		print_layers(res);
	if (st->dict_bytes)
		printf("  dictionary: %s, used by %" PRIu64 " full files\n",
		       cli_human(st->dict_bytes, h, sizeof(h)), res->counts.dict_files);
}

static int open_image(struct dimg_image **out, const struct diff_args *a, int target)
{
	struct dimg_image_opts o;
	cli_image_opts(&a->c, target, &o);
	o.record_layers = target && !a->d.raw && !a->d.no_layers;
	return cli_open_image(out, target ? a->nw : a->old, &o, a->c.quiet || a->c.json);
}

/* A .cdimg names both images: plain trees are refused before any work,
 * with what to write instead. */
static int check_images(const struct diff_args *a, const struct dimg_image *base,
                        const struct dimg_image *target)
{
	const char *which = !target->config || !target->manifest ? a->nw
	                    : !base->config                      ? a->old
	                                                         : NULL;
	if (!which)
		return 0;
	fprintf(stderr,
	        "cdimg diff: %s is a plain directory tree, not an image: a .cdimg records both\n"
	        "images' configs (and the target's manifest). Write a raw delta instead:\n"
	        "  cdimg diff %s %s -o NAME.dimg\n",
	        which, a->old, a->nw);
	return CLI_USAGE;
}

static int run_diff(struct diff_args *a)
{
	struct dimg_image *base = NULL, *target = NULL;
	struct cdimg_diff_result res;
	struct dimg_err err = {0};
	struct cli_progress p;
	int code;
	const char *inputs[] = {a->old, a->nw};
	if ((code = cli_check_output(&a->c, inputs, 2)))
		return code;
	cli_progress_init(&p, a->c.quiet || a->c.json);
	a->d.po.out_flags = a->c.force ? PACKER_REPLACE : 0;
	a->d.po.progress = cli_progress_cb;
	a->d.po.pctx = &p;
	if ((code = open_image(&base, a, 0)) || (code = open_image(&target, a, 1)) ||
	    (!a->d.raw && (code = check_images(a, base, target))))
		goto out;
	int r = cdimg_write_diff(a->c.out, base, target, &a->d, &res, &err);
	cli_progress_done(&p);
	if (r < 0) {
		code = cli_report(r, &err, a->c.out);
		goto out;
	}
	if (!a->d.raw && !a->d.no_layers && !res.layers_recorded && !a->c.json && !a->c.quiet)
		fprintf(stderr, "cdimg diff: warning: layer recipes not recorded: %s\n",
		        res.layers_why);
	if (res.layers_recorded && res.layers.unchecked)
		fprintf(stderr,
		        "cdimg diff: warning: %zu layer(s) recorded as they are: their predicted "
		        "entries did not give them back (a bug: please report it)\n",
		        res.layers.unchecked);
	print_summary(a, &res);
	code = CLI_OK;
out:
	dimg_image_free(base);
	dimg_image_free(target);
	return code;
}

int cmd_diff(int argc, char **argv)
{
	struct diff_args a = {0};
	int r = parse(argc, argv, &a);
	if (r == -1)
		return CLI_OK;
	if (r)
		return r;
	cli_hash_cache(&a.c);
	return run_diff(&a);
}
