/* cdimg copy SRC... DST: images between transports (transport/xcopy.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "copy_show.h"
#include "di3fs/xcopy.h"

#define COPY_JOBS_MAX   64
#define COPY_JOBS_MAX_S "64"

static const char copy_help[] =
    "usage: cdimg copy [OPTIONS] SRC... DST\n"
    "\n"
    "Copies images from where they are to where they go, named as skopeo names them:\n"
    "  docker://HOST[:PORT]/REPO[:TAG|@DIGEST]   a registry\n"
    "  containerd:NAME[:TAG|@DIGEST]             containerd's images and content store\n"
    "  oci:DIR[:REF]                             an OCI image layout directory\n"
    "  oci-archive:FILE[:REF]                    the same in a tar\n"
    "  docker-archive:FILE[:NAME:TAG]            a `docker save` tar\n"
    "  PATH                                      a layout directory or a tar, by content\n"
    "  ssh://[USER@]HOST[:PORT]/NAME             NAME (any of the above) on HOST, through\n"
    "                                            `cdimg agent --stdio` run there by ssh\n"
    "\n"
    "Manifests are copied byte for byte (their digests do not change; OCI and\n"
    "Docker schema 2 alike); an index only with --all-platforms, else the manifest\n"
    "of --platform (this machine's by default). Blobs the destination has are\n"
    "never sent; the others stream through (memory stays flat whatever their\n"
    "size), each checked against its digest and size as it passes: a mismatch\n"
    "names the blob and commits nothing. Nothing appears at DST before the end.\n"
    "Several SRC go into one layout or archive (each under its own name, blobs\n"
    "shared). Downloads from registries resume where an interrupted run stopped.\n"
    "An archive (oci-archive:, docker-archive:, a .tar) is written whole: an\n"
    "existing one is replaced only with --force, and never one of the inputs. A\n"
    "layout directory, a registry and containerd keep the images they have and\n"
    "take the new ones beside them (a tag already there moves).\n"
    "\n"
    "ssh:// uses the system ssh client (its keys, agent, known_hosts and\n"
    "~/.ssh/config) to run `cdimg agent --stdio` on HOST; no port is opened.\n"
    "Only the blobs HOST lacks are sent (layers; deltas are to come), in frames\n"
    "of at most 1 MiB, checked against their digests on the receiving side\n"
    "before anything is committed there; a cut connection resumes on the next\n"
    "run from the partial blob the receiving side kept (docs/ssh-protocol.md).\n"
    "\n"
    "--exclude-from IMAGE writes a partial archive: the blobs IMAGE holds are left\n"
    "out and listed in the archive's di3fs-excluded.json; copying it to a place\n"
    "that has IMAGE (`cdimg copy app.tar containerd:app:v2` on a machine that\n"
    "runs the base) completes it from there, and fails naming the missing blobs\n"
    "where it does not.\n"
    "\n"
    "options:\n"
    "      --all-platforms        copy an index with every platform's image\n"
    "      --platform OS/ARCH[/V] the image to copy from an index\n"
    "      --exclude-from IMAGE   leave out the blobs IMAGE holds (repeatable)\n"
    "  -j, --jobs N               blobs at once, 1 to 64 (default 3); the result is\n"
    "                             the same\n"
    "      --cache-dir DIR        resumable downloads (default $DI3FS_CACHE_DIR, else\n"
    "                             /var/cache/di3fs/blobs as root, else\n"
    "                             $XDG_CACHE_HOME/di3fs/blobs)\n"
    "  -a, --address SOCK         containerd's socket (default $CONTAINERD_ADDRESS or\n"
    "                             /run/containerd/containerd.sock)\n"
    "  -n, --namespace NS         containerd namespace (default $CONTAINERD_NAMESPACE\n"
    "                             or \"default\")\n"
    "      --creds USER:PASS      registry credentials (else docker's and skopeo's files)\n"
    "      --authfile FILE        registry credentials file\n"
    "      --tls-verify=false     do not check registries' TLS certificates\n"
    "      --cert-dir DIR         registry CA certificates and client keys\n"
    "      --ssh-opt OPT          passed to ssh as -o OPT (repeatable)\n"
    "      --ssh-command CMD      the ssh client, a shell command (default $DI3FS_SSH,\n"
    "                             else ssh)\n"
    "      --remote-cdimg CMD     the cdimg on the remote host, a shell command run\n"
    "                             there (default $DI3FS_REMOTE_CDIMG, else cdimg)\n"
    "      --force                replace an existing archive (DST a tar: replaced\n"
    "                             whole; never one of the inputs)\n"
    "      --json                 one JSON object per event on stdout, then a summary\n"
    "  -q, --quiet                no progress\n"
    "  -h, --help                 this text\n"
    "\n"
    "Progress shows on a terminal only; otherwise nothing but errors.\n"
    "exit codes: 0 copied, 1 failed, 2 usage, 3 a blob that does not match its digest\n"
    "or size, or blobs neither side has (a partial archive away from its base)\n";

struct copy_args {
	struct cli_args c; /* the shared options: --platform, -j, --json, -q, --force */
	struct xcopy_opts o;
	struct xport_name *names; /* sources then the destination */
	size_t nnames;
	struct xport_name *excl;
	const char **excl_s;
	size_t nexcl;
	const char **ssh_opts;
	size_t nssh_opts;
};

