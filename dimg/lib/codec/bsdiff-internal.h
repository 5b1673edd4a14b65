/* Private pieces of the bsdiff codec shared with patch composition
 * (bscompose.c): the header check, the packing of raw streams, and the
 * streams' compression (bsdstream.c). */
#ifndef DIMG_BSDIFF_INTERNAL_H
#define DIMG_BSDIFF_INTERNAL_H

#include <stdint.h>

#include <bzlib.h>
#include <zstd.h>

#include "dimg/codec.h"

/* How a stream is compressed: version 1 blobs hold zstd frames only;
 * version 2 names each stream's method in header bytes 12..14. */
enum { DIMG_BSD_ZSTD = 0, DIMG_BSD_BZIP2 = 1 };
/* A stream's decoded size when its method does not state it. */
#define DIMG_BSD_SIZE_UNKNOWN UINT64_MAX

/* Checks a bsdiff blob's header (docs/patch-format.md, bsdiff) and gives
 * its sizes, each stream's method and compressed length (control, diff,
 * extra), which follow the 64-byte header in that order. */
int dimg_bsd_header(const uint8_t *p, size_t len, uint64_t *oldsize, uint64_t *newsize,
                    uint8_t method[3], uint64_t zlen[3]);

/* Appends a complete bsdiff blob to out: the header, then the raw control
 * stream (varint records), the diff and the extra bytes, each compressed
 * as dimg_bsdiff does. */
int dimg_bsd_pack(uint64_t oldsize, uint64_t newsize, const struct dimg_buf *ctrl,
                  const struct dimg_buf *diff, const struct dimg_buf *extra, int level,
                  struct dimg_buf *out);

/* One stream compressed with zstd (at the caller's level, 8 MiB window)
 * and bzip2 (900 kB blocks); end keeps the smaller. A sparse stream above
 * level 3 is kept whole and zstd first runs at level 1, as a probe: the
 * caller's level runs at the end only when the probe says it may beat
 * bzip2. */
struct dimg_bsd_zs {
	ZSTD_CCtx *zc; /* the probe, or the encoder */
	bz_stream bz;
	int bz_open, level, probe;
	unsigned flags;
	uint64_t srclen;
	struct dimg_buf zout, bout, raw;
};
#define DIMG_BSD_ZS_SPARSE 0x1u /* the diff stream: mostly zeros */
int dimg_bsd_zs_begin(struct dimg_bsd_zs *s, int level, uint64_t srclen, unsigned flags);
int dimg_bsd_zs_feed(struct dimg_bsd_zs *s, const void *p, size_t n);
/* Appends the smaller output to out, giving its method and length. */
int dimg_bsd_zs_end(struct dimg_bsd_zs *s, struct dimg_buf *out, uint8_t *method, uint64_t *zlen);
void dimg_bsd_zs_free(struct dimg_bsd_zs *s);

/* One stream decoded on demand. size: the content size a zstd frame
 * states, or DIMG_BSD_SIZE_UNKNOWN. */
struct dimg_bsd_in {
	uint8_t method;
	const uint8_t *p;
	size_t len, pos;
	ZSTD_DStream *ds;
	bz_stream bz;
	int bz_open, ended;
	uint64_t size;
};
/* -EBADMSG for a stream that does not start as its method's should. */
int dimg_bsd_in_open(struct dimg_bsd_in *s, uint8_t method, const uint8_t *p, size_t len);
/* Exactly n bytes; a stream that ends or starves first is -EBADMSG. */
int dimg_bsd_in_read(struct dimg_bsd_in *s, uint8_t *dst, size_t n);
/* The stream must be at its end with no byte left over. */
int dimg_bsd_in_finish(struct dimg_bsd_in *s);
/* The whole (rest of the) stream appended to out, at most max bytes in
 * out, else -EBADMSG; then as finish. */
int dimg_bsd_in_all(struct dimg_bsd_in *s, uint64_t max, struct dimg_buf *out);
void dimg_bsd_in_free(struct dimg_bsd_in *s);

#endif
