/* cdimg diff OLD NEW -o OUT.dimg: walk both trees, plan, encode, write. */
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "packer.h"

static const char diff_help[] =
	"usage: cdimg diff [OPTIONS] OLD NEW -o OUT.dimg\n"
	"\n"
	"Compares the directory trees OLD (the base) and NEW (the target) and writes\n"
	"a .dimg delta holding the complete NEW tree: unchanged entries and files\n"
	"equal to any OLD file cost nothing, changed files are stored as the smallest\n"
	"of a bsdiff patch, a zstd patch against the old file, or a zstd copy.\n"
	"\n"
	"options:\n"
	"  -o, --output FILE       the delta to write (written to a temp name, renamed)\n"
	"  -j, --jobs N            encoder threads (default: one per core); the output\n"
	"                          is byte-identical for any N\n"
	"  -l, --level N           zstd level 1..22 (default 19)\n"
	"      --max-diff-size SZ  files larger than SZ (e.g. 512M) are stored whole\n"
	"                          instead of patched (default 512M; bounds memory)\n"
	"      --codecs LIST       patch codecs to try: bsdiff,zstdref (default both)\n"
	"      --json              print the summary as JSON on stdout\n"
	"  -q, --quiet             no progress, no summary\n"
	"  -h, --help              this text\n";

struct diff_args {
	const char *out, *old, *nw;
	int json, quiet;
	struct packer_opts po;
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
	static const struct option opts[] = {
		{"output", required_argument, 0, 'o'}, {"jobs", required_argument, 0, 'j'},
		{"level", required_argument, 0, 'l'},  {"max-diff-size", required_argument, 0, 'M'},
		{"codecs", required_argument, 0, 'C'}, {"json", no_argument, 0, 'J'},
		{"quiet", no_argument, 0, 'q'},        {"help", no_argument, 0, 'h'},
		{0, 0, 0, 0}};
	unsigned v;
	int c;
	packer_opts_default(&a->po);
	while ((c = getopt_long(argc, argv, "o:j:l:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'o': a->out = optarg; break;
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
		case 'J': a->json = 1; break;
		case 'q': a->quiet = 1; break;
		case 'h': fputs(diff_help, stdout); return -1;
		default: goto usage;
		}
	}
	if (optind + 2 != argc || !a->out)
		goto usage;
	a->old = argv[optind];
	a->nw = argv[optind + 1];
	return 0;
bad:
	fprintf(stderr, "cdimg diff: bad value '%s'\n", optarg);
usage:
	fputs(diff_help, stderr);
	return -2;
}

static void print_summary(const struct diff_args *a, const struct packer_stats *st)
{
	static const char *kinds[] = {"none", "empty", "same", "full", "patch"};
	char h[32];
	if (a->json) {
		struct json_object *o = json_object_new_object(), *f = json_object_new_object();
		json_object_object_add(o, "output", json_object_new_string(a->out));
		json_object_object_add(o, "size", json_object_new_int64((int64_t)st->output_size));
		json_object_object_add(o, "entries", json_object_new_int64((int64_t)st->entries));
		json_object_object_add(o, "encoded_input_bytes",
				       json_object_new_int64((int64_t)st->input_bytes));
		for (int k = 1; k < 5; k++) {
			struct json_object *x = json_object_new_object();
			json_object_object_add(x, "files", json_object_new_int64((int64_t)st->files[k]));
			json_object_object_add(x, "bytes",
					       json_object_new_int64((int64_t)st->blob_bytes[k]));
			json_object_object_add(f, kinds[k], x);
		}
		json_object_object_add(o, "payloads", f);
		json_object_object_add(o, "patch_bsdiff", json_object_new_int64((int64_t)st->codec_files[1]));
		json_object_object_add(o, "patch_zstdref", json_object_new_int64((int64_t)st->codec_files[2]));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
		json_object_put(o);
		return;
	}
	if (a->quiet)
		return;
	printf("%s: %s, %" PRIu64 " entries\n", a->out, cli_human(st->output_size, h, sizeof(h)),
	       st->entries);
	for (int k = 1; k < 5; k++)
		printf("  %-6s %8" PRIu64 " files  %s\n", kinds[k], st->files[k],
		       cli_human(st->blob_bytes[k], h, sizeof(h)));
	printf("  patches: %" PRIu64 " bsdiff, %" PRIu64 " zstdref; %s of changed files encoded\n",
	       st->codec_files[1], st->codec_files[2], cli_human(st->input_bytes, h, sizeof(h)));
}

static int run_diff(struct diff_args *a)
{
	struct dimg_tree *base = NULL, *target = NULL, *plan = NULL;
	struct dimg_files bf = {0}, tf = {0};
	struct packer_stats st;
	struct cli_progress p;
	char *bad = NULL;
	int r, code;
	cli_progress_init(&p, a->quiet || a->json);
	a->po.progress = cli_progress_cb;
	a->po.pctx = &p;
	if ((code = cli_walk(&base, a->old, a->po.jobs, &p)) ||
	    (code = cli_walk(&target, a->nw, a->po.jobs, &p)))
		goto out;
	if ((r = dimg_dir_files_open(&bf, a->old)) < 0 || (r = dimg_dir_files_open(&tf, a->nw)) < 0) {
		code = cli_fail(r, "opening trees", NULL);
		goto out;
	}
	if ((r = differ_plan(base, target, &plan)) < 0) {
		code = cli_fail(r, "planning", NULL);
		goto out;
	}
	r = packer_write_dimg(a->out, base, &bf, plan, &tf, &a->po, &st, &bad);
	cli_progress_done(&p);
	if (r < 0) {
		code = cli_fail(r, a->out, bad);
		goto out;
	}
	print_summary(a, &st);
	code = CLI_OK;
out:
	free(bad);
	dimg_dir_files_close(&bf);
	dimg_dir_files_close(&tf);
	dimg_tree_free(base);
	dimg_tree_free(target);
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
