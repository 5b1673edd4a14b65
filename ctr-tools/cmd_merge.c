/* cdimg merge D1 D2 [...] -o OUT: compose a chain of deltas v1->v2->...->vN
 * into one delta v1->vN without the images (packer/merge.h). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "merge.h"
#include "packer.h"

static const char merge_help[] =
    "usage: cdimg merge [OPTIONS] DELTA1 [DELTA2...] -o OUT.cdimg|OUT.dimg\n"
    "\n"
    "Composes a chain of deltas (DELTA1: v1->v2, DELTA2: v2->v3, ...) into one\n"
    "delta v1->vN, without any image: unchanged entries stay runs, files the\n"
    "chain only renamed or copied stay references to v1, bsdiff patches over\n"
    "patched files are composed into one patch, and so are gzip-recompress\n"
    "patches whose inner patches compose; patches over stored files are applied\n"
    "and the result stored. Patches that do not compose (zstdref ones, mixed\n"
    "codecs) are kept one after the other as a chain patch (codec 4) that\n"
    "applies them in turn. Each delta's base tree must be the previous one's\n"
    "target tree. Applying the result to v1 gives exactly what applying the\n"
    "chain gives (same bytes, same metadata). One delta alone is rewritten.\n"
    "\n"
    "DELTAs are .cdimg or .dimg files. A .cdimg output takes the base config\n"
    "digest from DELTA1 and the target config and manifest from the last delta,\n"
    "so both must be .cdimg; an output ending in .dimg gets the raw delta. It\n"
    "carries the last delta's layer recipes, its layers taken from the base\n"
    "replaced by the earlier deltas' recipes of them (docs/merge.md).\n"
    "\n"
    "With --base (v1's image or tree), files left as a chain patch, composed\n"
    "patches larger than --reencode-ratio times the chain's last patch of that\n"
    "file, and files the chain stored whole are re-encoded against v1 with the\n"
    "differ's codecs, and the smaller encoding kept.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE        the merged delta (written to a temp name, renamed)\n"
    "      --force              replace FILE if it exists (never an input)\n"
    "      --base IMAGE|DIR     DELTA1's base image or tree (optional)\n"
    "      --base-ref NAME      pick NAME from a multi-image --base archive\n"
    "      --platform OS/ARCH   platform to pick from an index\n"
    "      --cache DIR          content store for --base's files\n"
    "      --reencode-ratio R   with --base: re-encode composed patches larger than\n"
    "                           R x the last patch (default 2.0)\n"
    "  -l, --level N            zstd level 1..22 of rewritten blobs (default: 12,\n"
    "                           and 9 for files of 1 MiB or more: the streams of\n"
    "                           composed patches gain little from slow levels);\n"
    "                           an explicit level applies to all files\n"
    "      --json               print the summary as JSON on stdout\n"
    "  -q, --quiet              no summary\n"
    "  -h, --help               this text\n";

struct merge_args {
	struct cli_args c;
	const char *base;
	char **deltas;
	size_t n;
	struct merge_opts mo;
};

static int parse_ratio(const char *s, double *out)
{
	char *end = NULL;
	double v = strtod(s, &end);
	if (!end || *end || !(v > 0) || v > 1000)
		return -1;
	*out = v;
	return 0;
}

static int merge_option(void *ctx, int c, const char *arg)
{
	struct merge_args *a = ctx;
	if (c == 'B')
		a->base = arg;
	else if (c != 'r')
		return -2;
	else if (parse_ratio(arg, &a->mo.reencode_ratio) < 0)
		return cli_bad_value(&a->c, "--reencode-ratio", arg,
		                     "is not a number over 0 and at most 1000");
	return 0;
}

static int parse(int argc, char **argv, struct merge_args *a)
{
	static const struct option opts[] = {CLI_OPTION_OUTPUT,
	                                     CLI_OPTION_FORCE,
	                                     CLI_OPTION_LEVEL,
	                                     CLI_OPTION_JSON,
	                                     CLI_OPTION_QUIET,
	                                     CLI_OPTION_HELP,
	                                     CLI_OPTION_BASE_REF,
	                                     CLI_OPTION_PLATFORM,
	                                     CLI_OPTION_CACHE,
	                                     {"base", required_argument, 0, 'B'},
	                                     {"reencode-ratio", required_argument, 0, 'r'},
	                                     {0, 0, 0, 0}};
	static const char *const names[] = {"DELTA (the first of the chain)"};
	int r;
	a->c = (struct cli_args){.cmd = "merge", .help = merge_help};
	merge_opts_default(&a->mo);
	if ((r = cli_getopt(&a->c, argc, argv, ":o:l:qh", opts, merge_option, a)) ||
	    (r = cli_positionals(&a->c, argc, argv, optind, 1, argc, names, 1)))
		return r;
	if (a->c.level)
		a->mo.level = a->mo.large_level = a->mo.diff.level = a->c.level;
	a->deltas = argv + optind;
	a->n = (size_t)(argc - optind);
	return 0;
}

static int open_base(const struct merge_args *a, struct dimg_image **img)
{
	struct dimg_image_opts o;
	cli_image_opts(&a->c, 0, &o);
	return cli_open_image(img, a->base, &o, a->c.quiet || a->c.json);
}

static void print_json(const char *out, size_t n, const struct merge_result *res)
{
	const struct merge_stats *st = &res->st;
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "output", json_object_new_string(out));
	json_object_object_add(o, "deltas", json_object_new_int64((int64_t)n));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)res->size));
	json_object_object_add(o, "dimg_size", json_object_new_int64((int64_t)st->output_size));
	cli_counts_json(o, &st->counts);
	json_object_object_add(o, "copied", json_object_new_int64((int64_t)st->copied));
	json_object_object_add(o, "remapped", json_object_new_int64((int64_t)st->remapped));
	json_object_object_add(o, "composed", json_object_new_int64((int64_t)st->composed));
	json_object_object_add(o, "undict", json_object_new_int64((int64_t)st->undict));
	json_object_object_add(o, "decoded", json_object_new_int64((int64_t)st->decoded));
	json_object_object_add(o, "reencoded", json_object_new_int64((int64_t)st->reencoded));
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	json_object_put(o);
}

static void print_summary(const char *out, size_t n, int json, int quiet,
                          const struct merge_result *res)
{
	const struct merge_stats *st = &res->st;
	char h[32];
	if (json)
		return print_json(out, n, res);
	if (quiet)
		return;
	printf("%s: %s, %zu deltas merged\n", out, cli_human(res->size, h, sizeof(h)), n);
	cli_counts_print(&st->counts);
	printf("  blobs copied %" PRIu64 ", sources moved to v1 %" PRIu64 ", composed %" PRIu64
	       ", applied and stored %" PRIu64 ", re-encoded %" PRIu64 "\n",
	       st->copied, st->remapped, st->composed, st->decoded, st->reencoded);
}

int cli_merge(const char *out, const char *const *paths, size_t n, struct merge_opts *mo, int force,
              int json, int quiet)
{
	struct merge_result res;
	struct dimg_err err = {0};
	struct cli_progress p;
	size_t len = strlen(out);
	int raw = len >= 5 && !strcmp(out + len - 5, ".dimg");
	/* Merging allocates and frees stream buffers of several MiB per file:
	 * keep them in the heap instead of fresh mmaps (page faults and zeroing
	 * were a third of the time on the openssl chain). */
	mallopt(M_MMAP_THRESHOLD, 256 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	cli_progress_init(&p, quiet || json);
	mo->out_flags = force ? PACKER_REPLACE : 0;
	mo->progress = cli_progress_count_cb;
	mo->progress_ctx = &p;
	int r = merge_write(out, paths, n, raw, mo, &res, &err);
	cli_progress_done(&p);
	if (r < 0) { /* -EINVAL: the inputs cannot make that output */
		int code = cli_report(r, &err, out);
		return r == -EINVAL ? CLI_USAGE : code;
	}
	if (res.layers_lost)
		fprintf(stderr,
		        "cdimg merge: warning: %zu layer(s) of the target are recorded against an "
		        "intermediate image's tree; without --base IMAGE, apply gives back one "
		        "squashed layer instead of the original layers\n",
		        res.layers_lost);
	print_summary(out, n, json, quiet, &res);
	return CLI_OK;
}

static int run_merge(struct merge_args *a)
{
	struct dimg_image *base = NULL;
	const char **inputs = calloc(a->n + 1, sizeof(*inputs));
	int code = inputs ? 0 : cli_fail(-ENOMEM, NULL, NULL);
	for (size_t i = 0; inputs && i <= a->n; i++)
		inputs[i] = i < a->n ? a->deltas[i] : a->base;
	if (!code)
		code = cli_check_output(&a->c, inputs, a->n + 1);
	if (!code && a->base)
		code = open_base(a, &base);
	free(inputs);
	a->mo.base_image = base;
	if (!code)
		code = cli_merge(a->c.out, (const char *const *)a->deltas, a->n, &a->mo, a->c.force,
		                 a->c.json, a->c.quiet);
	dimg_image_free(base);
	return code;
}

int cmd_merge(int argc, char **argv)
{
	struct merge_args a = {0};
	int r = parse(argc, argv, &a);
	if (r == -1)
		return CLI_OK;
	if (r)
		return r;
	return run_merge(&a);
}
