/* Registry credentials where docker and skopeo keep them: --creds, else
 * --authfile alone, else the first of $REGISTRY_AUTH_FILE,
 * $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json,
 * ~/.docker/config.json that knows the host. In a file: credHelpers[host]
 * (a docker-credential-NAME program), then auths[host].auth (base64 of
 * USER:PASS), then credsStore. Credentials are never printed or logged. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "registry-internal.h"

extern char **environ;

#define HELPER_OUT_MAX  (64u << 10)
#define HELPER_TIMEOUT  30000 /* ms */
#define DOCKER_HUB_AUTH "https://index.docker.io/v1/"

static int b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

int reg_b64_decode(char **out, size_t *len, const char *s)
{
	size_t n = strlen(s), j = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	char *p;

	while (n > 0 && s[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return -EINVAL;
	p = malloc(n * 3 / 4 + 1);
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int v = b64_val(s[i]);
		if (v < 0) {
			free(p);
			return -EINVAL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			p[j++] = (char)(acc >> bits & 0xff);
		}
	}
	p[j] = '\0';
	*out = p;
	*len = j;
	return 0;
}

static int split_userpass(const char *s, size_t n, char **user, char **pass)
{
	const char *colon = memchr(s, ':', n);

	if (!colon || colon == s || memchr(s, '\0', n))
		return -EINVAL;
	*user = strndup(s, (size_t)(colon - s));
	*pass = strndup(colon + 1, n - (size_t)(colon - s) - 1);
	if (!*user || !*pass) {
		free(*user);
		free(*pass);
		*user = *pass = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Docker Hub has several names; its credentials go by docker.io. */
static void host_norm(char *out, size_t n, const char *host, size_t hl)
{
	if ((hl == 15 && !strncmp(host, "index.docker.io", hl)) ||
	    (hl == 20 && !strncmp(host, "registry-1.docker.io", hl)))
		snprintf(out, n, "docker.io");
	else
		snprintf(out, n, "%.*s", (int)hl, host);
}

/* An auths key as HOST[/PATH]: without its scheme and docker's /v1/. */
static void key_norm(char *out, size_t n, const char *key)
{
	const char *h = strstr(key, "://");
	size_t len;

	if (h) {
		key = h + 3;
		len = strcspn(key, "/"); /* a URL key names a host only */
	} else {
		len = strlen(key);
		while (len > 0 && key[len - 1] == '/')
			len--;
	}
	const char *slash = memchr(key, '/', len);
	size_t hl = slash ? (size_t)(slash - key) : len;
	char hn[300];
	host_norm(hn, sizeof(hn), key, hl);
	snprintf(out, n, "%s%.*s", hn, slash ? (int)(len - hl) : 0, slash ? slash : "");
}

/* The auths entry for host/repo: the exact host, or the longest
 * HOST/NAMESPACE key the repository lies under. */
static struct json_object *best_entry(struct json_object *auths, const char *host, const char *repo)
{
	char want[512], hn[300], k[512];
	struct json_object *best = NULL;
	size_t best_len = 0;

	if (!auths)
		return NULL;
	host_norm(hn, sizeof(hn), host, strlen(host));
	snprintf(want, sizeof(want), "%s/%s", hn, repo ? repo : "");
	json_object_object_foreach(auths, key, val)
	{
		size_t kl;
		key_norm(k, sizeof(k), key);
		kl = strlen(k);
		if (!json_object_is_type(val, json_type_object) || kl <= best_len)
			continue;
		if (strcmp(k, hn) == 0 || (strchr(k, '/') && strncmp(want, k, kl) == 0 &&
		                           (want[kl] == '/' || !want[kl]))) {
			best = val;
			best_len = kl;
		}
	}
	return best;
}

static int entry_creds(struct json_object *e, const char *path, char **user, char **pass,
                       struct dimg_err *err)
{
	const char *b64 = oci_jstr(e, "auth");
	char *raw = NULL;
	size_t len;
	int rc;

	if (!b64 || !b64[0])
		return oci_jstr(e, "identitytoken")
		           ? dimg_err_set(
		                 err, -ENOTSUP, path,
		                 "identity tokens (docker login with a token) are not supported")
		           : 0;
	rc = reg_b64_decode(&raw, &len, b64);
	if (rc == 0)
		rc = split_userpass(raw, len, user, pass);
	if (raw) {
		explicit_bzero(raw, len);
		free(raw);
	}
	if (rc == -EINVAL)
		return dimg_err_set(err, -EINVAL, path,
		                    "an auths entry is not base64 of USER:PASSWORD");
	return rc < 0 ? rc : 1;
}

static int helper_spawn(pid_t *pid, int *in, int *out, const char *prog)
{
	char *argv[] = {(char *)prog, "get", NULL};
	posix_spawn_file_actions_t fa;
	int pin[2], pout[2], rc;

	if (pipe2(pin, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(pout, O_CLOEXEC) < 0) {
		rc = -errno;
		close(pin[0]);
		close(pin[1]);
		return rc;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
	posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	rc = -posix_spawnp(pid, prog, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pin[0]);
	close(pout[1]);
	if (rc < 0) {
		close(pin[1]);
		close(pout[0]);
		return rc;
	}
	*in = pin[1];
	*out = pout[0];
	return 0;
}

/* Writes the server name without dying of SIGPIPE if the helper left. */
static void helper_feed(int fd, const char *server)
{
	sigset_t pipe_set, old;
	struct timespec zero = {0, 0};

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	if (write(fd, server, strlen(server)) < 0 && errno == EPIPE)
		sigtimedwait(&pipe_set, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(fd);
}

/* The helper's stdout, bounded in size and time. */
static int helper_read(int fd, struct dimg_buf *b)
{
	int64_t deadline = reg_now_ms() + HELPER_TIMEOUT;
	char chunk[4096];

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - reg_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		int n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ETIMEDOUT;
		ssize_t got = read(fd, chunk, sizeof(chunk));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : 0;
		if ((size_t)got > HELPER_OUT_MAX - b->len)
			return -EFBIG;
		if (dimg_buf_append(b, chunk, (size_t)got) < 0)
			return -ENOMEM;
	}
}

static int helper_answer(const struct dimg_buf *b, int status, const char *prog, char **user,
                         char **pass, struct dimg_err *err)
{
	struct json_object *o = NULL;
	const char *u, *s;
	int rc;

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		/* "credentials not found in native keychain": none for this host */
		if (b->len && memmem(b->data, b->len, "not found", 9))
			return 0;
		return dimg_err_set(err, -EACCES, prog, "the credential helper failed");
	}
	if (oci_json_parse(&o, b->data, b->len) < 0)
		return dimg_err_set(err, -EBADMSG, prog,
		                    "the credential helper's answer is not JSON");
	u = oci_jstr(o, "Username");
	s = oci_jstr(o, "Secret");
	if (!u || !s || !u[0])
		rc = dimg_err_set(err, -EBADMSG, prog, "the answer lacks Username or Secret");
	else if (strcmp(u, "<token>") == 0)
		rc = dimg_err_set(err, -ENOTSUP, prog, "identity tokens are not supported");
	else if (!(*user = strdup(u)) || !(*pass = strdup(s)))
		rc = -ENOMEM;
	else
		rc = 1;
	json_object_put(o);
	return rc;
}

/* docker-credential-NAME get, the server name on stdin, JSON on stdout. */
static int run_helper(const char *name, const char *host, char **user, char **pass,
                      struct dimg_err *err)
{
	struct dimg_buf b = {0};
	char prog[128];
	pid_t pid;
	int in = -1, out = -1, status = 0, rc;

	if (!name[0] || strlen(name) > 64 ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz"
	                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(name))
		return dimg_err_set(err, -EINVAL, name, "not a credential helper name");
	snprintf(prog, sizeof(prog), "docker-credential-%s", name);
	rc = helper_spawn(&pid, &in, &out, prog);
	if (rc < 0)
		return dimg_err_set(err, rc, prog, "cannot run the credential helper");
	helper_feed(in, strcmp(host, "docker.io") == 0 ? DOCKER_HUB_AUTH : host);
	rc = helper_read(out, &b);
	close(out);
	if (rc < 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc == 0)
		rc = helper_answer(&b, status, prog, user, pass, err);
	else
		rc = dimg_err_set(err, rc, prog, "reading the credential helper's answer");
	explicit_bzero(b.data, b.cap);
	dimg_buf_free(&b);
	return rc;
}

/* 1 found, 0 the file does not know the host, or -errno. */
static int file_lookup(const char *path, const char *host, const char *repo, char **user,
                       char **pass, struct dimg_err *err)
{
	struct json_object *o = NULL, *helpers, *e;
	const char *helper = NULL, *store;
	char hn[300], *text;
	size_t len;
	int rc = reg_read_file(path, REG_FILE_MAX, &text, &len);

	if (rc < 0)
		return dimg_err_set(err, rc, path, NULL);
	rc = oci_json_parse(&o, text, len);
	explicit_bzero(text, len);
	free(text);
	if (rc < 0)
		return dimg_err_set(err, rc, path, "not a JSON auth file");
	host_norm(hn, sizeof(hn), host, strlen(host));
	helpers = oci_jobj(o, "credHelpers");
	helper = oci_jstr(helpers, hn);
	if (!helper && strcmp(hn, "docker.io") == 0)
		helper = oci_jstr(helpers, DOCKER_HUB_AUTH);
	e = best_entry(oci_jobj(o, "auths"), host, repo);
	store = oci_jstr(o, "credsStore");
	if (helper) {
		rc = run_helper(helper, hn, user, pass, err);
	} else {
		rc = e ? entry_creds(e, path, user, pass, err) : 0;
		if (rc == 0 && store)
			rc = run_helper(store, hn, user, pass, err);
	}
	json_object_put(o);
	return rc;
}

static int default_files(char paths[4][4096])
{
	const char *env = getenv("REGISTRY_AUTH_FILE"), *xdg = getenv("XDG_RUNTIME_DIR");
	const char *home = getenv("HOME"), *dcfg = getenv("DOCKER_CONFIG");
	int n = 0;

	if (env && env[0])
		snprintf(paths[n++], 4096, "%s", env);
	if (xdg && xdg[0])
		snprintf(paths[n++], 4096, "%s/containers/auth.json", xdg);
	if (home && home[0])
		snprintf(paths[n++], 4096, "%s/.config/containers/auth.json", home);
	if (dcfg && dcfg[0])
		snprintf(paths[n++], 4096, "%s/config.json", dcfg);
	else if (home && home[0])
		snprintf(paths[n++], 4096, "%s/.docker/config.json", home);
	return n;
}

int reg_creds_lookup(const struct reg_opts *o, const char *host, const char *repo, char **user,
                     char **pass, struct dimg_err *err)
{
	char paths[4][4096];
	int rc, n;

	*user = *pass = NULL;
	if (o->creds) {
		rc = split_userpass(o->creds, strlen(o->creds), user, pass);
		return rc == -EINVAL
		           ? dimg_err_set(err, rc, "--creds", "USER:PASSWORD was expected")
		           : rc;
	}
	if (o->authfile)
		return (rc = file_lookup(o->authfile, host, repo, user, pass, err)) < 0 ? rc : 0;
	n = default_files(paths);
	for (int i = 0; i < n; i++) {
		if (access(paths[i], F_OK) != 0)
			continue;
		rc = file_lookup(paths[i], host, repo, user, pass, err);
		if (rc != 0)
			return rc < 0 ? rc : 0;
	}
	return 0;
}
