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

#include "cdimg.h"
#include "cli.h"
#include "dimg/image.h"
#include "layers.h"
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
	const char *out, *base, *base_ref, *platform, *cache;
	char **deltas;
	size_t n;
	int json, quiet, raw;
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

static int parse(int argc, char **argv, struct merge_args *a)
{
	static const struct option opts[] = {{"output", required_argument, 0, 'o'},
	                                     {"base", required_argument, 0, 'B'},
	                                     {"base-ref", required_argument, 0, 'R'},
	                                     {"platform", required_argument, 0, 'P'},
	                                     {"cache", required_argument, 0, 'K'},
	                                     {"reencode-ratio", required_argument, 0, 'r'},
	                                     {"level", required_argument, 0, 'l'},
	                                     {"json", no_argument, 0, 'J'},
	                                     {"quiet", no_argument, 0, 'q'},
	                                     {"help", no_argument, 0, 'h'},
	                                     {0, 0, 0, 0}};
	unsigned v;
	int c;
	merge_opts_default(&a->mo);
	while ((c = getopt_long(argc, argv, "o:l:qh", opts, NULL)) != -1) {
		if (c == 'o')
			a->out = optarg;
		else if (c == 'B')
			a->base = optarg;
		else if (c == 'R')
			a->base_ref = optarg;
		else if (c == 'P')
			a->platform = optarg;
		else if (c == 'K')
			a->cache = optarg;
		else if (c == 'r' && parse_ratio(optarg, &a->mo.reencode_ratio) < 0)
			goto bad;
		else if (c == 'l' && cli_parse_uint(optarg, 1, 22, &v) < 0)
			goto bad;
		else if (c == 'l')
			a->mo.level = a->mo.large_level = a->mo.diff.level = (int)v;
		else if (c == 'J')
			a->json = 1;
		else if (c == 'q')
			a->quiet = 1;
		else if (c == 'h') {
			fputs(merge_help, stdout);
			return -1;
		} else if (c != 'r')
			goto usage;
	}
	if (argc - optind < 1 || !a->out)
		goto usage;
	a->deltas = argv + optind;
	a->n = (size_t)(argc - optind);
	size_t n = strlen(a->out);
	a->raw = n >= 5 && !strcmp(a->out + n - 5, ".dimg");
	return 0;
bad:
	fprintf(stderr, "cdimg merge: bad value '%s'\n", optarg);
usage:
	fputs(merge_help, stderr);
	return -2;
}

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

static int open_inputs(const struct merge_args *a, struct inputs *in)
{
	in->c = calloc(a->n, sizeof(*in->c));
	in->rd = calloc(a->n, sizeof(*in->rd));
	in->n = a->n;
	if (!in->c || !in->rd)
		return cli_fail(-ENOMEM, NULL, NULL);
	for (size_t i = 0; i < a->n; i++) {
		int code = cli_open_delta(a->deltas[i], &in->c[i], &in->rd[i]);
		if (code)
			return code;
	}
	if (a->raw || (in->c[0] && in->c[a->n - 1]))
		return 0;
	fprintf(stderr,
	        "cdimg merge: %s is a raw .dimg: a .cdimg output takes the base config from the\n"
	        "first delta and the target config and manifest from the last, so both must be\n"
	        ".cdimg files. Write a raw delta instead: -o NAME.dimg\n",
	        in->c[0] ? a->deltas[a->n - 1] : a->deltas[0]);
	return CLI_USAGE;
}

static int open_base(const struct merge_args *a, struct dimg_image **img)
{
	struct cli_progress p;
	cli_progress_init(&p, a->quiet || a->json);
	struct dimg_image_opts o = {.ref = a->base_ref,
	                            .platform = a->platform,
	                            .cas_dir = a->cache,
	                            .progress = cli_progress_cb,
	                            .pctx = &p};
	char *err = NULL;
	int r = dimg_image_open(img, a->base, &o, &err);
	cli_progress_done(&p);
	if (r >= 0)
		return 0;
	int code = err ? cli_exit_code(r) : cli_fail(r, a->base, NULL);
	if (err)
		fprintf(stderr, "cdimg: %s: %s\n", a->base, err);
	free(err);
	return code;
}

