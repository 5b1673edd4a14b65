/* Starting the other end of an ssh:// name: the system ssh client (its
 * keys, agent, known_hosts and ~/.ssh/config; or $DI3FS_SSH /
 * --ssh-command) runs `REMOTE_CDIMG agent --stdio` on the host, its
 * stdin and stdout one end of a socket pair whose other end is ours. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ssh.h"

#define XSSH_ARGS_FIXED 12

/* [USER@]HOST[:PORT] into its parts (host without IPv6 brackets). */
static void xssh_split(const char *where, char *user, char *host, char *port, size_t n)
{
	const char *at = strchr(where, '@'), *h = at ? at + 1 : where, *p;
	snprintf(user, n, "%.*s", at ? (int)(at - where) : 0, where);
	if (h[0] == '[') {
		const char *end = strchr(h, ']');
		snprintf(host, n, "%.*s", (int)(end - h - 1), h + 1);
		p = end[1] == ':' ? end + 2 : "";
	} else {
		const char *colon = strchr(h, ':');
		snprintf(host, n, "%.*s", colon ? (int)(colon - h) : (int)strlen(h), h);
		p = colon ? colon + 1 : "";
	}
	snprintf(port, n, "%s", p);
}

/* sh -c 'exec SSH "$@"' ssh [-l USER] [-p PORT] -T [-o OPT]... -- HOST CMD */
static char **xssh_argv(const struct xport *x, char *script, char *user, char *host, char *port,
                        char *remote)
{
	const struct xport_opts *o = &x->opts;
	char **v = calloc(XSSH_ARGS_FIXED + 2 * o->nssh_opts, sizeof(*v));
	size_t n = 0;
	if (!v)
		return NULL;
	v[n++] = "/bin/sh";
	v[n++] = "-c";
	v[n++] = script;
	v[n++] = "ssh";
	if (user[0]) {
		v[n++] = "-l";
		v[n++] = user;
	}
	if (port[0]) {
		v[n++] = "-p";
		v[n++] = port;
	}
	v[n++] = "-T";
	for (size_t i = 0; i < o->nssh_opts; i++) {
		v[n++] = "-o";
		v[n++] = (char *)o->ssh_opts[i];
	}
	v[n++] = "--";
	v[n++] = host;
	v[n++] = remote;
	return v;
}

static const char *xssh_env(const char *opt, const char *env, const char *def)
{
	const char *e = getenv(env);
	return opt && opt[0] ? opt : e && e[0] ? e : def;
}

static int xssh_fork(struct xssh *s, char **argv, int fd)
{
	s->pid = fork();
	if (s->pid < 0)
		return -errno;
	if (s->pid == 0) { /* only async-signal-safe calls until exec */
		signal(SIGPIPE, SIG_DFL);
		if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0)
			_exit(127);
		if (fd > 1)
			close(fd);
		execv(argv[0], argv);
		_exit(127);
	}
	return 0;
}

static int xssh_start(struct xssh *s, struct xport *x, struct dimg_err *err)
{
	char user[256], host[256], port[256], *script = NULL, *remote = NULL;
	int sv[2] = {-1, -1};
	xssh_split(x->name.where, user, host, port, sizeof(user));
	const char *ssh = xssh_env(x->opts.ssh_command, "DI3FS_SSH", "ssh");
	const char *cdimg = xssh_env(x->opts.remote_cdimg, "DI3FS_REMOTE_CDIMG", "cdimg");
	int r = asprintf(&script, "exec %s \"$@\"", ssh) < 0 ||
	                asprintf(&remote, "%s agent --stdio", cdimg) < 0
	            ? -ENOMEM
	            : 0;
	char **argv = r == 0 ? xssh_argv(x, script, user, host, port, remote) : NULL;
	if (r == 0 && !argv)
		r = -ENOMEM;
	if (r == 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		r = -errno;
	if (r == 0 && (r = xssh_fork(s, argv, sv[1])) == 0) {
		s->c.in = s->c.out = sv[0];
		sv[0] = -1;
	}
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	free(argv);
	free(script);
	free(remote);
	return r < 0 ? dimg_err_set(err, r, s->peer, "starting %s", ssh) : 0;
}

int xssh_died(struct xssh *s, int r, struct dimg_err *err)
{
	int st = 0;
	if (r != -ECONNRESET || s->pid < 0)
		return r;
	close(s->c.in);
	s->c.in = s->c.out = -1;
	if (waitpid(s->pid, &st, 0) < 0)
		return r;
	s->pid = -1;
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	dimg_err_clear(err);
	return dimg_err_set(err, -ECONNRESET, s->peer,
	                    "ssh ended (exit %d) before the agent answered%s", code,
	                    code == 127   ? ": no cdimg on the remote side (--remote-cdimg)"
	                    : code == 255 ? ": the connection failed (ssh's message above)"
	                                  : "");
}

int xssh_spawn(struct xssh *s, struct xport *x, struct dimg_err *err)
{
	uint32_t v = 0;
	int r = xssh_start(s, x, err);
	if (r == 0)
		r = sshp_send_hello(&s->c, SSHP_HELLO, SSHP_VERSION, err);
	if (r == 0)
		r = sshp_recv_hello(&s->c, SSHP_HELLO_REPLY, &v, err);
	if (r == 0 && v != SSHP_VERSION)
		r = dimg_err_set(err, -EPROTO, s->peer,
		                 "the remote cdimg speaks agent protocol version %u, this cdimg "
		                 "version %u: install the same cdimg release on both sides",
		                 v, SSHP_VERSION);
	if (r == -ECONNRESET || r == -EPIPE)
		r = xssh_died(s, -ECONNRESET, err);
	return r;
}

void xssh_reap(struct xssh *s)
{
	int st;
	if (s->c.in >= 0)
		close(s->c.in);
	s->c.in = s->c.out = -1;
	if (s->pid > 0)
		waitpid(s->pid, &st, 0);
	s->pid = -1;
}
