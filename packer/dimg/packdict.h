/* The shared zstd dictionary of a delta's small full blobs: trained on
 * their contents, kept only when it makes the delta smaller. */
#ifndef DI3FS_PACKDICT_H
#define DI3FS_PACKDICT_H

#include <stddef.h>
#include <stdint.h>

#include "dimg/codec.h"
#include "dimg/dimg.h"

/* Files up to this size are candidates; their contents, taken in path
 * order, are sampled up to PACKDICT_MAX_SAMPLES bytes in all. */
#define PACKDICT_MAX_FILE    (64u << 10)
#define PACKDICT_MAX_SAMPLES (16u << 20)
/* Fewer files than this, or a dictionary under PACKDICT_MIN_DICT bytes
 * (samples / 32, the size it gets, at most
 * PACKDICT_MAX_DICT), is not worth training. */
#define PACKDICT_MIN_FILES 8u
#define PACKDICT_MIN_DICT  1024u
#define PACKDICT_MAX_DICT  (110u << 10)

struct packdict_item {
	const uint8_t *data; /* the file's content (inside the samples) */
	size_t len;
	struct dimg_buf blob; /* out: the frame to store */
	uint8_t flags;        /* out: DIMG_ENTRY_ZDICT when blob needs the dictionary */
	int done;             /* out: blob is set */
};

/* Trains a dictionary on the n items (their contents back to back in
 * samples), compresses each with and without it on jobs threads, and keeps
 * it when the dictionary plus each item's smaller frame come to fewer bytes
 * than the plain frames: *dict is then the dictionary (caller frees), else
 * NULL. Every item then has done set and its blob (plain when no
 * dictionary), unless no dictionary could be trained at all (items left
 * untouched). Same items, same bytes, whatever jobs is. */
int packdict_encode(struct packdict_item *it, size_t n, const uint8_t *samples, int level,
                    unsigned jobs, struct dimg_zdict **dict);

#endif