/* Delta i's target tree from its base tree (NULL: none known), or NULL
 * when it cannot be had. */
static struct dimg_tree *merge_next_tree(const struct inputs *in, size_t i,
                                         const struct dimg_tree *base)
{
	struct dimg_tree *t = NULL;
	if (base && dimg_reader_resolve(in->rd[i], base, &t) < 0)
		t = NULL;
	return t;
}

/* acc (recipes of delta i-1's target, tree prev) composed with delta i's
 * (tree cur) into acc. */
static int merge_compose(const struct merge_args *a, const struct cdimg_info *ci, size_t i,
                         struct dimg_buf *acc, const struct dimg_tree *prev,
                         const struct dimg_tree *cur, size_t *lost, char **err)
{
	struct dimg_buf next = {0};
	size_t k = 0, l = 0;
	char *why = NULL;
	int r = layers_compose(acc->data, acc->len, prev, ci->layers, (size_t)ci->layers_size, cur,
	                       a->mo.level, &next, &k, &l, &why);
	if (r == 0) {
		dimg_buf_free(acc);
		*acc = next;
		*lost += l;
	} else {
		if (asprintf(err, "%s: %s", a->deltas[i], why ? why : strerror(-r)) < 0)
			*err = NULL;
		dimg_buf_free(&next);
	}
	free(why);
	return r;
}

/* The merged image's layer recipes, into a temporary file next to the
 * output (*path; NULL when the last delta records none): the last delta's,
 * its layers "as in the base" taken from the earlier deltas' recipes
 * (those with predicted entries read against the intermediate trees,
 * which --base gives). */
static int merged_layers(const struct merge_args *a, const struct inputs *in, char **path,
                         char **err)
{
	struct dimg_buf acc = {0};
	struct dimg_tree *prev = NULL, *cur = NULL;
	size_t lost = 0;
	int r = 0, fd;
	*path = NULL;
	for (size_t i = 0; !r && i < a->n; i++) {
		const struct cdimg_info *ci = in->c[i] ? cdimg_get_info(in->c[i]) : NULL;
		dimg_tree_free(prev);
		prev = cur;
		cur = merge_next_tree(in, i, i ? prev : a->mo.base);
		if (!ci || !ci->layers)
			continue;
		if (!acc.len)
			r = dimg_buf_append(&acc, ci->layers, (size_t)ci->layers_size);
		else
			r = merge_compose(a, ci, i, &acc, prev, cur, &lost, err);
	}
	dimg_tree_free(prev);
	dimg_tree_free(cur);
	if (lost)
		fprintf(stderr,
		        "cdimg merge: warning: %zu layer(s) of the target are recorded against an "
		        "intermediate image's tree; without --base IMAGE, apply gives back one "
		        "squashed layer instead of the original layers\n",
		        lost);
	const struct cdimg_info *last = cdimg_get_info(in->c[a->n - 1]);
	if (r || !last->layers) {
		dimg_buf_free(&acc);
		return r;
	}
	if ((fd = packer_tmpfile(a->out, path)) < 0)
		r = fd;
	else {
		r = dimg_write_fd(&fd, acc.data, acc.len);
		close(fd);
	}
	dimg_buf_free(&acc);
	return r;
}

/* The merged .dimg goes to a temporary file next to the output, wrapped. */
static int write_merged(const struct merge_args *a, const struct inputs *in, struct merge_stats *st,
                        uint64_t *size, char **err)
{
	const char *const *names = (const char *const *)a->deltas;
	if (a->raw)
		return merge_write_dimg(a->out, in->rd, names, a->n, &a->mo, st, err);
	char *tmp = NULL, *lpath = NULL;
	int fd = packer_tmpfile(a->out, &tmp);
	if (fd < 0)
		return fd;
	close(fd);
	int r = merge_write_dimg(tmp, in->rd, names, a->n, &a->mo, st, err);
	if (r == 0)
		r = merged_layers(a, in, &lpath, err);
	if (r == 0) {
		const struct cdimg_info *first = cdimg_get_info(in->c[0]);
		const struct cdimg_info *last = cdimg_get_info(in->c[a->n - 1]);
		struct cdimg_meta m = {.base_config_digest = first->base_config_digest,
		                       .target_config = last->target_config,
		                       .target_config_len = last->target_config_len,
		                       .target_manifest = last->target_manifest,
		                       .target_manifest_len = last->target_manifest_len,
		                       .target_manifest_media_type =
		                           last->target_manifest_media_type,
		                       .target_ref = last->target_ref,
		                       .layers_path = lpath};
		r = packer_cdimg_write(a->out, tmp, &m, size);
	}
	if (lpath)
		unlink(lpath);
	free(lpath);
	unlink(tmp);
	free(tmp);
	return r;
}

