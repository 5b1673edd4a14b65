/* The .dimg on-disk layout (docs/FORMAT.md), defined once: the named
 * offset of every fixed field of the header, the trailer and an index
 * entry record, checked to add up, and the encode/decode pairs the writer
 * and the reader both use. Like erofs_fs.h: change a field here and both
 * sides follow. All integers little-endian. */
#ifndef DIMG_LAYOUT_INTERNAL_H
#define DIMG_LAYOUT_INTERNAL_H

#include <stdint.h>

#include "dimg/dimg.h"

/* ---- header: DIMG_HEADER_SIZE bytes at offset 0 ---- */
#define DIMG_HDR_MAGIC     0u  /* 8 bytes, DIMG_MAGIC */
#define DIMG_HDR_VERSION   8u  /* u32, DIMG_FORMAT_VERSION */
#define DIMG_HDR_FLAGS     12u /* u32, zero */
#define DIMG_HDR_BASE_ID   16u /* 32 bytes: tree id of the base */
#define DIMG_HDR_TARGET_ID 48u /* 32 bytes: tree id of the target */
#define DIMG_HDR_RESERVED  80u /* 16 bytes, zero */
#define DIMG_HDR_END       96u
_Static_assert(DIMG_HDR_VERSION == DIMG_HDR_MAGIC + 8, "header: magic is 8 bytes");
_Static_assert(DIMG_HDR_BASE_ID == DIMG_HDR_FLAGS + 4, "header: flags is a u32");
_Static_assert(DIMG_HDR_TARGET_ID == DIMG_HDR_BASE_ID + 32, "header: tree ids are 32 bytes");
_Static_assert(DIMG_HDR_RESERVED == DIMG_HDR_TARGET_ID + 32, "header: tree ids are 32 bytes");
_Static_assert(DIMG_HDR_END == DIMG_HDR_RESERVED + 16 && DIMG_HDR_END == DIMG_HEADER_SIZE,
               "header fields add up to DIMG_HEADER_SIZE");

struct dimg_header {
	uint32_t version;
	uint8_t base_id[32], target_id[32];
};
void dimg_header_encode(uint8_t h[DIMG_HEADER_SIZE], const uint8_t base_id[32],
                        const uint8_t target_id[32]);
/* -EBADMSG (magic, flags or reserved bytes), -ENOTSUP (version). */
int dimg_header_decode(struct dimg_header *out, const uint8_t h[DIMG_HEADER_SIZE]);

/* ---- trailer: the last DIMG_TRAILER_SIZE bytes ---- */
#define DIMG_TRL_INDEX_OFF  0u  /* u64: where the compressed index starts */
#define DIMG_TRL_INDEX_LEN  8u  /* u64: its compressed length */
#define DIMG_TRL_INDEX_RAW  16u /* u64: its decompressed length */
#define DIMG_TRL_INDEX_XXH3 24u /* u64: XXH3-64 of the compressed index */
#define DIMG_TRL_ENTRIES    32u /* u64: entries of the complete target tree */
#define DIMG_TRL_DICT_LEN   40u /* u64: the dictionary's length, 0 if none */
#define DIMG_TRL_DICT_XXH3  48u /* u64: its XXH3-64, 0 if none */
#define DIMG_TRL_MAGIC      56u /* 8 bytes, DIMG_TRAILER_MAGIC */
#define DIMG_TRL_END        64u
_Static_assert(DIMG_TRL_INDEX_LEN == DIMG_TRL_INDEX_OFF + 8 &&
                   DIMG_TRL_INDEX_RAW == DIMG_TRL_INDEX_LEN + 8 &&
                   DIMG_TRL_INDEX_XXH3 == DIMG_TRL_INDEX_RAW + 8 &&
                   DIMG_TRL_ENTRIES == DIMG_TRL_INDEX_XXH3 + 8 &&
                   DIMG_TRL_DICT_LEN == DIMG_TRL_ENTRIES + 8 &&
                   DIMG_TRL_DICT_XXH3 == DIMG_TRL_DICT_LEN + 8 &&
                   DIMG_TRL_MAGIC == DIMG_TRL_DICT_XXH3 + 8,
               "trailer: every field but the magic is a u64");
_Static_assert(DIMG_TRL_END == DIMG_TRL_MAGIC + 8 && DIMG_TRL_END == DIMG_TRAILER_SIZE,
               "trailer fields add up to DIMG_TRAILER_SIZE");

