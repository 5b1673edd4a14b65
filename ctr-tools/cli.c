/* Shared helpers of the cdimg subcommands. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cdimg.h"
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

int cli_fail(int rc, const char *what, const char *detail)
{
	fprintf(stderr, "cdimg: ");
	if (what)
		fprintf(stderr, "%s: ", what);
	if (detail)
		fprintf(stderr, "%s: ", detail);
	fprintf(stderr, "%s\n", dimg_strerror(rc));
	return cli_exit_code(rc);
}

int cli_report(int rc, const struct dimg_err *e, const char *what)
{
	if (e && e->what[0])
		what = e->what;
	fprintf(stderr, "cdimg: %s%s%s\n", what ? what : "", what ? ": " : "",
	        e && e->why[0] ? e->why : dimg_strerror(rc));
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

const char *cli_human(uint64_t n, char *buf, size_t len)
{
	static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%" PRIu64 " B", n);
	else
		snprintf(buf, len, "%.1f %s", v, u[i]);
	return buf;
}

const char *cli_hash_cache(const char *opt, char **buf)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	*buf = NULL;
	if (opt)
		return strcmp(opt, "none") ? opt : NULL;
	if (xdg && xdg[0] == '/' && asprintf(buf, "%s/di3fs/hashes", xdg) < 0)
		*buf = NULL;
	else if (!*buf && home && home[0] == '/' &&
	         asprintf(buf, "%s/.cache/di3fs/hashes", home) < 0)
		*buf = NULL;
	return *buf;
}

int cli_open_image(struct dimg_image **out, const char *path, const struct dimg_image_opts *o,
                   int quiet)
{
	struct dimg_image_opts opts = o ? *o : (struct dimg_image_opts){0};
	struct dimg_err err = {0};
	struct cli_progress p;
	cli_progress_init(&p, quiet);
	opts.progress = cli_progress_cb;
	opts.pctx = &p;
	int r = dimg_image_open(out, path, &opts, &err);
	cli_progress_done(&p);
	return r < 0 ? cli_report(r, &err, path) : 0;
}

/* Opens a .dimg or a .cdimg (by its first bytes); reports errors itself. */
int cli_open_delta(const char *path, struct cdimg **c, struct dimg_reader **rd)
{
	struct dimg_err err = {0};
	int r = cdimg_sniff(path);
	if (r == CDIMG_KIND_CDIMG) {
		if ((r = cdimg_open(c, path, &err)) == 0 && (r = cdimg_dimg_reader(*c, rd)) < 0)
			return cli_fail(r, path, "the .dimg inside");
	} else if (r >= 0) {
		r = dimg_reader_open(rd, path);
	}
	return r < 0 ? cli_report(r, &err, path) : 0;
}
