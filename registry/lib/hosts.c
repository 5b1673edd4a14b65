/* containerd's hosts.toml, the part mirrors need: a TOML reader for exactly
 *
 *   server = "URL"
 *   capabilities = ["pull", "resolve", "push"]   (top level: the server's)
 *   skip_verify = true|false
 *   ca = "PATH" | ["PATH", ...]
 *   [host."URL"]   with capabilities, skip_verify, ca, override_path
 *
 * with # comments, basic and literal one-line strings and one-line
 * arrays. Anything else is refused with its line, never guessed at. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry-internal.h"

#define HOSTS_MAX  64
#define STRING_MAX 4096

struct tp {
	const char *p, *end;
	unsigned line;
	const char *path;
	char *why;
	size_t whylen;
	unsigned seen; /* keys set in the current table, a bit each */
};

static int fail(struct tp *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct tp *t, const char *fmt, ...)
{
	int n = snprintf(t->why, t->whylen, "line %u: ", t->line);
	va_list ap;

	if (n >= 0 && (size_t)n < t->whylen) {
		va_start(ap, fmt);
		vsnprintf(t->why + n, t->whylen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static void skip_ws(struct tp *t)
{
	while (t->p < t->end && (*t->p == ' ' || *t->p == '\t'))
		t->p++;
}

/* After white space and a comment: the end of the line (or text)? */
static int at_eol(struct tp *t)
{
	skip_ws(t);
	if (t->p < t->end && *t->p == '#')
		while (t->p < t->end && *t->p != '\n')
			t->p++;
	if (t->p + 1 < t->end && t->p[0] == '\r' && t->p[1] == '\n')
		t->p++;
	return t->p == t->end || *t->p == '\n';
}

static int escape(struct tp *t, char *c)
{
	static const char from[] = "\"\\ntr", to[] = "\"\\\n\t\r";
	const char *k = t->p < t->end ? strchr(from, *t->p) : NULL;

	if (!k || !*t->p)
		return fail(t, "unsupported escape in a string");
	*c = to[k - from];
	t->p++;
	return 0;
}

static int parse_string(struct tp *t, char **out)
{
	char buf[STRING_MAX];
	char q = t->p < t->end ? *t->p : 0;
	size_t n = 0;

	if (q != '"' && q != '\'')
		return fail(t, "a string was expected");
	if (t->end - t->p >= 3 && t->p[1] == q && t->p[2] == q)
		return fail(t, "multi-line strings are not supported");
	for (t->p++; t->p < t->end && *t->p != q; n++) {
		char c = *t->p++;
		if ((unsigned char)c < 0x20 || c == 0x7f)
			return fail(t, "a string does not end on its line");
		if (c == '\\' && q == '"' && escape(t, &c) < 0)
			return -EINVAL;
		if (n + 1 >= sizeof(buf))
			return fail(t, "a string is too long");
		buf[n] = c;
	}
	if (t->p == t->end)
		return fail(t, "a string does not end");
	t->p++;
	buf[n] = '\0';
	*out = strdup(buf);
	return *out ? 0 : -ENOMEM;
}

static int parse_bool(struct tp *t, int *out)
{
	size_t left = (size_t)(t->end - t->p);

	if (left >= 4 && memcmp(t->p, "true", 4) == 0) {
		t->p += 4;
		*out = 1;
	} else if (left >= 5 && memcmp(t->p, "false", 5) == 0) {
		t->p += 5;
		*out = 0;
	} else {
		return fail(t, "true or false was expected");
	}
	return 0;
}

/* ["a", "b"] on one line, or one string when one is allowed. */
static int parse_strings(struct tp *t, char **items, size_t max, size_t *n, int one_ok)
{
	int rc;

	*n = 0;
	if (one_ok && t->p < t->end && *t->p != '[') {
		*n = 1;
		return parse_string(t, &items[0]);
	}
	if (t->p == t->end || *t->p != '[')
		return fail(t, "an array of strings was expected");
	for (t->p++, skip_ws(t); t->p < t->end && *t->p != ']'; skip_ws(t)) {
		if (*t->p == '\n' || *t->p == '\r' || *t->p == '#')
			return fail(t,
			            "an array does not end on its line (arrays stay on one line)");
		if (*n == max)
			return fail(t, "more than %zu items", max);
		if ((rc = parse_string(t, &items[(*n)++])) < 0)
			return rc;
		skip_ws(t);
		if (t->p < t->end && *t->p == ',')
			t->p++;
		else if (t->p < t->end && *t->p != ']')
			return fail(t, "',' or ']' was expected (arrays stay on one line)");
	}
	if (t->p == t->end)
		return fail(t, "an array does not end on its line");
	t->p++;
	return 0;
}

static int parse_caps(struct tp *t, unsigned *caps)
{
	static const char *const names[] = {"pull", "resolve", "push"};
	char *items[8] = {0};
	size_t n = 0;
	int rc = parse_strings(t, items, 8, &n, 0);

	*caps = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		size_t k = 0;
		while (k < 3 && strcmp(items[i], names[k]) != 0)
			k++;
		if (k == 3)
			rc = fail(t, "unknown capability '%s'", items[i]);
		else
			*caps |= 1u << k;
	}
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	return rc;
}

static int add_ca(struct tp *t, struct reg_host_entry *e)
{
	char *items[REG_CA_MAX] = {0};
	const char *slash = strrchr(t->path, '/');
	int dl = slash ? (int)(slash - t->path) : 1;
	size_t n = 0;
	int rc = parse_strings(t, items, REG_CA_MAX, &n, 1);

	for (size_t i = 0; i < n; i++) {
		char *p = items[i], *abs = NULL;
		if (rc == 0 && p[0] != '/') {
			if (asprintf(&abs, "%.*s/%s", dl, slash ? t->path : ".", p) < 0) {
				abs = NULL;
				rc = -ENOMEM;
			}
			free(p);
			p = abs;
		}
		if (rc == 0)
			e->ca[e->nca++] = p;
		else
			free(p);
	}
	return rc;
}

static int parse_value(struct tp *t, struct reg_hosts *h, struct reg_host_entry *e, const char *key)
{
	static const char *const keys[] = {"server", "capabilities", "skip_verify", "ca",
	                                   "override_path"};
	unsigned k = 0;

	while (k < 5 && strcmp(key, keys[k]) != 0)
		k++;
	if (k == 5 || (k == 0 && e != &h->server))
		return fail(t,
		            "key '%s' is not read here (di3fs reads server, capabilities, "
		            "skip_verify, ca, override_path)",
		            key);
	if (t->seen & (1u << k))
		return fail(t, "key '%s' is set twice", key);
	t->seen |= 1u << k;
	switch (k) {
	case 0:
		return parse_string(t, &h->server.url);
	case 1:
		return parse_caps(t, &e->caps);
	case 2:
		return parse_bool(t, &e->skip_verify);
	case 3:
		return add_ca(t, e);
	default:
		return parse_bool(t, &e->override_path);
	}
}

static int parse_key(struct tp *t, struct reg_hosts *h, struct reg_host_entry *e)
{
	char key[32];
	size_t n = 0;

	while (t->p < t->end && n + 1 < sizeof(key) &&
	       ((*t->p >= 'a' && *t->p <= 'z') || *t->p == '_' || *t->p == '-'))
		key[n++] = *t->p++;
	key[n] = '\0';
	skip_ws(t);
	if (n == 0 || t->p == t->end || *t->p != '=')
		return fail(t, "'key = value' was expected");
	t->p++;
	skip_ws(t);
	return parse_value(t, h, e, key);
}

static void entry_init(struct reg_host_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->caps = REG_CAP_ALL;
	e->skip_verify = -1;
}

/* [host."URL"] */
static int parse_table(struct tp *t, struct reg_hosts *h, struct reg_host_entry **cur)
{
	struct reg_host_entry *grown;
	char *url = NULL;
	int rc;

	t->p++;
	skip_ws(t);
	if (t->end - t->p < 4 || memcmp(t->p, "host", 4) != 0)
		return fail(t, "only [host.\"URL\"] tables are read");
	t->p += 4;
	skip_ws(t);
	if (t->p == t->end || *t->p != '.')
		return fail(t, "only [host.\"URL\"] tables are read");
	t->p++;
	skip_ws(t);
	if ((rc = parse_string(t, &url)) < 0)
		return rc;
	skip_ws(t);
	if (t->p == t->end || *t->p != ']' || h->n == HOSTS_MAX) {
		free(url);
		return fail(t, h->n == HOSTS_MAX ? "too many hosts" : "']' was expected");
	}
	t->p++;
	for (size_t i = 0; i < h->n; i++)
		if (strcmp(h->h[i].url, url) == 0) {
			free(url);
			return fail(t, "host \"%s\" is given twice", h->h[i].url);
		}
	grown = realloc(h->h, (h->n + 1) * sizeof(*h->h));
	if (!grown) {
		free(url);
		return -ENOMEM;
	}
	h->h = grown;
	*cur = &h->h[h->n++];
	entry_init(*cur);
	(*cur)->url = url;
	t->seen = 0;
	return 0;
}

static int parse_line(struct tp *t, struct reg_hosts *h, size_t *cur)
{
	struct reg_host_entry *e = *cur == (size_t)-1 ? &h->server : &h->h[*cur];
	int rc;

	if (at_eol(t))
		return 0;
	if (*t->p == '[') {
		if (t->p + 1 < t->end && t->p[1] == '[')
			return fail(t, "arrays of tables are not read");
		rc = parse_table(t, h, &e);
		*cur = h->n - 1;
	} else {
		rc = parse_key(t, h, e);
	}
	if (rc == 0 && !at_eol(t))
		rc = fail(t, "unexpected text after the value");
	return rc;
}

int reg_hosts_parse(struct reg_hosts *out, const char *text, size_t len, const char *path,
                    char *why, size_t whylen)
{
	struct tp t = {
	    .p = text, .end = text + len, .line = 1, .path = path, .why = why, .whylen = whylen};
	size_t cur = (size_t)-1; /* the top level: the server's table */
	int rc = 0;

	memset(out, 0, sizeof(*out));
	entry_init(&out->server);
	why[0] = '\0';
	if (memchr(text, '\0', len))
		rc = fail(&t, "a NUL byte");
	while (rc == 0 && t.p < t.end) {
		rc = parse_line(&t, out, &cur);
		if (rc == 0 && t.p < t.end) {
			t.p++; /* the newline */
			t.line++;
		}
	}
	if (rc < 0)
		reg_hosts_clear(out);
	return rc;
}

static void entry_clear(struct reg_host_entry *e)
{
	free(e->url);
	for (size_t i = 0; i < e->nca; i++)
		free(e->ca[i]);
}

void reg_hosts_clear(struct reg_hosts *h)
{
	entry_clear(&h->server);
	for (size_t i = 0; i < h->n; i++)
		entry_clear(&h->h[i]);
	free(h->h);
	memset(h, 0, sizeof(*h));
}
