/* Tar headers as image layers hold them (ustar, GNU, PAX), parsed the one
 * way every tar reader here parses them: the layer recipe recorder
 * (libdimg), the recipe writer models (packer), the transports' archive
 * index. The header block's fields, its numbers, checksum and PAX records. */
#ifndef DIMG_TAR_H
#define DIMG_TAR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DIMG_TAR_BLOCK 512u

/* The ustar header block: offsets of its fields (widths in comments). */
#define DIMG_TAR_NAME     0   /* 100 */
#define DIMG_TAR_MODE     100 /* 8 */
#define DIMG_TAR_UID      108 /* 8 */
#define DIMG_TAR_GID      116 /* 8 */
#define DIMG_TAR_SIZE     124 /* 12 */
#define DIMG_TAR_MTIME    136 /* 12 */
#define DIMG_TAR_CHKSUM   148 /* 8 */
#define DIMG_TAR_TYPE     156 /* 1 */
#define DIMG_TAR_LINKNAME 157 /* 100 */
#define DIMG_TAR_MAGIC    257 /* 6, then a 2-byte version */
#define DIMG_TAR_UNAME    265 /* 32 */
#define DIMG_TAR_GNAME    297 /* 32 */
#define DIMG_TAR_DEVMAJOR 329 /* 8 */
#define DIMG_TAR_DEVMINOR 337 /* 8 */
#define DIMG_TAR_PREFIX   345 /* 155, then 12 unused */
_Static_assert(DIMG_TAR_PREFIX + 155 + 12 == DIMG_TAR_BLOCK, "ustar header layout");

/* A numeric field of w bytes: octal (spaces before, spaces and NULs
 * after) or GNU base-256; 0, or -1 for anything else, negative or too
 * large. */
int dimg_tar_num(const uint8_t *f, size_t w, uint64_t *out);

/* 1 when a header's checksum holds (as an unsigned or a signed sum, as
 * some old writers had it, with the field counted as spaces). */
int dimg_tar_checksum_ok(const uint8_t h[DIMG_TAR_BLOCK]);

/* The PAX record at *i of p[0..n): *kv its "key=value" (*kvn bytes, no
 * newline), *i moved past it. 0 at the end or at a malformed length. */
int dimg_tar_pax_next(const uint8_t *p, size_t n, size_t *i, const uint8_t **kv, size_t *kvn);

/* The size the last "size=" record of PAX data gives the next entry, or
 * -1; *sparse set if a "GNU.sparse." record says that entry's data is a
 * sparse map and segments, not the file's bytes. */
int64_t dimg_tar_pax_size(const uint8_t *p, size_t n, int *sparse);

#ifdef __cplusplus
}
#endif
#endif
