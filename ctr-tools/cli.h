/* Shared pieces of the cdimg subcommands: exit codes, error reporting,
 * terminal progress, option parsing helpers. */
#ifndef DI3FS_CLI_H
#define DI3FS_CLI_H

#include <getopt.h>
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

/* ---- the options the commands share: one table, one parser ----
 * A command lists the CLI_OPTION_* entries it takes in its getopt_long
 * table, its short options after a ':' (so that a missing value is told
 * apart from an unknown option), and hands every option to cli_option
 * first. */
enum {
	CLI_OPT_BASE_REF = 0x100,
	CLI_OPT_TARGET_REF,
	CLI_OPT_PLATFORM,
	CLI_OPT_CACHE,
	CLI_OPT_FORCE,
	CLI_OPT_JSON,
	CLI_OPT_HASH_CACHE,
};
/* clang-format off */
#define CLI_OPTION_OUTPUT     {"output", required_argument, 0, 'o'}
#define CLI_OPTION_FORCE      {"force", no_argument, 0, CLI_OPT_FORCE}
#define CLI_OPTION_JOBS       {"jobs", required_argument, 0, 'j'}
#define CLI_OPTION_LEVEL      {"level", required_argument, 0, 'l'}
#define CLI_OPTION_JSON       {"json", no_argument, 0, CLI_OPT_JSON}
#define CLI_OPTION_QUIET      {"quiet", no_argument, 0, 'q'}
#define CLI_OPTION_HELP       {"help", no_argument, 0, 'h'}
#define CLI_OPTION_BASE_REF   {"base-ref", required_argument, 0, CLI_OPT_BASE_REF}
#define CLI_OPTION_TARGET_REF {"target-ref", required_argument, 0, CLI_OPT_TARGET_REF}
#define CLI_OPTION_PLATFORM   {"platform", required_argument, 0, CLI_OPT_PLATFORM}
#define CLI_OPTION_CACHE      {"cache", required_argument, 0, CLI_OPT_CACHE}
#define CLI_OPTION_HASH_CACHE {"hash-cache", required_argument, 0, CLI_OPT_HASH_CACHE}
/* clang-format on */

/* What the shared options set, and the command they are parsed for. */
struct cli_args {
	const char *cmd;  /* "diff": names the command in messages */
	const char *help; /* its --help text; the first line is the usage */
	const char *out;  /* -o */
	int force, json, quiet, help_shown;
	unsigned jobs; /* -j, 0: one per core */
	int level;     /* -l, 0: the command's default */
	/* images: which one to pick from an archive, the platform from an
	 * index, the content store */
	const char *base_ref, *target_ref, *platform, *cache;
	/* --hash-cache DIR|none as given (NULL: not given); cli_hash_cache
	 * turns it into the directory cli_image_opts hands on */
	const char *hash_cache;
};

/* Takes option c (optarg arg) when it is a shared one: 1 taken; 0 not a
 * shared option; -1 refused (said on stderr, naming the option). -h prints
 * the help on stdout and sets help_shown. */
int cli_option(struct cli_args *a, int c, const char *arg, char **argv);
/* Parses argv's options: the shared ones into a, the command's own through
 * own(ctx, c, arg), which returns 0 (taken), -1 (a bad value, said) or -2
 * (not an option it takes). Returns 0, -1 when the help was shown, or the
 * exit code of a usage error (said on stderr). */
int cli_getopt(struct cli_args *a, int argc, char **argv, const char *shortopts,
               const struct option *opts, int (*own)(void *ctx, int c, const char *arg), void *ctx);
/* Says what is wrong with option c, the command's own, (an unknown option,
 * a missing value, ...) and how to get help; returns CLI_USAGE. */
int cli_bad_option(const struct cli_args *a, int c, char **argv);
/* "cdimg CMD: --OPT: VALUE is ..." for a command's own option; returns -1. */
int cli_bad_value(const struct cli_args *a, const char *opt, const char *arg, const char *why);
/* An unsigned option value within [lo, hi], or a message naming the option. */
int cli_opt_uint(const struct cli_args *a, const char *opt, const char *arg, unsigned lo,
                 unsigned hi, unsigned *out);
/* The positional arguments: between min and max of them (names[i] says
 * what the i-th is), else a message saying which is missing or extra and
 * CLI_USAGE; with need_output, -o too. 0 when all is well. */
