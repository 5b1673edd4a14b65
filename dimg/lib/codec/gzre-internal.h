/* Private parts of the gzip-recompress codec (codec 3) shared by its
 * encoder (gzre_encode.c) and decoder (gzre.c): the blob layout and the
 * gzip member parser. docs/patch-format.md "gzip-recompress (codec 3)" is the
 * spec. */
#ifndef DIMG_GZRE_INTERNAL_H
#define DIMG_GZRE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "dimg/codec.h"

#define GZRE_VERSION 1u
/* Decompressed content of either side; bounds apply memory (the old side's
 * content is held whole) and the encoder's search. */
#define GZRE_MAX_RAW     ((uint64_t)64 << 20)
#define GZRE_MAX_MEMBERS 4096u
#define GZRE_MAX_GZHDR   (1u << 20)

/* Inner payloads (the blob's inner codec byte). */
enum { GZRE_INNER_ZSTD = 0 };

/* zlib deflate parameters of one member. */
struct gzre_params {
	uint8_t level, wbits, memlevel, strategy;
};

/* One gzip member as found in a file or a blob. */
struct gzre_member {
	const uint8_t *hdr; /* the gzip header bytes (10 + optional fields) */
	uint32_t hdrlen;
	const uint8_t *def; /* the deflate stream (parse only) */
	size_t deflen;
	uint64_t rawlen; /* decompressed length */
	struct gzre_params p;
	/* Content offsets (from the member's start, increasing, each inside
	 * the member) where a deflate block must end: GNU gzip ends blocks
	 * where zlib would not, and zlib's Z_BLOCK flush ends one there. */
	uint64_t *ends;
	uint32_t nends;
};

/* A gzip file split into members, their content concatenated in raw. */
struct gzre_file {
	struct gzre_member *m;
	uint32_t nm;
	struct dimg_buf raw;
	const uint8_t *tail; /* bytes after the last member */
	size_t taillen;
};

/* Splits buf into gzip members (each with a valid header, a complete
 * deflate stream and a trailer whose CRC-32 and length match). Parsing
 * stops at the first byte where no valid member starts: that and what
 * follows is the tail. Fails with -ENODATA when buf does not start with a
 * member or the content passes GZRE_MAX_RAW. Pure function of buf: the
 * encoder and the decoder see the same content. */
int gzre_parse(struct gzre_file *f, const uint8_t *buf, size_t len);
void gzre_file_free(struct gzre_file *f);

/* Fills m->ends with where m's deflate blocks end (the last excluded);
 * -ENODATA when two ends coincide (an empty block zlib would not make). */
int gzre_block_ends(struct gzre_member *m);

/* A streaming deflater for one member's content, with the member's
 * parameters and block ends; output goes to fn (its first error stops
 * everything and is returned). Apply and the encoder's search share it, so
 * what the search accepted is what apply makes. */
struct gzre_def {
	z_stream z;
	const struct gzre_member *m;
	dimg_write_fn fn;
	void *ctx;
	uint64_t pos;  /* content bytes fed */
	uint32_t next; /* index of the next block end */
	uLong crc;
	uint8_t *buf;
};
int gzre_def_init(struct gzre_def *d, const struct gzre_member *m, dimg_write_fn fn, void *ctx);
/* Feeds n content bytes; more than the member holds is -EBADMSG. */
int gzre_def_feed(struct gzre_def *d, const uint8_t *p, size_t n);
/* Ends the deflate stream (all content must have been fed). */
int gzre_def_finish(struct gzre_def *d);
void gzre_def_free(struct gzre_def *d);

/* A sink comparing what it is given with the expected bytes: -EBADMSG at
 * the first byte that differs or runs past them. */
struct gzre_cmp {
	const uint8_t *want;
	size_t len, pos;
};
int gzre_cmp_write(void *ctx, const void *p, size_t n);

/* The encoder's check of a blob it made for nf (from of): the blob parses,
 * names exactly nf's members (headers, parameters, block ends, content
 * lengths) and tail, and its inner payload gives back nf's content from
 * of's. What deflating that content with those members makes was compared
 * byte for byte during the search, with the deflater apply uses; so the
 * blob decodes to the new file. -EBADMSG when anything differs. */
int gzre_check_blob(const uint8_t *blob, size_t len, const struct gzre_file *of,
                    const struct gzre_file *nf);

/* 1 when the parameters are ones the format allows. */
int gzre_params_valid(const struct gzre_params *p);

#endif
