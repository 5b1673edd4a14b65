/* Files read and written so that faults stay errors: a file's bytes in
 * memory without a SIGBUS on a full tmpfs, and temporaries that a writer
 * killed midway leaves only until the next run. */
#ifndef DIMG_FILEIO_H
#define DIMG_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The whole content of the regular file fd, read-only, in *p (NULL when
 * empty) and *len: a private mapping of the file when the file system
 * backs every byte of it, otherwise an anonymous copy of its data runs
 * (holes read as zeros without costing memory). The caller releases it with
 * dimg_file_unload; fd may be closed at once. A file truncated or
 * hole-punched by someone else while mapped can still fault. */
int dimg_file_load(int fd, const uint8_t **p, size_t *len);
void dimg_file_unload(const uint8_t *p, size_t len);

/* ---- temporaries named after their writer ----
 *
 * A temporary's name is PREFIX "<pid>-<start>-<6 random>": the writer's
 * PID and its start time (field 22 of /proc/PID/stat, so that a reused PID
 * is not mistaken for it). While it lives the writer also holds an flock
 * on the temporary, which covers writers in another PID namespace or on
 * another host. Output temporaries use PREFIX ".NAME.tmp-" next to NAME. */

/* Creates a temporary directory (dir != 0, mode 0700) or file (mode 0600)
 * named PREFIX + owner tag in dirfd, locked; *name (malloc'd) is the name
 * and *fd an open fd holding the lock (O_RDONLY for a directory, O_RDWR for
 * a file): keep it open until the temporary is renamed or removed. */
int dimg_temp_create(int dirfd, const char *prefix, int dir, char **name, int *fd);

/* Removes what dirfd holds under PREFIX + owner tag (and temporaries of
 * those, ".{that name}.tmp-" + tag, as nested writes make) whose writer is
 * gone: no live process has the PID and start time, the lock is free, and
 * it belongs to this user. Anything else, a live writer's above all, is
 * left alone. Returns how many were removed, or -errno. */
int dimg_temp_reclaim(int dirfd, const char *prefix);

#ifdef __cplusplus
}
#endif
#endif
