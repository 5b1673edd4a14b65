/* Shared helpers of the cdimg subcommands. */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "dimg/dimg.h"
#include "dimg/image.h"

int cli_exit_code(int rc)
{
	switch (rc) {
	case 0:
		return CLI_OK;
	case -EBADMSG:
	case -ENOTSUP:
	case -EOVERFLOW:
	case -EXDEV:
	case -ELOOP:
		return CLI_BADINPUT;
	default:
		return CLI_FAILED;
	}
}

/* Writes "s: " to stderr, its control bytes escaped (names come from
 * outside: tars, deltas, registries, the command line). */
static void put_part(const char *s)
{
	char buf[DIMG_ERR_WHAT_MAX];
	fprintf(stderr, "%s: ", dimg_escape_controls(buf, sizeof(buf), s));
}

int cli_fail(int rc, const char *what, const char *detail)
{
	fprintf(stderr, "cdimg: ");
	if (what)
		put_part(what);
	if (detail)
		put_part(detail);
	fprintf(stderr, "%s\n", dimg_strerror(rc));
	return cli_exit_code(rc);
}

int cli_report(int rc, const struct dimg_err *e, const char *what)
{
	if (e && e->what[0])
		what = e->what;
	fprintf(stderr, "cdimg: ");
	if (what)
		put_part(what);
	fprintf(stderr, "%s\n", e && e->why[0] ? e->why : dimg_strerror(rc));
	return cli_exit_code(rc);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cli_progress_init(struct cli_progress *p, int quiet)
{
	memset(p, 0, sizeof(*p));
	p->enabled = !quiet && isatty(STDERR_FILENO);
}

/* 1 when a line is due: enabled, and 100 ms since the last one or done. */
static int progress_due(struct cli_progress *p, uint64_t done, uint64_t total)
{
	if (!p || !p->enabled)
		return 0;
	int64_t t = now_ms();
	if (p->drawn && t - p->last_ms < 100 && done != total)
		return 0;
	p->last_ms = t;
	p->drawn = 1;
	return 1;
}

void cli_progress_cb(void *ctx, const char *what, uint64_t done, uint64_t total)
{
	struct cli_progress *p = ctx;
	char a[32], b[32];
	if (!progress_due(p, done, total))
		return;
	if (total)
		fprintf(stderr, "\r\033[K%s: %5.1f%% (%s of %s)", what,
		        100.0 * (double)done / (double)total, cli_human(done, a, sizeof(a)),
		        cli_human(total, b, sizeof(b)));
	else
		fprintf(stderr, "\r\033[K%s: %s", what, cli_human(done, a, sizeof(a)));
	fflush(stderr);
}

void cli_progress_count_cb(void *ctx, const char *what, uint64_t done, uint64_t total)
{
	struct cli_progress *p = ctx;
	if (!progress_due(p, done, total))
		return;
	fprintf(stderr, "\r\033[K%s: %" PRIu64 " of %" PRIu64 " files", what, done, total);
	fflush(stderr);
}

void cli_progress_done(struct cli_progress *p)
{
	if (p->enabled && p->drawn)
		fprintf(stderr, "\r\033[K");
	p->drawn = 0;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case 'K':
	case 'k':
		shift = 10;
		end++;
		break;
	case 'M':
	case 'm':
		shift = 20;
		end++;
		break;
	case 'G':
	case 'g':
		shift = 30;
		end++;
		break;
	default:
		break;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

int cli_parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < (long)lo || v > (long)hi)
		return -1;
	*out = (unsigned)v;
	return 0;
}

