/* Exclusive lock files (flock) that keep a second daemon off our root and
 * our socket: gRPC core unlinks an existing socket when it binds, so without
 * them a second daemon would silently steal containerd's connection. */
#ifndef DI3FS_SNAP_LOCKFILE_H
#define DI3FS_SNAP_LOCKFILE_H

/* Opens (creating) path and locks it without waiting; the lock lasts until
 * the fd is closed or the process dies. -EBUSY if another process holds it. */
int lockfile_acquire(int *fd_out, const char *path);

#endif
