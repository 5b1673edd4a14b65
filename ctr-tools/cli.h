/* Shared pieces of the cdimg subcommands: exit codes, error reporting,
 * terminal progress, option parsing helpers. */
#ifndef DI3FS_CLI_H
#define DI3FS_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "dimg/tree.h"

enum cli_exit {
	CLI_OK = 0,
	CLI_FAILED = 1,
	CLI_USAGE = 2,
	CLI_BADINPUT = 3, /* corrupt or unusable input */
};

struct cli_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

/* Exit code for a -errno from the library. */
int cli_exit_code(int rc);

/* "cdimg: <what>: <problem>" on stderr; what may be NULL. Returns the exit
 * code for rc. The problem text explains our own error codes. */
int cli_fail(int rc, const char *what, const char *detail);

/* Terminal progress on stderr, only when stderr is a TTY and not quiet. */
struct cli_progress {
	int enabled;
	int64_t last_ms;
	int drawn;
};
void cli_progress_init(struct cli_progress *p, int quiet);
void cli_progress_cb(void *ctx, const char *what, uint64_t done, uint64_t total);
/* The same, for counts of files instead of bytes. */
void cli_progress_count_cb(void *ctx, const char *what, uint64_t done, uint64_t total);
void cli_progress_done(struct cli_progress *p);

/* Parses "123", "64K", "512M", "2G" into bytes; -1 on error. */
int cli_parse_size(const char *s, uint64_t *out);
/* Parses a non-negative decimal int within [lo, hi]. */
int cli_parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out);

/* Human-readable size into buf. */
const char *cli_human(uint64_t n, char *buf, size_t len);

/* "cdimg: <what>: <why>" on stderr: what and why from e where it names
 * them (what otherwise, then the problem rc means); returns the exit code. */
int cli_report(int rc, const struct dimg_err *e, const char *what);

struct dimg_image;
struct dimg_image_opts;
/* Opens an image (or directory tree) with o (NULL: defaults) and progress
 * on a terminal unless quiet; reports errors itself and returns an exit
 * code (0 ok). */
int cli_open_image(struct dimg_image **out, const char *path, const struct dimg_image_opts *o,
                   int quiet);

/* The walk's hash cache directory for --hash-cache OPT (NULL: not given):
 * OPT itself, none for "none", else $XDG_CACHE_HOME/di3fs/hashes or
 * $HOME/.cache/di3fs/hashes (none when neither variable is set). *buf
 * holds what is malloc'd here; the caller frees it. */
const char *cli_hash_cache(const char *opt, char **buf);

struct cdimg;
struct dimg_reader;
/* Opens a .dimg or a .cdimg (told apart by their first bytes); *c is set
 * for a .cdimg only. Reports errors itself and returns an exit code. */
int cli_open_delta(const char *path, struct cdimg **c, struct dimg_reader **rd);

int cmd_diff(int argc, char **argv);
int cmd_apply(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_load(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_plan(int argc, char **argv);

#endif
