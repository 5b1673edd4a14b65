/* cdimg load: the di3fs.prefetch label, from the target's image config
 * (load.h). The snapshotter never sees the config: it gets the programs
 * to prefetch here, and follows their ELF interpreters and libraries in
 * the image's own tree itself. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dimg/oci.h"
#include "load.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct seeds {
	char buf[LOAD_SEEDS_MAX];
	size_t len;
};

/* Appends dir/name (or name alone when dir is NULL) and a newline. */
static void add(struct seeds *s, const char *dir, size_t dlen, const char *name, size_t nlen)
{
	char path[1024];
	int n = dir ? snprintf(path, sizeof(path), "%.*s/%.*s", (int)dlen, dir, (int)nlen, name)
	            : snprintf(path, sizeof(path), "%.*s", (int)nlen, name);
	if (n <= 0 || (size_t)n >= sizeof(path) || path[0] != '/' || strchr(path, '\n'))
		return;
	if (s->len + (size_t)n + 2 > sizeof(s->buf))
		return;
	memcpy(s->buf + s->len, path, (size_t)n);
	s->len += (size_t)n;
	s->buf[s->len++] = '\n';
	s->buf[s->len] = '\0';
}

/* A program as a container runtime finds it: absolute as is, relative
 * (with a '/') in the working directory, a bare name in each PATH dir. */
static void add_program(struct seeds *s, const char *prog, size_t len, const char *path,
                        const char *wd)
{
	if (len == 0 || prog[0] == '-')
		return;
	if (prog[0] == '/')
		add(s, NULL, 0, prog, len);
	else if (memchr(prog, '/', len))
		add(s, wd, strlen(wd), prog, len);
	else
		for (const char *d = path; d; d = strchr(d, ':') ? strchr(d, ':') + 1 : NULL)
			add(s, d, strcspn(d, ":"), prog, len);
}

static const char *str_at(struct json_object *arr, size_t i)
{
	struct json_object *v = arr ? json_object_array_get_idx(arr, i) : NULL;
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* argv[0] of arr, and for "SHELL -c LINE" the first word of LINE too. */
static void add_argv(struct seeds *s, struct json_object *arr, const char *path, const char *wd)
{
	const char *a0 = str_at(arr, 0), *a1 = str_at(arr, 1), *a2 = str_at(arr, 2);
	if (!a0)
		return;
	add_program(s, a0, strlen(a0), path, wd);
	if (a1 && strcmp(a1, "-c") == 0 && a2) {
		a2 += strspn(a2, " \t");
		add_program(s, a2, strcspn(a2, " \t;&|<>"), path, wd);
	}
}

static struct json_object *field(struct json_object *o, const char *name, json_type type)
{
	struct json_object *v;
	return o && json_object_object_get_ex(o, name, &v) && json_object_is_type(v, type) ? v
	                                                                                   : NULL;
}

static const char *env_path(struct json_object *env)
{
	for (size_t i = 0; env && i < json_object_array_length(env); i++) {
		const char *e = str_at(env, i);
		if (e && strncmp(e, "PATH=", 5) == 0)
			return e + 5;
	}
	return DEFAULT_PATH;
}

char *load_prefetch_seeds(const uint8_t *config, size_t n)
{
	struct json_object *o = NULL;
	if (n > LOAD_MAX_JSON || oci_json_parse(&o, config, n) < 0)
		return NULL;
	struct json_object *c = field(o, "config", json_type_object);
	struct json_object *wdj = field(c, "WorkingDir", json_type_string);
	const char *path = env_path(field(c, "Env", json_type_array));
	const char *wd = wdj && json_object_get_string(wdj)[0] ? json_object_get_string(wdj) : "/";
	struct seeds *s = calloc(1, sizeof(*s));
	if (s) {
		add_argv(s, field(c, "Entrypoint", json_type_array), path, wd);
		add_argv(s, field(c, "Cmd", json_type_array), path, wd);
	}
	json_object_put(o);
	char *out = s && s->len ? strdup(s->buf) : NULL;
	free(s);
	return out;
}