static void print_summary(const struct merge_args *a, const struct merge_stats *st, uint64_t size)
{
	char h[32];
	if (a->json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "output", json_object_new_string(a->out));
		json_object_object_add(o, "deltas", json_object_new_int64((int64_t)a->n));
		json_object_object_add(o, "size", json_object_new_int64((int64_t)size));
		json_object_object_add(o, "dimg_size",
		                       json_object_new_int64((int64_t)st->output_size));
		json_object_object_add(o, "entries", json_object_new_int64((int64_t)st->entries));
		json_object_object_add(o, "explicit",
		                       json_object_new_int64((int64_t)st->explicit_));
		json_object_object_add(o, "copied", json_object_new_int64((int64_t)st->copied));
		json_object_object_add(o, "remapped", json_object_new_int64((int64_t)st->remapped));
		json_object_object_add(o, "composed", json_object_new_int64((int64_t)st->composed));
		json_object_object_add(o, "chained", json_object_new_int64((int64_t)st->chained));
		json_object_object_add(o, "dict_blobs",
		                       json_object_new_int64((int64_t)st->dict_blobs));
		json_object_object_add(o, "undict", json_object_new_int64((int64_t)st->undict));
		json_object_object_add(o, "decoded", json_object_new_int64((int64_t)st->decoded));
		json_object_object_add(o, "reencoded",
		                       json_object_new_int64((int64_t)st->reencoded));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
		json_object_put(o);
		return;
	}
	if (a->quiet)
		return;
	printf("%s: %s, %zu deltas merged, %" PRIu64 " entries (%" PRIu64 " stored)\n", a->out,
	       cli_human(size, h, sizeof(h)), a->n, st->entries, st->explicit_);
	printf("  blobs copied %" PRIu64 ", sources moved to v1 %" PRIu64 ", composed %" PRIu64
	       ", chained %" PRIu64 ", applied and stored %" PRIu64 ", re-encoded %" PRIu64 "\n",
	       st->copied, st->remapped, st->composed, st->chained, st->decoded, st->reencoded);
}

static int run_merge(struct merge_args *a)
{
	struct inputs in = {0};
	struct dimg_image *base = NULL;
	struct merge_stats st = {0};
	uint64_t size = 0;
	char *err = NULL;
	int code = open_inputs(a, &in);
	if (!code && a->base && !(code = open_base(a, &base))) {
		a->mo.base = base->tree;
		a->mo.base_files = &base->files;
	}
	if (!code) {
		struct cli_progress p;
		cli_progress_init(&p, a->quiet || a->json);
		a->mo.progress = cli_progress_count_cb;
		a->mo.progress_ctx = &p;
		int r = write_merged(a, &in, &st, &size, &err);
		cli_progress_done(&p);
		if (r < 0 && err) {
			fprintf(stderr, "cdimg merge: %s\n", err);
			code = cli_exit_code(r);
		} else if (r < 0) {
			code = cli_fail(r, a->out, NULL);
		} else {
			print_summary(a, &st, a->raw ? st.output_size : size);
		}
	}
	free(err);
	dimg_image_free(base);
	inputs_free(&in);
	return code;
}

int cmd_merge(int argc, char **argv)
{
	struct merge_args a = {0};
	/* Merging allocates and frees stream buffers of several MiB per file:
	 * keep them in the heap instead of fresh mmaps (page faults and zeroing
	 * were a third of the time on the openssl chain). */
	mallopt(M_MMAP_THRESHOLD, 256 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	int r = parse(argc, argv, &a);
	if (r == -1)
		return CLI_OK;
	if (r < 0)
		return CLI_USAGE;
	return run_merge(&a);
}