int cli_positionals(const struct cli_args *a, int argc, char **argv, int first, int min, int max,
                    const char *const *names, int need_output);
/* "usage: ..." (the help's first line) and where the options are told. */
int cli_usage_hint(const struct cli_args *a);

/* The rule for every output of every command: never one of the inputs
 * (the same file by device and inode, whatever its name), and an existing
 * file or directory only with --force. Says what is wrong and returns the
 * exit code, or 0 when the output may be written. */
int cli_check_output(const struct cli_args *a, const char *const *inputs, size_t n);

/* What a delta changes (dimg/dimg.h, struct dimg_counts), in the same
 * words and under the same JSON keys in every command: the entries line
 * (exact counts, or what the index alone tells), the stored regular files
 * by payload, the patches by codec. Unknown counts are JSON null. */
struct dimg_counts;
struct json_object;
void cli_counts_print(const struct dimg_counts *c);
/* The names of enum dimg_payload and enum dimg_codec values. */
extern const char *const cli_payload_name[5];
extern const char *const cli_codec_name[5];
void cli_counts_json(struct json_object *o, const struct dimg_counts *c);

struct dimg_image_opts;
/* Image options from the shared ones: ref is base_ref or target_ref. */
void cli_image_opts(const struct cli_args *a, int target, struct dimg_image_opts *o);
/* For the commands taking CLI_OPTION_HASH_CACHE (diff, apply), after
 * parsing: a->hash_cache becomes the walk's hash cache directory: the one
 * given, NULL for "none", else $XDG_CACHE_HOME/di3fs/hashes or
 * $HOME/.cache/di3fs/hashes (NULL when neither variable is an absolute
 * path). The default lives in static storage. */
void cli_hash_cache(struct cli_args *a);

/* Human-readable size into buf (KiB, MiB: base 1024). */
const char *cli_human(uint64_t n, char *buf, size_t len);
/* The same in base 1024 or 1000 (kB, MB, as docker shows sizes). */
const char *cli_human_units(uint64_t n, unsigned base, char *buf, size_t len);

/* "cdimg: <what>: <why>" on stderr: what and why from e where it names
 * them (what otherwise, then the problem rc means); returns the exit code. */
int cli_report(int rc, const struct dimg_err *e, const char *what);

struct dimg_image;
struct dimg_image_opts;
/* Opens an image (or directory tree) with o (NULL: defaults) and progress
 * on a terminal unless quiet; reports errors itself and returns an exit
 * code (0 ok). path may also be a transport name (oci:DIR:REF,
 * containerd:NAME:TAG, docker://...: cli_image.c, in cdimg only); a ref in
 * the name must agree with o->ref. */
int cli_open_image(struct dimg_image **out, const char *path, const struct dimg_image_opts *o,
                   int quiet);

/* ---- the registry options: cdimg copy, push, pull (cli_registry.c) ----
 * A command taking them lists CLI_OPTIONS_REGISTRY in its getopt_long
 * table and hands its own options to cli_registry_option. */
enum {
	CLI_OPT_CREDS = 0x180,
	CLI_OPT_AUTHFILE,
	CLI_OPT_TLS_VERIFY,
	CLI_OPT_CERT_DIR,
};
/* clang-format off */
#define CLI_OPTIONS_REGISTRY \
	{"creds", required_argument, 0, CLI_OPT_CREDS}, \
	{"authfile", required_argument, 0, CLI_OPT_AUTHFILE}, \
	{"tls-verify", required_argument, 0, CLI_OPT_TLS_VERIFY}, \
	{"cert-dir", required_argument, 0, CLI_OPT_CERT_DIR}
/* clang-format on */
struct xport_opts;
/* Takes option c (optarg arg) into o when it is a registry option: 0
 * taken, -1 a bad value (said on stderr), -2 not one (cli_getopt's own()
 * convention). */
int cli_registry_option(const struct cli_args *a, struct xport_opts *o, int c, const char *arg);

struct merge_opts;
/* Merges the delta files paths[0..n) into out (a .dimg when its name ends
 * so, else a .cdimg; over an existing file with force) and prints the
 * summary: cdimg merge, cdimg plan --merge. Returns an exit code. */
int cli_merge(const char *out, const char *const *paths, size_t n, struct merge_opts *mo, int force,
              int json, int quiet);

int cmd_diff(int argc, char **argv);
int cmd_apply(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_load(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_copy(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_agent(int argc, char **argv);

#endif
