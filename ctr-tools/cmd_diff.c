/* cdimg diff OLD NEW -o OUT: open both images (or trees), plan, encode,
 * write a raw .dimg or wrap it into a .cdimg OCI artifact. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdimg.h"
#include "cli.h"
#include "layers.h"
#include "dimg/image.h"
#include "packer.h"

static const char diff_help[] =
    "usage: cdimg diff [OPTIONS] OLD NEW -o OUT.cdimg|OUT.dimg\n"
    "\n"
    "Compares OLD (the base) and NEW (the target) and writes a delta holding the\n"
    "complete NEW tree: unchanged entries and files equal to any OLD file cost\n"
    "nothing, changed files are stored as the smallest of a bsdiff patch, a zstd\n"
    "patch against the old file, or a zstd copy.\n"
    "\n"
    "OLD and NEW are images (an OCI image layout directory or tar, a `docker save`\n"
    "tar), whose layers are squashed into one tree, or plain directory trees.\n"
    "An output ending in .dimg gets the raw delta; any other name gets a .cdimg:\n"
    "an OCI artifact carrying the delta and NEW's config and manifest, which\n"
    "needs both sides to be images. A .cdimg also records how to rebuild each\n"
    "of NEW's original layer tars byte for byte (layer recipes; contents neither\n"
    "image's tree holds are embedded), so `cdimg apply` can give back the\n"
    "original layers, diff_ids and config digest.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE       the delta to write (written to a temp name, renamed)\n"
    "      --ref NAME          pick NAME from multi-image archives (both sides)\n"
    "      --base-ref NAME     ... from OLD only\n"
    "      --target-ref NAME   ... from NEW only\n"
    "      --platform OS/ARCH  platform to pick from an index (default: this machine)\n"
    "      --cache DIR         content store for the images' files (default: a\n"
    "                          temporary one, removed at exit)\n"
    "  -j, --jobs N            encoder threads (default: one per core); the output\n"
    "                          is byte-identical for any N\n"
    "  -l, --level N           zstd level 1..22 (default 19)\n"
    "      --max-diff-size SZ  files larger than SZ (e.g. 512M) are stored whole\n"
    "                          instead of patched (default 512M; bounds memory)\n"
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
	const char *out, *old, *nw;
	const char *base_ref, *target_ref, *platform, *cache;
	int json, quiet, raw; /* raw: write a .dimg */
	int no_layers, raw_recipes;
	struct packer_opts po;
};

