/* Daemon logging to stderr: each line is formatted whole and written with a
 * single write(2), so lines from concurrent RPC threads never interleave. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int snap_log_parse_level(int *out, const char *name)
{
	for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

static size_t log_prefix(char *buf, size_t cap, int level)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ", tm.tm_year + 1900,
	                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	                 ts.tv_nsec / 1000000, level_names[level]);
	return n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
}

void snap_logf(const struct snap_log *lg, int level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int max = lg ? lg->level : SNAP_LOG_INFO;

	if (level > max)
		return;
	if (level < SNAP_LOG_ERROR)
		level = SNAP_LOG_ERROR;
	if (level > SNAP_LOG_DEBUG)
		level = SNAP_LOG_DEBUG;
	size_t off = log_prefix(line, sizeof(line), level);
	va_start(ap, fmt);
	int n = vsnprintf(line + off, sizeof(line) - off - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t end = off + (size_t)n;
	if (end > sizeof(line) - 2)
		end = sizeof(line) - 2;
	for (size_t i = off; i < end; i++) {
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	}
	line[end++] = '\n';
	int saved = errno;
	ssize_t w = write(STDERR_FILENO, line, end);
	(void)w; /* nowhere left to report a failed log write */
	errno = saved;
}
