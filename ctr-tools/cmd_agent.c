/* cdimg agent --stdio: the remote end of `cdimg copy ... ssh://HOST/NAME`,
 * run by ssh on that host (transport/lib/ssh_agent.c,
 * docs/ssh-protocol.md). Not a command for people: it speaks the binary
 * agent protocol on stdin and stdout. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "di3fs/transport.h"

static const char agent_help[] =
    "usage: cdimg agent --stdio [OPTIONS]\n"
    "\n"
    "The remote end of an ssh:// image name: `cdimg copy SRC ssh://HOST/NAME` and\n"
    "`cdimg copy ssh://HOST/NAME DST` run `cdimg agent --stdio` on HOST through\n"
    "ssh (--remote-cdimg says which cdimg), and it speaks the agent protocol\n"
    "(docs/ssh-protocol.md) on its stdin and stdout: NAME is opened here with\n"
    "any transport (containerd:, oci:, oci-archive:, docker-archive:, docker://,\n"
    "a path), blobs are received into the cache of partial uploads (a cut\n"
    "connection resumes there), checked against their digests, and nothing is\n"
    "visible at NAME before the client commits. Errors go to stderr, which ssh\n"
    "shows on the client's terminal. No port is opened.\n"
    "\n"
    "options:\n"
    "      --stdio            speak the protocol on stdin/stdout (required)\n"
    "      --cache-dir DIR    partial uploads (default $DI3FS_CACHE_DIR, else\n"
    "                         /var/cache/di3fs/blobs as root, else\n"
    "                         $XDG_CACHE_HOME/di3fs/blobs)\n"
    "  -a, --address SOCK     containerd's socket (default $CONTAINERD_ADDRESS or\n"
    "                         /run/containerd/containerd.sock)\n"
    "  -n, --namespace NS     containerd namespace (default $CONTAINERD_NAMESPACE\n"
    "                         or \"default\")\n"
    "  -h, --help             this text\n"
    "\n"
    "exit codes: 0 the client closed the session, 1 failed, 2 usage\n";

enum { OPT_STDIO = 0x200, OPT_CACHE_DIR };

struct agent_args {
	struct cli_args c;
	struct xport_opts o;
	int stdio;
};

static int agent_option(void *ctx, int c, const char *arg)
{
	struct agent_args *a = ctx;
	switch (c) {
	case OPT_STDIO:
		a->stdio = 1;
		return 0;
	case OPT_CACHE_DIR:
		a->o.cache_dir = arg;
		return 0;
	case 'a':
		a->o.address = arg;
		return 0;
	case 'n':
		a->o.ns = arg;
		return 0;
	}
	return -2;
}

static int agent_parse(struct agent_args *a, int argc, char **argv)
{
	static const struct option opts[] = {CLI_OPTION_HELP,
	                                     {"stdio", no_argument, 0, OPT_STDIO},
	                                     {"cache-dir", required_argument, 0, OPT_CACHE_DIR},
	                                     {"address", required_argument, 0, 'a'},
	                                     {"namespace", required_argument, 0, 'n'},
	                                     {0, 0, 0, 0}};
	static const char *const names[] = {"nothing"};
	a->c = (struct cli_args){.cmd = "agent", .help = agent_help};
	int r = cli_getopt(&a->c, argc, argv, ":a:n:h", opts, agent_option, a);
	if (r == 0)
		r = cli_positionals(&a->c, argc, argv, optind, 0, 0, names, 0);
	if (r == 0 && !a->stdio) {
		fprintf(stderr, "cdimg agent: --stdio is required (the agent speaks on stdin "
		                "and stdout, for ssh)\n");
		return CLI_USAGE;
	}
	return r;
}

int cmd_agent(int argc, char **argv)
{
	const char *env_ns = getenv("CONTAINERD_NAMESPACE"),
	           *env_addr = getenv("CONTAINERD_ADDRESS");
	struct agent_args a = {0};
	struct dimg_err err = {0};
	a.o.ns = env_ns && env_ns[0] ? env_ns : NULL;
	a.o.address = env_addr && env_addr[0] ? env_addr : NULL;
	int code = agent_parse(&a, argc, argv);
	if (code)
		return code < 0 ? CLI_OK : code;
	/* the protocol gets stdout to itself: anything printed goes to stderr */
	int out = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	if (out < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
		return cli_fail(-errno, "stdout", NULL);
	signal(SIGPIPE, SIG_IGN);
	int r = xport_agent(STDIN_FILENO, out, &a.o, &err);
	close(out);
	if (r < 0) {
		fprintf(stderr, "cdimg agent: %s%s%s\n", err.what[0] ? err.what : "",
		        err.what[0] ? ": " : "", err.why[0] ? err.why : strerror(-r));
		return CLI_FAILED;
	}
	return CLI_OK;
}
