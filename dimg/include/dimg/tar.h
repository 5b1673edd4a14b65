/* Tar header fields, parsed the one way every tar reader here (layer
 * recipes, the transports' archive index) parses them. */
#ifndef DIMG_TAR_H
#define DIMG_TAR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DIMG_TAR_BLOCK 512u

/* A numeric field of w bytes: octal (spaces before, spaces and NULs
 * after) or GNU base-256; -1 for anything else, negative or too large. */
int dimg_tar_num(const uint8_t *f, size_t w, uint64_t *out);
/* 1 when a header's checksum holds (as an unsigned or a signed sum). */
int dimg_tar_checksum_ok(const uint8_t h[DIMG_TAR_BLOCK]);

#ifdef __cplusplus
}
#endif
#endif
