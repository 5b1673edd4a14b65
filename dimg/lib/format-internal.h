/* Private constants of the .dimg format shared by reader and writer. */
#ifndef DIMG_FORMAT_INTERNAL_H
#define DIMG_FORMAT_INTERNAL_H

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

/* Fixed part of an entry record in the index. */
#define DIMG_REC_FIXED 84u

#endif