struct dimg_trailer {
	uint64_t index_off, index_len, index_raw_len, index_xxh3;
	uint64_t entries, dict_len, dict_xxh3;
};
void dimg_trailer_encode(uint8_t t[DIMG_TRAILER_SIZE], const struct dimg_trailer *in);
/* -EBADMSG when the magic is wrong; values are not checked here. */
int dimg_trailer_decode(struct dimg_trailer *out, const uint8_t t[DIMG_TRAILER_SIZE]);

/* ---- index entry record: fixed part (after the op byte) ---- */
#define DIMG_REC_TYPE      0u  /* u8: enum dimg_type */
#define DIMG_REC_PAYLOAD   1u  /* u8: enum dimg_payload */
#define DIMG_REC_CODEC     2u  /* u8: enum dimg_codec */
#define DIMG_REC_FLAGS     3u  /* u8: DIMG_ENTRY_* */
#define DIMG_REC_MODE      4u  /* u32 */
#define DIMG_REC_UID       8u  /* u32 */
#define DIMG_REC_GID       12u /* u32 */
#define DIMG_REC_MTIME     16u /* u64: seconds (two's complement) */
#define DIMG_REC_MTIME_NS  24u /* u32 */
#define DIMG_REC_RDEV_MAJ  28u /* u32 */
#define DIMG_REC_RDEV_MIN  32u /* u32 */
#define DIMG_REC_SIZE      36u /* u64 */
#define DIMG_REC_BLOB_OFF  44u /* u64 */
#define DIMG_REC_BLOB_LEN  52u /* u64 */
#define DIMG_REC_BLOB_XXH3 60u /* u64 */
#define DIMG_REC_PATH_LEN  68u /* u32 */
#define DIMG_REC_LINK_LEN  72u /* u32 */
#define DIMG_REC_SRC_LEN   76u /* u32 */
#define DIMG_REC_NXATTRS   80u /* u32 */
#define DIMG_REC_FIXED     84u
_Static_assert(DIMG_REC_MODE == DIMG_REC_FLAGS + 1 && DIMG_REC_UID == DIMG_REC_MODE + 4 &&
                   DIMG_REC_GID == DIMG_REC_UID + 4 && DIMG_REC_MTIME == DIMG_REC_GID + 4 &&
                   DIMG_REC_MTIME_NS == DIMG_REC_MTIME + 8 &&
                   DIMG_REC_RDEV_MAJ == DIMG_REC_MTIME_NS + 4 &&
                   DIMG_REC_RDEV_MIN == DIMG_REC_RDEV_MAJ + 4 &&
                   DIMG_REC_SIZE == DIMG_REC_RDEV_MIN + 4,
               "record: metadata fields are contiguous");
_Static_assert(DIMG_REC_BLOB_OFF == DIMG_REC_SIZE + 8 &&
                   DIMG_REC_BLOB_LEN == DIMG_REC_BLOB_OFF + 8 &&
                   DIMG_REC_BLOB_XXH3 == DIMG_REC_BLOB_LEN + 8 &&
                   DIMG_REC_PATH_LEN == DIMG_REC_BLOB_XXH3 + 8 &&
                   DIMG_REC_LINK_LEN == DIMG_REC_PATH_LEN + 4 &&
                   DIMG_REC_SRC_LEN == DIMG_REC_LINK_LEN + 4 &&
                   DIMG_REC_NXATTRS == DIMG_REC_SRC_LEN + 4 &&
                   DIMG_REC_FIXED == DIMG_REC_NXATTRS + 4,
               "record: blob and length fields add up to DIMG_REC_FIXED");

/* String lengths and xattr count of a record (the strings follow it). */
struct dimg_rec_lens {
	uint32_t path, link, src, nxattrs;
};
/* The fixed part of e's record; lens gives the lengths the writer stores. */
void dimg_rec_encode(uint8_t p[DIMG_REC_FIXED], const struct dimg_entry *e,
                     const struct dimg_rec_lens *lens);
/* Fills e's fixed fields (the rest of e untouched) and lens. */
void dimg_rec_decode(struct dimg_entry *e, struct dimg_rec_lens *lens,
                     const uint8_t p[DIMG_REC_FIXED]);

/* Each xattr of a record: u32 name length, u32 value length, then both. */
#define DIMG_XATTR_HDR 8u

#endif