/* The layer recipes a .cdimg got, or why it got none. */
struct diff_layers {
	int recorded;
	struct layers_stats st;
	char *why;
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

static int parse(int argc, char **argv, struct diff_args *a)
{
	static const struct option opts[] = {{"output", required_argument, 0, 'o'},
	                                     {"jobs", required_argument, 0, 'j'},
	                                     {"level", required_argument, 0, 'l'},
	                                     {"max-diff-size", required_argument, 0, 'M'},
	                                     {"codecs", required_argument, 0, 'C'},
	                                     {"no-dict", no_argument, 0, 'D'},
	                                     {"json", no_argument, 0, 'J'},
	                                     {"quiet", no_argument, 0, 'q'},
	                                     {"help", no_argument, 0, 'h'},
	                                     {"ref", required_argument, 0, 'R'},
	                                     {"base-ref", required_argument, 0, 'B'},
	                                     {"target-ref", required_argument, 0, 'T'},
	                                     {"platform", required_argument, 0, 'P'},
	                                     {"cache", required_argument, 0, 'K'},
	                                     {"no-layers", no_argument, 0, 'N'},
	                                     {"recipes", required_argument, 0, 'E'},
	                                     {0, 0, 0, 0}};
	unsigned v;
	int c;
	packer_opts_default(&a->po);
	while ((c = getopt_long(argc, argv, "o:j:l:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			a->out = optarg;
			break;
		case 'j':
			if (cli_parse_uint(optarg, 1, 1024, &a->po.jobs) < 0)
				goto bad;
			break;
		case 'l':
			if (cli_parse_uint(optarg, 1, 22, &v) < 0)
				goto bad;
			a->po.diff.level = (int)v;
			break;
		case 'M':
			if (cli_parse_size(optarg, &a->po.diff.max_diff_size) < 0)
				goto bad;
			break;
		case 'C':
			if (parse_codecs(optarg, &a->po.diff.codecs) < 0)
				goto bad;
			break;
		case 'D':
			a->po.no_dict = 1;
			break;
		case 'J':
			a->json = 1;
			break;
		case 'q':
			a->quiet = 1;
			break;
		case 'R':
			a->base_ref = a->target_ref = optarg;
			break;
		case 'B':
			a->base_ref = optarg;
			break;
		case 'T':
			a->target_ref = optarg;
			break;
		case 'P':
			a->platform = optarg;
			break;
		case 'K':
			a->cache = optarg;
			break;
		case 'N':
			a->no_layers = 1;
			break;
		case 'E':
			if (strcmp(optarg, "raw") && strcmp(optarg, "predicted"))
				goto bad;
			a->raw_recipes = !strcmp(optarg, "raw");
			break;
		case 'h':
			fputs(diff_help, stdout);
			return -1;
		default:
			goto usage;
		}
	}
	if (optind + 2 != argc || !a->out)
		goto usage;
	a->old = argv[optind];
	a->nw = argv[optind + 1];
	size_t n = strlen(a->out);
	a->raw = n >= 5 && !strcmp(a->out + n - 5, ".dimg");
	return 0;
bad:
	fprintf(stderr, "cdimg diff: bad value '%s'\n", optarg);
usage:
	fputs(diff_help, stderr);
	return -2;
}

static struct json_object *layers_json(const struct diff_layers *dl)
{
	struct json_object *o = json_object_new_object();
	const struct layers_stats *st = &dl->st;
	json_object_object_add(o, "recorded", json_object_new_boolean(dl->recorded));
	if (!dl->recorded) {
		json_object_object_add(o, "why", json_object_new_string(dl->why ? dl->why : "?"));
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

static void print_layers(const struct diff_layers *dl)
{
	char h[32], h2[32];
	if (!dl->recorded) {
		printf("  layers: not recorded (%s): apply gives back one squashed layer\n",
		       dl->why ? dl->why : "?");
		return;
	}
	printf("  layers: %zu original layers recorded (%zu as in the base), recipes %s; "
	       "%" PRIu64 " contents embedded (%s)\n",
	       dl->st.layers, dl->st.from_base, cli_human(dl->st.blob_size, h, sizeof(h)),
	       dl->st.inline_files, cli_human(dl->st.inline_bytes, h2, sizeof(h2)));
	if (dl->st.version >= LAYERS_VERSION)
		printf("  layer entries: %" PRIu64 " as their writer predicts, %" PRIu64
		       " patched, %" PRIu64 " as they are\n",
		       dl->st.exact, dl->st.patched, dl->st.raw_entries);
}

/* cdimg_size: 0 for a raw .dimg. */
static void print_summary(const struct diff_args *a, const struct packer_stats *st,
                          uint64_t cdimg_size, const struct diff_layers *dl)
{
	static const char *kinds[] = {"none", "empty", "same", "full", "patch"};
	char h[32], h2[32];
	if (a->json) {
		struct json_object *o = json_object_new_object(), *f = json_object_new_object();
		json_object_object_add(o, "output", json_object_new_string(a->out));
		json_object_object_add(o, "format",
		                       json_object_new_string(a->raw ? "dimg" : "cdimg"));
		json_object_object_add(
		    o, "size",
		    json_object_new_int64((int64_t)(a->raw ? st->output_size : cdimg_size)));
		json_object_object_add(o, "dimg_size",
		                       json_object_new_int64((int64_t)st->output_size));
		json_object_object_add(o, "entries", json_object_new_int64((int64_t)st->entries));
		json_object_object_add(o, "encoded_input_bytes",
		                       json_object_new_int64((int64_t)st->input_bytes));
		for (int k = 1; k < 5; k++) {
			struct json_object *x = json_object_new_object();
			json_object_object_add(x, "files",
			                       json_object_new_int64((int64_t)st->files[k]));
			json_object_object_add(x, "bytes",
			                       json_object_new_int64((int64_t)st->blob_bytes[k]));
			json_object_object_add(f, kinds[k], x);
		}
		json_object_object_add(o, "payloads", f);
		json_object_object_add(o, "patch_bsdiff",
		                       json_object_new_int64((int64_t)st->codec_files[1]));
		json_object_object_add(o, "patch_zstdref",
		                       json_object_new_int64((int64_t)st->codec_files[2]));
		json_object_object_add(o, "patch_gzip",
		                       json_object_new_int64((int64_t)st->codec_files[3]));
		if (!a->raw)
			json_object_object_add(o, "layers", layers_json(dl));
		json_object_object_add(o, "dictionary_size",
		                       json_object_new_int64((int64_t)st->dict_bytes));
		json_object_object_add(o, "dictionary_files",
		                       json_object_new_int64((int64_t)st->dict_files));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
		json_object_put(o);
		return;
	}
	if (a->quiet)
		return;
	if (a->raw)
		printf("%s: %s, %" PRIu64 " entries\n", a->out,
		       cli_human(st->output_size, h, sizeof(h)), st->entries);
	else
		printf("%s: %s (.dimg %s + OCI wrapping %" PRIu64 " B), %" PRIu64 " entries\n",
		       a->out, cli_human(cdimg_size, h, sizeof(h)),
		       cli_human(st->output_size, h2, sizeof(h2)), cdimg_size - st->output_size,
		       st->entries);
	for (int k = 1; k < 5; k++)
		printf("  %-6s %8" PRIu64 " files  %s\n", kinds[k], st->files[k],
		       cli_human(st->blob_bytes[k], h, sizeof(h)));
	printf("  patches: %" PRIu64 " bsdiff, %" PRIu64 " zstdref, %" PRIu64
	       " gzip; %s of changed files encoded\n",
	       st->codec_files[1], st->codec_files[2], st->codec_files[3],
	       cli_human(st->input_bytes, h, sizeof(h)));
	if (!a->raw)
		print_layers(dl);
	if (st->dict_bytes)
		printf("  dictionary: %s, used by %" PRIu64 " full files\n",
		       cli_human(st->dict_bytes, h, sizeof(h)), st->dict_files);
}

static int open_image(struct dimg_image **out, const char *path, const char *ref,
                      const struct diff_args *a, int record, struct cli_progress *p)
{
	struct dimg_image_opts o = {.ref = ref,
	                            .record_layers = record,
	                            .platform = a->platform,
	                            .cas_dir = a->cache,
	                            .jobs = a->po.jobs,
	                            .progress = cli_progress_cb,
	                            .pctx = p};
	char *err = NULL;
	int r = dimg_image_open(out, path, &o, &err);
	cli_progress_done(p);
	if (r < 0) {
		int code = err ? cli_exit_code(r) : cli_fail(r, path, NULL);
		if (err)
			fprintf(stderr, "cdimg: %s: %s\n", path, err);
		free(err);
		return code;
	}
	return 0;
}

/* A .cdimg names both images: refuse plain trees before any work. */
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

/* The layer recipes into a temporary file next to the output; none (and
 * dl->why) when a layer cannot be recorded. *path is NULL then. */
static int write_layers(const struct diff_args *a, const struct dimg_image *base,
                        const struct dimg_image *target, struct diff_layers *dl, char **path)
{
	*path = NULL;
	if (a->no_layers) {
		dl->why = strdup("--no-layers");
		return 0;
	}
	int fd = packer_tmpfile(a->out, path);
	if (fd < 0)
		return fd;
	int r = layers_build(fd, target, base, a->po.diff.level, a->raw_recipes, &dl->st, &dl->why);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && dl->st.unchecked)
		fprintf(stderr,
		        "cdimg diff: warning: %zu layer(s) recorded as they are: their predicted "
		        "entries did not give them back (a bug: please report it)\n",
		        dl->st.unchecked);
	if (r == 0) {
		dl->recorded = 1;
		return 0;
	}
	unlink(*path);
	free(*path);
	*path = NULL;
	if (r != -ENOTSUP)
		return r;
	if (!a->json && !a->quiet)
		fprintf(stderr, "cdimg diff: warning: layer recipes not recorded: %s\n",
		        dl->why ? dl->why : "?");
	return 0;
}

/* Encodes into a temporary .dimg next to the output, then wraps it. */
static int write_cdimg(const struct diff_args *a, const struct dimg_image *base,
                       const struct dimg_files *bf, const struct dimg_image *target,
                       struct dimg_tree *plan, struct packer_stats *st, uint64_t *size, char **bad,
                       struct diff_layers *dl)
{
	char *tmp = NULL, *ltmp = NULL;
	int fd = packer_tmpfile(a->out, &tmp);
	if (fd < 0)
		return fd;
	close(fd);
	int r = packer_write_dimg(tmp, base->tree, bf, plan, &target->files, &a->po, st, bad);
	if (r == 0)
		r = write_layers(a, base, target, dl, &ltmp);
	if (r == 0) {
		struct cdimg_meta m = {.base_config_digest = base->config_digest,
		                       .target_config = target->config,
		                       .target_config_len = target->config_len,
		                       .target_manifest = target->manifest,
		                       .target_manifest_len = target->manifest_len,
		                       .target_manifest_media_type = target->manifest_media_type,
		                       .target_ref = target->ref,
		                       .layers_path = ltmp};
		r = packer_cdimg_write(a->out, tmp, &m, size);
	}
	if (ltmp)
		unlink(ltmp);
	free(ltmp);
	unlink(tmp);
	free(tmp);
	return r;
}

static int run_diff(struct diff_args *a)
{
	struct dimg_image *base = NULL, *target = NULL;
	struct dimg_tree *plan = NULL;
	struct packer_stats st;
	struct cli_progress p;
	struct diff_layers dl = {0};
	uint64_t cdimg_size = 0;
	char *bad = NULL;
	int r, code;
	cli_progress_init(&p, a->quiet || a->json);
	a->po.progress = cli_progress_cb;
	a->po.pctx = &p;
	if ((code = open_image(&base, a->old, a->base_ref, a, 0, &p)) ||
	    (code = open_image(&target, a->nw, a->target_ref, a, !a->raw && !a->no_layers, &p)) ||
	    (!a->raw && (code = check_images(a, base, target))))
		goto out;
	if ((r = differ_plan(base->tree, target->tree, &plan)) < 0) {
		code = cli_fail(r, "planning", NULL);
		goto out;
	}
	if (a->raw)
		r = packer_write_dimg(a->out, base->tree, &base->files, plan, &target->files,
		                      &a->po, &st, &bad);
	else
		r = write_cdimg(a, base, &base->files, target, plan, &st, &cdimg_size, &bad, &dl);
	cli_progress_done(&p);
	if (r < 0) {
		code = cli_fail(r, a->out, bad);
		goto out;
	}
	print_summary(a, &st, cdimg_size, &dl);
	code = CLI_OK;
out:
	free(bad);
	free(dl.why);
	dimg_image_free(base);
	dimg_image_free(target);
	dimg_tree_free(plan);
	return code;
}

int cmd_diff(int argc, char **argv)
{
	struct diff_args a = {0};
	int r = parse(argc, argv, &a);
	if (r == -1)
		return CLI_OK;
	if (r < 0)
		return CLI_USAGE;
	return run_diff(&a);
}
