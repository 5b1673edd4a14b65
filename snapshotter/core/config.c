/* Settings: defaults, the key = value config file and their validation. */
#include "config.h"
#include "log.h"
#include "fsutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void snap_config_defaults(struct snap_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->root, sizeof(cfg->root), "%s", SNAP_DEFAULT_ROOT);
	snprintf(cfg->address, sizeof(cfg->address), "%s", SNAP_DEFAULT_ADDRESS);
	cfg->threads = SNAP_DEFAULT_THREADS;
	cfg->restart_wait = SNAP_DEFAULT_RESTART_WAIT;
	cfg->log_level = SNAP_LOG_INFO;
	cfg->delta_images = 1;
	cfg->prefetch = 1;
	snprintf(cfg->containerd_address, sizeof(cfg->containerd_address), "%s",
	         SNAP_DEFAULT_CONTAINERD);
}

static int parse_bool(int *out, const char *value)
{
	if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "1"))
		*out = 1;
	else if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "0"))
		*out = 0;
	else
		return -EINVAL;
	return 0;
}

/* A byte count with an optional K, M, G or T suffix (powers of 1024). */
static int parse_bytes(unsigned long long *out, const char *value)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(value, &end, 10);
	unsigned shift = 0;
	if (errno || end == value || value[0] == '-')
		return -EINVAL;
	switch (*end) {
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	case 0:
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1])
		return -EINVAL;
	if (shift && v > (~0ULL >> shift))
		return -EINVAL;
	*out = v << shift;
	return 0;
}

static int parse_int(int *out, const char *value, long min, long max)
{
	char *end;

	errno = 0;
	long v = strtol(value, &end, 10);
	if (errno || end == value || *end || v < min || v > max)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

int snap_config_set(struct snap_config *cfg, const char *name, const char *value)
{
	if (strcmp(name, "root") == 0)
		return fsutil_pathf(cfg->root, sizeof(cfg->root), "%s", value) < 0 ? -EINVAL : 0;
	if (strcmp(name, "address") == 0)
		return fsutil_pathf(cfg->address, sizeof(cfg->address), "%s", value) < 0 ? -EINVAL
		                                                                         : 0;
	if (strcmp(name, "threads") == 0)
		return parse_int(&cfg->threads, value, 1, SNAP_MAX_THREADS);
	if (strcmp(name, "restart_wait") == 0) {
		int v, r = parse_int(&v, value, 0, SNAP_MAX_RESTART_WAIT);
		cfg->restart_wait = r == 0 ? (unsigned)v : cfg->restart_wait;
		return r;
	}
	if (strcmp(name, "log_level") == 0)
		return snap_log_parse_level(&cfg->log_level, value);
	if (strcmp(name, "delta_images") == 0)
		return parse_bool(&cfg->delta_images, value);
	if (strcmp(name, "prefetch") == 0)
		return parse_bool(&cfg->prefetch, value);
	if (strcmp(name, "containerd_address") == 0)
		return fsutil_pathf(cfg->containerd_address, sizeof(cfg->containerd_address), "%s",
		                    value) < 0
		           ? -EINVAL
		           : 0;
	if (strcmp(name, "cache_max") == 0)
		return parse_bytes(&cfg->cache_max, value);
	return -ENOENT;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
	return s;
}

/* Splits "name = value" in place; strips the quotes of a quoted value. */
static int config_line(struct snap_config *cfg, char *line)
{
	char *s = trim(line);

	if (*s == 0 || *s == '#')
		return 0;
	char *eq = strchr(s, '=');
	if (!eq)
		return -EINVAL;
	*eq = 0;
	char *name = trim(s), *value = trim(eq + 1);
	size_t n = strlen(value);
	if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
		value[n - 1] = 0;
		value++;
	}
	return snap_config_set(cfg, name, value);
}

int snap_config_load(struct snap_config *cfg, const char *path, int *bad_line)
{
	char line[PATH_MAX + 64];
	int lineno = 0, r = 0;
	FILE *f = fopen(path, "re");

	*bad_line = 0;
	if (!f)
		return -errno;
	while (r == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f))
			r = -EINVAL; /* longer than any valid setting */
		else
			r = config_line(cfg, line);
	}
	if (r == 0 && ferror(f))
		r = -EIO;
	fclose(f);
	if (r < 0)
		*bad_line = lineno;
	return r;
}

int snap_config_check(const struct snap_config *cfg, const char **why)
{
	if (cfg->root[0] != '/') {
		*why = "root must be an absolute path";
		return -EINVAL;
	}
	if (strpbrk(cfg->root, ":,")) {
		*why = "root must not contain ':' or ',' (overlay mount options could not name it)";
		return -EINVAL;
	}
	if (cfg->address[0] != '/') {
		*why = "address must be an absolute socket path";
		return -EINVAL;
	}
	if (cfg->containerd_address[0] != '/') {
		*why = "containerd_address must be an absolute socket path";
		return -EINVAL;
	}
	/* sun_path holds 108 bytes with the NUL */
	if (strlen(cfg->address) > 107) {
		*why = "address longer than a unix socket path can be";
		return -EINVAL;
	}
	if (cfg->delta_images && cfg->restart_wait &&
	    strlen(cfg->root) > 107 - strlen("/fuse.sock")) {
		*why = "root too long for the FUSE fd holder's socket <root>/fuse.sock (or set "
		       "restart_wait = 0)";
		return -EINVAL;
	}
	return 0;
}
