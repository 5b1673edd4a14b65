/* Files read and written so that faults stay errors: a file's bytes in
 * memory without a SIGBUS on a full tmpfs. */
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

#ifdef __cplusplus
}
#endif
#endif
