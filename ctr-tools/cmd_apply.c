/* cdimg apply OLD IN.dimg -o NEWDIR: rebuild the target tree, verified. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dimg/dimg.h"
#include "dimg/write.h"

static const char apply_help[] =
	"usage: cdimg apply [OPTIONS] OLD IN.dimg -o NEWDIR\n"
	"\n"
	"Rebuilds the target tree of the delta IN.dimg from the base tree OLD into\n"
	"NEWDIR (which must not exist): every file's content, mode (setuid, setgid,\n"
	"sticky), owner, mtime, xattrs, hardlinks, symlinks, devices and fifos.\n"
	"OLD must be the exact tree the delta was made from (checked by tree id).\n"
	"Every rebuilt file's SHA-256 is verified. Work happens in a temporary\n"
	"directory next to NEWDIR that is renamed at the end: a failed or\n"
	"interrupted apply leaves nothing at NEWDIR.\n"
	"\n"
	"options:\n"
	"  -o, --output DIR   the directory to create\n"
	"  -j, --jobs N       threads hashing the base (default: one per core)\n"
	"  -q, --quiet        no progress\n"
	"  -h, --help         this text\n"
	"\n"
	"Run as root to restore ownership and device nodes; otherwise they are\n"
	"skipped with a warning.\n";

struct apply_ctx {
	const struct dimg_reader *rd;
	struct dimg_files base;
};

static int content(void *ctx, const struct dimg_entry *e, dimg_write_fn sink, void *sink_ctx)
{
	struct apply_ctx *a = ctx;
	return dimg_reader_rebuild(a->rd, e, &a->base, sink, sink_ctx);
}

static int resolve(struct dimg_reader *rd, const struct dimg_tree *base, const char *old,
		   const char *delta, struct dimg_tree **target)
{
	int r = dimg_reader_resolve(rd, base, target);
	if (r == -EXDEV) {
		char want[65], have[65];
		uint8_t id[32];
		dimg_tree_id(base, id);
		dimg_hex32(dimg_reader_base_id(rd), want);
		dimg_hex32(id, have);
		fprintf(stderr,
			"cdimg: %s: wrong base: %s has tree id %.16s..., the delta needs %.16s...\n",
			delta, old, have, want);
		return CLI_BADINPUT;
	}
	return r < 0 ? cli_fail(r, delta, "index does not match its base") : 0;
}

static int run_apply(const char *old, const char *delta, const char *out, unsigned jobs, int quiet)
{
	struct dimg_reader *rd = NULL;
	struct dimg_tree *base = NULL, *target = NULL;
	struct apply_ctx ac = {0};
	struct cli_progress p;
	char *bad = NULL;
	unsigned flags = 0;
	int r, code;
	cli_progress_init(&p, quiet);
	if ((r = dimg_reader_open(&rd, delta)) < 0)
		return cli_fail(r, delta, NULL);
	ac.rd = rd;
	if ((code = cli_walk(&base, old, jobs, &p)) || (code = resolve(rd, base, old, delta, &target)))
		goto out;
	if ((r = dimg_dir_files_open(&ac.base, old)) < 0) {
		code = cli_fail(r, old, NULL);
		goto out;
	}
	if (geteuid() != 0) {
		flags |= DIMG_WRITE_NO_OWNER | DIMG_WRITE_NO_DEVICES;
		fprintf(stderr, "cdimg: warning: not root: ownership and device nodes are not restored\n");
	}
	r = dimg_tree_write_dir(target, out, content, &ac, flags, cli_progress_cb, &p, &bad);
	cli_progress_done(&p);
	if (r < 0) {
		char what[4096 + 64];
		snprintf(what, sizeof(what), "%s: entry '%s'", delta, bad ? bad : "?");
		code = cli_fail(r, what, NULL);
		goto out;
	}
	code = CLI_OK;
out:
	free(bad);
	dimg_dir_files_close(&ac.base);
	dimg_tree_free(base);
	dimg_tree_free(target);
	dimg_reader_free(rd);
	return code;
}

int cmd_apply(int argc, char **argv)
{
	static const struct option opts[] = {{"output", required_argument, 0, 'o'},
					     {"jobs", required_argument, 0, 'j'},
					     {"quiet", no_argument, 0, 'q'},
					     {"help", no_argument, 0, 'h'},
					     {0, 0, 0, 0}};
	const char *out = NULL;
	unsigned jobs = 0;
	int quiet = 0, c;
	while ((c = getopt_long(argc, argv, "o:j:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'j':
			if (cli_parse_uint(optarg, 1, 1024, &jobs) < 0) {
				fprintf(stderr, "cdimg apply: bad value '%s'\n", optarg);
				return CLI_USAGE;
			}
			break;
		case 'q': quiet = 1; break;
		case 'h': fputs(apply_help, stdout); return CLI_OK;
		default: fputs(apply_help, stderr); return CLI_USAGE;
		}
	}
	if (optind + 2 != argc || !out) {
		fputs(apply_help, stderr);
		return CLI_USAGE;
	}
	return run_apply(argv[optind], argv[optind + 1], out, jobs, quiet);
}
