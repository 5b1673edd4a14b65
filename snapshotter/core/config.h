/* Daemon settings: defaults, a key = value config file, command-line
 * overrides, and the checks they must pass. */
#ifndef DI3FS_SNAP_CONFIG_H
#define DI3FS_SNAP_CONFIG_H

#include <limits.h>

#define SNAP_DEFAULT_ROOT         "/var/lib/di3fs"
#define SNAP_DEFAULT_ADDRESS      "/run/di3fs/snapshotter.sock"
#define SNAP_DEFAULT_THREADS      8
#define SNAP_DEFAULT_CONTAINERD   "/run/containerd/containerd.sock"
#define SNAP_MAX_THREADS          256
#define SNAP_DEFAULT_RESTART_WAIT 30
#define SNAP_MAX_RESTART_WAIT     3600

struct snap_config {
	char root[PATH_MAX];               /* state: metadata/ and snapshots/ */
	char address[PATH_MAX];            /* the unix socket containerd connects to */
	int threads;                       /* gRPC worker threads: this many calls run at once */
	int log_level;                     /* enum snap_log_level */
	int delta_images;                  /* serve delta images through FUSE (default on) */
	char containerd_address[PATH_MAX]; /* where delta blobs are fetched from */
	unsigned long long cache_max;      /* rebuilt-file cache limit, bytes; 0 none */
	unsigned restart_wait;             /* seconds FUSE reads wait for a restart */
	int prefetch;                      /* prefetch delta images' start files (default on) */
};

void snap_config_defaults(struct snap_config *cfg);

/* Sets one setting by name (root, address, threads, log_level,
 * delta_images, containerd_address, cache_max, restart_wait, prefetch) from
 * text.
 * -ENOENT for an unknown name, -EINVAL for a bad value. */
int snap_config_set(struct snap_config *cfg, const char *name, const char *value);

/* Reads a config file: one "name = value" per line; blank lines and lines
 * starting with '#' are skipped; a value may be double-quoted. On a bad line
 * returns -EINVAL (or -ENOENT for an unknown name) and sets *bad_line. */
int snap_config_load(struct snap_config *cfg, const char *path, int *bad_line);

/* Root and address must be absolute; the root must not hold ':' or ','
 * (overlay's option syntax could not carry it). */
int snap_config_check(const struct snap_config *cfg, const char **why);

#endif