const char *cli_human_units(uint64_t n, unsigned base, char *buf, size_t len)
{
	static const char *bin[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	static const char *dec[] = {"B", "kB", "MB", "GB", "TB"};
	double v = (double)n;
	int i = 0;
	while (v >= base && i < 4) {
		v /= base;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%" PRIu64 " B", n);
	else
		snprintf(buf, len, "%.1f %s", v, base == 1000 ? dec[i] : bin[i]);
	return buf;
}

const char *cli_human(uint64_t n, char *buf, size_t len)
{
	return cli_human_units(n, 1024, buf, len);
}

/* ---- shared options ---- */

static int usage_line(const struct cli_args *a)
{
	const char *nl = strchr(a->help, '\n');
	fprintf(stderr, "%.*s\n'cdimg %s --help' describes every option.\n",
	        (int)(nl ? nl - a->help : (long)strlen(a->help)), a->help, a->cmd);
	return CLI_USAGE;
}

int cli_usage_hint(const struct cli_args *a)
{
	return usage_line(a);
}

int cli_bad_value(const struct cli_args *a, const char *opt, const char *arg, const char *why)
{
	fprintf(stderr, "cdimg %s: %s: '%s' %s\n", a->cmd, opt, arg, why);
	return -1;
}

int cli_opt_uint(const struct cli_args *a, const char *opt, const char *arg, unsigned lo,
                 unsigned hi, unsigned *out)
{
	char why[96];
	if (cli_parse_uint(arg, lo, hi, out) == 0)
		return 0;
	snprintf(why, sizeof(why), "is not a number from %u to %u", lo, hi);
	return cli_bad_value(a, opt, arg, why);
}

int cli_bad_option(const struct cli_args *a, int c, char **argv)
{
	const char *word = optind > 0 ? argv[optind - 1] : "?";
	if (c == ':')
		fprintf(stderr, "cdimg %s: %s needs a value\n", a->cmd, word);
	else if (c == '?' && optopt)
		fprintf(stderr, "cdimg %s: unknown option '-%c'\n", a->cmd, optopt);
	else
		fprintf(stderr, "cdimg %s: unknown option '%s'\n", a->cmd, word);
	return usage_line(a);
}

static int image_option(struct cli_args *a, int c, const char *arg)
{
	switch (c) {
	case CLI_OPT_BASE_REF:
		a->base_ref = arg;
		return 1;
	case CLI_OPT_TARGET_REF:
		a->target_ref = arg;
		return 1;
	case CLI_OPT_PLATFORM:
		a->platform = arg;
		return 1;
	case CLI_OPT_CACHE:
		a->cache = arg;
		return 1;
	case CLI_OPT_HASH_CACHE:
		a->hash_cache = arg;
		return 1;
	default:
		return 0;
	}
}

int cli_option(struct cli_args *a, int c, const char *arg, char **argv)
{
	unsigned v;
	switch (c) {
	case 'o':
		a->out = arg;
		return 1;
	case CLI_OPT_FORCE:
		a->force = 1;
		return 1;
	case CLI_OPT_JSON:
		a->json = 1;
		return 1;
	case 'q':
		a->quiet = 1;
		return 1;
	case 'j':
		return cli_opt_uint(a, "--jobs", arg, 1, 1024, &a->jobs) < 0 ? -1 : 1;
	case 'l':
		if (cli_opt_uint(a, "--level", arg, 1, 22, &v) < 0)
			return -1;
		a->level = (int)v;
		return 1;
	case 'h':
		fputs(a->help, stdout);
		a->help_shown = 1;
		return 1;
	case ':':
	case '?':
		cli_bad_option(a, c, argv);
		return -1;
	default:
		return image_option(a, c, arg);
	}
}

int cli_positionals(const struct cli_args *a, int argc, char **argv, int first, int min, int max,
                    const char *const *names, int need_output)
{
	int n = argc - first;
	if (n < min)
		fprintf(stderr, "cdimg %s: missing %s\n", a->cmd, names[n]);
	else if (n > max)
		fprintf(stderr, "cdimg %s: unexpected argument '%s'\n", a->cmd, argv[first + max]);
	else if (need_output && !a->out)
		fprintf(stderr, "cdimg %s: missing -o OUTPUT: what to write\n", a->cmd);
	else
		return 0;
	return usage_line(a);
}

void cli_image_opts(const struct cli_args *a, int target, struct dimg_image_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->ref = target ? a->target_ref : a->base_ref;
	o->platform = a->platform;
	o->cas_dir = a->cache;
	o->jobs = a->jobs;
	o->hash_cache = a->hash_cache;
}

void cli_hash_cache(struct cli_args *a)
{
	static char dflt[4096];
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	int n = -1;
	if (a->hash_cache) {
		if (!strcmp(a->hash_cache, "none"))
			a->hash_cache = NULL;
		return;
	}
	if (xdg && xdg[0] == '/')
		n = snprintf(dflt, sizeof(dflt), "%s/di3fs/hashes", xdg);
	else if (home && home[0] == '/')
		n = snprintf(dflt, sizeof(dflt), "%s/.cache/di3fs/hashes", home);
	a->hash_cache = n > 0 && (size_t)n < sizeof(dflt) ? dflt : NULL;
}

int cli_getopt(struct cli_args *a, int argc, char **argv, const char *shortopts,
               const struct option *opts, int (*own)(void *ctx, int c, const char *arg), void *ctx)
{
	int c, r;
	while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		if ((r = cli_option(a, c, optarg, argv)) < 0)
			return CLI_USAGE;
		if (r == 0 && (r = own ? own(ctx, c, optarg) : -2) == -2)
			return cli_bad_option(a, c, argv);
		if (r < 0)
			return CLI_USAGE;
	}
	return a->help_shown ? -1 : 0;
}

int cli_check_output(const struct cli_args *a, const char *const *inputs, size_t n)
{
	struct stat out, in;
	if (lstat(a->out, &out) < 0)
		return 0; /* nothing there (or the writer says what is wrong) */
	for (size_t i = 0; i < n; i++) {
		if (!inputs[i] || stat(inputs[i], &in) < 0 || in.st_dev != out.st_dev ||
		    in.st_ino != out.st_ino)
			continue;
		if (strcmp(a->out, inputs[i]))
			fprintf(stderr, "cdimg %s: %s is the same file as %s, ", a->cmd, a->out,
			        inputs[i]);
		else
			fprintf(stderr, "cdimg %s: %s is ", a->cmd, a->out);
		fprintf(stderr, "an input of this command: never written over, --force or not\n");
		return CLI_USAGE;
	}
	if (a->force)
		return 0;
	fprintf(stderr, "cdimg %s: %s exists: give --force to replace it\n", a->cmd, a->out);
	return CLI_FAILED;
}

/* ---- what a delta changes, said the same way by every command ---- */

const char *const cli_payload_name[5] = {"none", "empty", "same", "full", "patch"};
const char *const cli_codec_name[5] = {"none", "bsdiff", "zstdref", "gzip", "chain"};

static int known(const struct dimg_counts *c)
{
	return c->changed != DIMG_COUNT_UNKNOWN;
}

void cli_counts_print(const struct dimg_counts *c)
{
	char h[32];
	if (known(c))
		printf("  entries: %" PRIu64 " (kept %" PRIu64 ", changed %" PRIu64
		       ", added %" PRIu64 ", renamed %" PRIu64 "), removed %" PRIu64 "\n",
		       c->entries, c->kept, c->changed, c->added, c->renamed, c->removed);
	else
		printf("  entries: %" PRIu64 " (kept %" PRIu64 ", stored %" PRIu64
		       ": changed, added or renamed), %" PRIu64
		       " base entries dropped: changed, removed or renamed (cdimg show --base OLD "
		       "tells them apart)\n",
		       c->entries, c->kept, c->stored, c->dropped);
	printf("  stored regular files by payload:\n");
	for (int k = 1; k < 5; k++)
		printf("    %-6s %8" PRIu64 " files  %s\n", cli_payload_name[k], c->files[k],
		       cli_human(c->bytes[k], h, sizeof(h)));
	printf("    patches: %" PRIu64 " bsdiff, %" PRIu64 " zstdref, %" PRIu64 " gzip, %" PRIu64
	       " chain\n",
	       c->patches[1], c->patches[2], c->patches[3], c->patches[4]);
}

static struct json_object *count_json(uint64_t v)
{
	return v == DIMG_COUNT_UNKNOWN ? NULL : json_object_new_int64((int64_t)v);
}

void cli_counts_json(struct json_object *o, const struct dimg_counts *c)
{
	struct json_object *p = json_object_new_object(), *x = json_object_new_object();
	json_object_object_add(o, "entries", count_json(c->entries));
	json_object_object_add(o, "kept", count_json(c->kept));
	json_object_object_add(o, "stored", count_json(c->stored));
	json_object_object_add(o, "dropped", count_json(c->dropped));
	json_object_object_add(o, "changed", count_json(c->changed));
	json_object_object_add(o, "added", count_json(c->added));
	json_object_object_add(o, "renamed", count_json(c->renamed));
	json_object_object_add(o, "removed", count_json(c->removed));
	for (int k = 1; k < 5; k++) {
		struct json_object *f = json_object_new_object();
		json_object_object_add(f, "files", count_json(c->files[k]));
		json_object_object_add(f, "bytes", count_json(c->bytes[k]));
		json_object_object_add(p, cli_payload_name[k], f);
		json_object_object_add(x, cli_codec_name[k], count_json(c->patches[k]));
	}
	json_object_object_add(o, "payloads", p);
	json_object_object_add(o, "patches", x);
	json_object_object_add(o, "dictionary_blobs", count_json(c->dict_files));
}
