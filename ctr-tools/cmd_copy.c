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
    "\n"
    "Manifests are copied byte for byte (their digests do not change; OCI and\n"
    "Docker schema 2 alike); an index only with --all-platforms, else the manifest\n"
    "of --platform (this machine's by default). Blobs the destination has are\n"
    "never sent; the others stream through (memory stays flat whatever their\n"
    "size), each checked against its digest and size as it passes: a mismatch\n"
    "names the blob and commits nothing. Nothing appears at DST before the end.\n"
    "Several SRC go into one layout or archive (each under its own name, blobs\n"
    "shared). Downloads from registries resume where an interrupted run stopped.\n"
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
    "  -j, --jobs N               blobs at once (default 3); the result is the same\n"
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
    "      --json                 one JSON object per event on stdout, then a summary\n"
    "  -q, --quiet                no progress\n"
    "  -h, --help                 this text\n"
    "\n"
    "Progress shows on a terminal only; otherwise nothing but errors.\n"
    "exit codes: 0 copied, 1 failed, 2 usage, 3 a blob that does not match its digest\n"
    "or size, or blobs neither side has (a partial archive away from its base)\n";

struct copy_args {
	struct xcopy_opts o;
	struct xport_name *names; /* sources then the destination */
	size_t nnames;
	struct xport_name *excl;
	const char **excl_s;
	size_t nexcl;
	int json, quiet;
};

enum {
	OPT_ALL = 256,
	OPT_PLAT,
	OPT_EXCL,
	OPT_CACHE,
	OPT_CREDS,
	OPT_AUTH,
	OPT_TLS,
	OPT_CERT,
	OPT_JSON
};

static int copy_opt(struct copy_args *a, int c, const char *arg)
{
	unsigned v;
	switch (c) {
	case OPT_ALL:
		a->o.x.all_platforms = 1;
		return 0;
	case OPT_PLAT:
		a->o.x.platform = arg;
		return 0;
	case OPT_EXCL:
		a->excl_s[a->nexcl++] = arg;
		return 0;
	case 'j':
		if (cli_parse_uint(arg, 1, 64, &v) < 0)
			return -1;
		a->o.jobs = v;
		return 0;
	case OPT_CACHE:
		a->o.x.cache_dir = arg;
		return 0;
	case 'a':
		a->o.x.address = arg;
		return 0;
	case 'n':
		a->o.x.ns = arg;
		return 0;
	case OPT_CREDS:
		a->o.x.creds = arg;
		return 0;
	case OPT_AUTH:
		a->o.x.authfile = arg;
		return 0;
	case OPT_TLS:
		if (strcmp(arg, "true") && strcmp(arg, "false"))
			return -1;
		a->o.x.tls_verify = strcmp(arg, "true") == 0 ? 0 : -1;
		return 0;
	case OPT_CERT:
		a->o.x.certs_dir = arg;
		return 0;
	case OPT_JSON:
		a->json = 1;
		return 0;
	case 'q':
		a->quiet = 1;
		return 0;
	}
	return -2;
}

/* 0, -1 (--help), or an exit code. */
static int copy_parse(struct copy_args *a, int argc, char **argv)
{
	static const struct option opts[] = {{"all-platforms", no_argument, 0, OPT_ALL},
	                                     {"platform", required_argument, 0, OPT_PLAT},
	                                     {"exclude-from", required_argument, 0, OPT_EXCL},
	                                     {"jobs", required_argument, 0, 'j'},
	                                     {"cache-dir", required_argument, 0, OPT_CACHE},
	                                     {"address", required_argument, 0, 'a'},
	                                     {"namespace", required_argument, 0, 'n'},
	                                     {"creds", required_argument, 0, OPT_CREDS},
	                                     {"authfile", required_argument, 0, OPT_AUTH},
	                                     {"tls-verify", required_argument, 0, OPT_TLS},
	                                     {"cert-dir", required_argument, 0, OPT_CERT},
	                                     {"json", no_argument, 0, OPT_JSON},
	                                     {"quiet", no_argument, 0, 'q'},
	                                     {"help", no_argument, 0, 'h'},
	                                     {0, 0, 0, 0}};
	int c;
	a->excl_s = calloc((size_t)argc, sizeof(*a->excl_s));
	if (!a->excl_s)
		return CLI_FAILED;
	while ((c = getopt_long(argc, argv, "j:a:n:qh", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(copy_help, stdout);
			return -1;
		}
		int r = copy_opt(a, c, optarg);
		if (r == -1)
			fprintf(stderr, "cdimg copy: bad value '%s'\n", optarg);
		if (r < 0) {
			fputs(copy_help, stderr);
			return CLI_USAGE;
		}
	}
	if (argc - optind < 2) {
		fputs(copy_help, stderr);
		return CLI_USAGE;
	}
	return 0;
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
	return 0;
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
	copy_show_init(&show, a->json                              ? COPY_SHOW_JSON
	                      : !a->quiet && isatty(STDERR_FILENO) ? COPY_SHOW_TERM
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
	return code < 0 ? CLI_OK : code;
}
