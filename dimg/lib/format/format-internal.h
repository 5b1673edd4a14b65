/* Private constants of the .dimg format shared by reader and writer. */
#ifndef DIMG_FORMAT_INTERNAL_H
#define DIMG_FORMAT_INTERNAL_H

#include "dimg/codec.h"

#define DIMG_MAGIC                                                                                 \
	"\x89"                                                                                     \
	"DIM\r\n\x1a\n"
#define DIMG_TRAILER_MAGIC "DIMGIDX\n"

/* Index ops (docs/FORMAT.md "Index"). */
enum {
	DIMG_OP_END = 0,
	DIMG_OP_KEEP = 1,
	DIMG_OP_SKIP = 2,
	DIMG_OP_ENTRY = 3,
};

struct dimg_reader;
struct dimg_entry;
/* Whether the index keeps base entry b as target entry t (a KEEP run):
 * same path, metadata and content, a regular file SAME from its own path
 * (or empty). The writer and the counts decide it here, once. */
int dimg_entry_kept(const struct dimg_entry *b, const struct dimg_entry *t);
/* Streams a FULL entry's content: its zstd frame, with the delta's
 * dictionary when the entry's ZDICT flag says so (-EBADMSG when the delta
 * has none). Not verified here: dimg_reader_rebuild hashes the output. */
int dimg_reader_decode_full(const struct dimg_reader *r, const struct dimg_entry *e,
                            dimg_write_fn sink, void *sink_ctx);

#endif
