/* Filesystem helpers for snapshot directories: mkdir -p, rm -rf and du, all
 * staying on one filesystem and never changing the process's cwd. */
#ifndef DI3FS_SNAP_FSUTIL_H
#define DI3FS_SNAP_FSUTIL_H

#include <stdint.h>
#include <sys/types.h>

/* Creates path and its missing parents with mode; existing dirs are fine. */
int fsutil_mkdir_p(const char *path, mode_t mode);

/* Removes path and everything below it; never descends into another mount
 * (a mount point below path makes it fail with -EBUSY). Missing path: 0. */
int fsutil_rmtree(const char *path);

/* Disk use below path as du counts it: allocated bytes (st_blocks * 512) and
 * inodes, each hardlinked inode once. */
int fsutil_du(int64_t *bytes, int64_t *inodes, const char *path);

/* fsyncs directory path, making renames and creations in it durable. */
int fsutil_fsync_dir(const char *path);

/* snprintf into buf that fails with -ENAMETOOLONG instead of truncating. */
int fsutil_pathf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