enum {
	OPT_ALL = 0x200,
	OPT_EXCL,
	OPT_CACHE_DIR,
	OPT_SSH_OPT,
	OPT_SSH_CMD,
	OPT_REMOTE_CDIMG,
};

/* copy's own options (cli_getopt's own): 0, -1 (a bad value, said), -2. */
static int copy_option(void *ctx, int c, const char *arg)
{
	struct copy_args *a = ctx;
	switch (c) {
	case OPT_ALL:
		a->o.x.all_platforms = 1;
		return 0;
	case OPT_EXCL:
		a->excl_s[a->nexcl++] = arg;
		return 0;
	case OPT_CACHE_DIR:
		a->o.x.cache_dir = arg;
		return 0;
	case 'a':
		a->o.x.address = arg;
		return 0;
	case 'n':
		a->o.x.ns = arg;
		return 0;
	case OPT_SSH_OPT:
		a->ssh_opts[a->nssh_opts++] = arg;
		return 0;
	case OPT_SSH_CMD:
		a->o.x.ssh_command = arg;
		return 0;
	case OPT_REMOTE_CDIMG:
		a->o.x.remote_cdimg = arg;
		return 0;
	}
	return cli_registry_option(&a->c, &a->o.x, c, arg);
}

/* 0, -1 (--help), or an exit code. */
static int copy_parse(struct copy_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
	    CLI_OPTION_FORCE,
	    CLI_OPTION_JOBS,
	    CLI_OPTION_JSON,
	    CLI_OPTION_QUIET,
	    CLI_OPTION_HELP,
	    CLI_OPTION_PLATFORM,
	    {"all-platforms", no_argument, 0, OPT_ALL},
	    {"exclude-from", required_argument, 0, OPT_EXCL},
	    {"cache-dir", required_argument, 0, OPT_CACHE_DIR},
	    {"address", required_argument, 0, 'a'},
	    {"namespace", required_argument, 0, 'n'},
	    CLI_OPTIONS_REGISTRY,
	    {"ssh-opt", required_argument, 0, OPT_SSH_OPT},
	    {"ssh-command", required_argument, 0, OPT_SSH_CMD},
	    {"remote-cdimg", required_argument, 0, OPT_REMOTE_CDIMG},
	    {0, 0, 0, 0}};
	static const char *const names[] = {"SRC (the image to copy)", "DST (where it goes)"};
	char jobs[16];
	int r;
	a->c = (struct cli_args){.cmd = "copy", .help = copy_help};
	a->excl_s = calloc((size_t)argc, sizeof(*a->excl_s));
	a->ssh_opts = calloc((size_t)argc, sizeof(*a->ssh_opts));
	if (!a->excl_s || !a->ssh_opts)
		return CLI_FAILED;
	if ((r = cli_getopt(&a->c, argc, argv, ":j:a:n:qh", opts, copy_option, a)) ||
	    (r = cli_positionals(&a->c, argc, argv, optind, 2, argc, names, 0)))
		return r;
	if (a->c.jobs > COPY_JOBS_MAX) {
		snprintf(jobs, sizeof(jobs), "%u", a->c.jobs);
		cli_bad_value(&a->c, "--jobs", jobs,
		              "is more than " COPY_JOBS_MAX_S " blobs at once");
		return CLI_USAGE;
	}
	a->o.jobs = a->c.jobs;
	a->o.x.platform = a->c.platform;
	a->o.x.ssh_opts = a->ssh_opts;
	a->o.x.nssh_opts = a->nssh_opts;
	return 0;
}

/* The path a layout or archive name reads or writes, else NULL. */
static const char *copy_path(const struct xport_name *n)
{
	return n->kind == XPORT_OCI || n->kind == XPORT_OCI_ARCHIVE ||
	               n->kind == XPORT_DOCKER_ARCHIVE
	           ? n->where
	           : NULL;
}

