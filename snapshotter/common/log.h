/* Daemon logging: one line per event on stderr, with time and level; the
 * level lives in a struct the caller owns (no global state). */
#ifndef DI3FS_SNAP_LOG_H
#define DI3FS_SNAP_LOG_H

enum snap_log_level {
	SNAP_LOG_ERROR = 0,
	SNAP_LOG_WARN = 1,
	SNAP_LOG_INFO = 2,
	SNAP_LOG_DEBUG = 3,
};

struct snap_log {
	int level; /* lines above this level are dropped */
};

/* Parses "error", "warn", "info" or "debug"; -EINVAL otherwise. */
int snap_log_parse_level(int *out, const char *name);

/* Writes one line (control characters in the message become '?', so a key
 * with a newline cannot forge a second line). lg may be NULL: info level. */
void snap_logf(const struct snap_log *lg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define snap_err(lg, ...)   snap_logf((lg), SNAP_LOG_ERROR, __VA_ARGS__)
#define snap_warn(lg, ...)  snap_logf((lg), SNAP_LOG_WARN, __VA_ARGS__)
#define snap_info(lg, ...)  snap_logf((lg), SNAP_LOG_INFO, __VA_ARGS__)
#define snap_debug(lg, ...) snap_logf((lg), SNAP_LOG_DEBUG, __VA_ARGS__)

#endif
