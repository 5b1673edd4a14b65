/* Private pieces of the bsdiff codec shared with patch composition
 * (bscompose.c): the header check and the packing of raw streams. */
#ifndef DIMG_BSDIFF_INTERNAL_H
#define DIMG_BSDIFF_INTERNAL_H

#include <stdint.h>

#include "dimg/codec.h"

/* Checks a bsdiff blob's header (docs/patch-format.md "Header") and gives
 * its sizes and the compressed length of each stream (control, diff,
 * extra), which follow the 64-byte header in that order. */
int dimg_bsd_header(const uint8_t *p, size_t len, uint64_t *oldsize, uint64_t *newsize,
                    uint64_t zlen[3]);

/* Appends a complete bsdiff blob to out: the header, then the raw control
 * stream (varint records), the diff and the extra bytes, each compressed
 * as dimg_bsdiff does. */
int dimg_bsd_pack(uint64_t oldsize, uint64_t newsize, const struct dimg_buf *ctrl,
                  const struct dimg_buf *diff, const struct dimg_buf *extra, int level,
                  struct dimg_buf *out);

#endif