/* The output rule (cli_check_output) for a destination that is one file,
 * an archive, replaced whole: never an input, an existing one only with
 * --force. A layout directory, like a registry or containerd, takes
 * images beside those it has (an existing tag is moved), so it may exist. */
static int copy_check_dst(struct copy_args *a)
{
	const struct xport_name *dst = &a->names[a->nnames - 1];
	size_t n = a->nnames - 1 + a->nexcl;
	if (dst->kind != XPORT_OCI_ARCHIVE && dst->kind != XPORT_DOCKER_ARCHIVE)
		return 0;
	const char **in = calloc(n, sizeof(*in));
	if (!in)
		return CLI_FAILED;
	for (size_t i = 0; i < n; i++)
		in[i] = copy_path(i < a->nnames - 1 ? &a->names[i] : &a->excl[i - (a->nnames - 1)]);
	struct cli_args c = a->c;
	c.out = dst->where;
	int code = cli_check_output(&c, in, n);
	free(in);
	return code;
}

/* Parses every name before anything is opened. */
static int copy_names(struct copy_args *a, int argc, char **argv)
{
	struct dimg_err err = {0};
	a->nnames = (size_t)(argc - optind);
	a->names = calloc(a->nnames, sizeof(*a->names));
	a->excl = calloc(a->nexcl ? a->nexcl : 1, sizeof(*a->excl));
	if (!a->names || !a->excl)
		return CLI_FAILED;
	for (size_t i = 0; i < a->nnames + a->nexcl; i++) {
		const char *s = i < a->nnames ? argv[optind + (int)i] : a->excl_s[i - a->nnames];
		struct xport_name *n = i < a->nnames ? &a->names[i] : &a->excl[i - a->nnames];
		int r = xport_name_parse(n, s, &err);
		if (r < 0) {
			fprintf(stderr, "cdimg copy: %s: %s%s%s\n", s,
			        err.why[0] ? err.why : strerror(-r),
			        err.what[0] && strcmp(err.what, s) ? " " : "",
			        err.what[0] && strcmp(err.what, s) ? err.what : "");
			return r == -ENOMEM ? CLI_FAILED : CLI_USAGE;
		}
	}
	a->o.exclude = a->excl;
	a->o.nexclude = a->nexcl;
	return copy_check_dst(a);
}

static double copy_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int copy_fail(int rc, const struct dimg_err *err)
{
	fprintf(stderr, "cdimg copy: ");
	if (err->what[0])
		fprintf(stderr, "%s: ", err->what);
	fprintf(stderr, "%s\n", err->why[0] ? err->why : strerror(-rc));
	if (rc == -ENODATA || rc == -EBADMSG)
		return CLI_BADINPUT;
	return rc == -EINVAL ? CLI_USAGE : cli_exit_code(rc);
}

static int copy_run(struct copy_args *a)
{
	struct copy_show show;
	struct xcopy_result res;
	struct dimg_err err = {0};
	char dst[1024];
	double t0 = copy_now();
	copy_show_init(&show, a->c.json                              ? COPY_SHOW_JSON
	                      : !a->c.quiet && isatty(STDERR_FILENO) ? COPY_SHOW_TERM
	                                                             : COPY_SHOW_NONE);
	a->o.event = copy_show_event;
	a->o.ectx = &show;
	xport_name_str(dst, sizeof(dst), &a->names[a->nnames - 1]);
	int r = xcopy(a->names, a->nnames - 1, &a->names[a->nnames - 1], &a->o, &res, &err);
	int code = CLI_OK;
	if (r < 0) {
		copy_show_error(&show, &res, r, &err);
		code = copy_fail(r, &err);
	} else {
		copy_show_summary(&show, &res, dst, copy_now() - t0);
	}
	xcopy_result_clear(&res);
	copy_show_free(&show);
	return code;
}

int cmd_copy(int argc, char **argv)
{
	const char *env_ns = getenv("CONTAINERD_NAMESPACE"),
	           *env_addr = getenv("CONTAINERD_ADDRESS");
	struct copy_args a = {0};
	a.o.x.ns = env_ns && env_ns[0] ? env_ns : NULL;
	a.o.x.address = env_addr && env_addr[0] ? env_addr : NULL;
	int code = copy_parse(&a, argc, argv);
	if (code == 0)
		code = copy_names(&a, argc, argv);
	if (code == 0)
		code = copy_run(&a);
	for (size_t i = 0; a.names && i < a.nnames; i++)
		xport_name_clear(&a.names[i]);
	for (size_t i = 0; a.excl && i < a.nexcl; i++)
		xport_name_clear(&a.excl[i]);
	free(a.names);
	free(a.excl);
	free(a.excl_s);
	free(a.ssh_opts);
	return code < 0 ? CLI_OK : code;
}
