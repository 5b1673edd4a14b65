/* Encode/decode of the .dimg's fixed-layout parts (layout-internal.h): the
 * one place that knows where each field of the header, the trailer and an
 * entry record sits. */
#include <errno.h>
#include <string.h>

#include "endian-internal.h"
#include "format-internal.h"
#include "layout-internal.h"

void dimg_header_encode(uint8_t h[DIMG_HEADER_SIZE], const uint8_t base_id[32],
                        const uint8_t target_id[32])
{
	memset(h, 0, DIMG_HEADER_SIZE);
	memcpy(h + DIMG_HDR_MAGIC, DIMG_MAGIC, 8);
	le32enc(h + DIMG_HDR_VERSION, DIMG_FORMAT_VERSION);
	memcpy(h + DIMG_HDR_BASE_ID, base_id, 32);
	memcpy(h + DIMG_HDR_TARGET_ID, target_id, 32);
}

int dimg_header_decode(struct dimg_header *out, const uint8_t h[DIMG_HEADER_SIZE])
{
	if (memcmp(h + DIMG_HDR_MAGIC, DIMG_MAGIC, 8) != 0)
		return -EBADMSG;
	out->version = le32dec(h + DIMG_HDR_VERSION);
	if (out->version != DIMG_FORMAT_VERSION)
		return -ENOTSUP;
	if (le32dec(h + DIMG_HDR_FLAGS) != 0 || le64dec(h + DIMG_HDR_RESERVED) != 0 ||
	    le64dec(h + DIMG_HDR_RESERVED + 8) != 0)
		return -EBADMSG;
	memcpy(out->base_id, h + DIMG_HDR_BASE_ID, 32);
	memcpy(out->target_id, h + DIMG_HDR_TARGET_ID, 32);
	return 0;
}

void dimg_trailer_encode(uint8_t t[DIMG_TRAILER_SIZE], const struct dimg_trailer *in)
{
	le64enc(t + DIMG_TRL_INDEX_OFF, in->index_off);
	le64enc(t + DIMG_TRL_INDEX_LEN, in->index_len);
	le64enc(t + DIMG_TRL_INDEX_RAW, in->index_raw_len);
	le64enc(t + DIMG_TRL_INDEX_XXH3, in->index_xxh3);
	le64enc(t + DIMG_TRL_ENTRIES, in->entries);
	le64enc(t + DIMG_TRL_DICT_LEN, in->dict_len);
	le64enc(t + DIMG_TRL_DICT_XXH3, in->dict_xxh3);
	memcpy(t + DIMG_TRL_MAGIC, DIMG_TRAILER_MAGIC, 8);
}

int dimg_trailer_decode(struct dimg_trailer *out, const uint8_t t[DIMG_TRAILER_SIZE])
{
	if (memcmp(t + DIMG_TRL_MAGIC, DIMG_TRAILER_MAGIC, 8) != 0)
		return -EBADMSG;
	out->index_off = le64dec(t + DIMG_TRL_INDEX_OFF);
	out->index_len = le64dec(t + DIMG_TRL_INDEX_LEN);
	out->index_raw_len = le64dec(t + DIMG_TRL_INDEX_RAW);
	out->index_xxh3 = le64dec(t + DIMG_TRL_INDEX_XXH3);
	out->entries = le64dec(t + DIMG_TRL_ENTRIES);
	out->dict_len = le64dec(t + DIMG_TRL_DICT_LEN);
	out->dict_xxh3 = le64dec(t + DIMG_TRL_DICT_XXH3);
	return 0;
}

void dimg_rec_encode(uint8_t p[DIMG_REC_FIXED], const struct dimg_entry *e,
                     const struct dimg_rec_lens *lens)
{
	p[DIMG_REC_TYPE] = e->type;
	p[DIMG_REC_PAYLOAD] = e->payload;
	p[DIMG_REC_CODEC] = e->codec;
	p[DIMG_REC_FLAGS] = e->flags;
	le32enc(p + DIMG_REC_MODE, e->mode);
	le32enc(p + DIMG_REC_UID, e->uid);
	le32enc(p + DIMG_REC_GID, e->gid);
	le64enc(p + DIMG_REC_MTIME, (uint64_t)e->mtime_sec);
	le32enc(p + DIMG_REC_MTIME_NS, e->mtime_nsec);
	le32enc(p + DIMG_REC_RDEV_MAJ, e->rdev_major);
	le32enc(p + DIMG_REC_RDEV_MIN, e->rdev_minor);
	le64enc(p + DIMG_REC_SIZE, e->size);
	le64enc(p + DIMG_REC_BLOB_OFF, e->blob_off);
	le64enc(p + DIMG_REC_BLOB_LEN, e->blob_len);
	le64enc(p + DIMG_REC_BLOB_XXH3, e->blob_xxh3);
	le32enc(p + DIMG_REC_PATH_LEN, lens->path);
	le32enc(p + DIMG_REC_LINK_LEN, lens->link);
	le32enc(p + DIMG_REC_SRC_LEN, lens->src);
	le32enc(p + DIMG_REC_NXATTRS, lens->nxattrs);
}

void dimg_rec_decode(struct dimg_entry *e, struct dimg_rec_lens *lens,
                     const uint8_t p[DIMG_REC_FIXED])
{
	e->type = p[DIMG_REC_TYPE];
	e->payload = p[DIMG_REC_PAYLOAD];
	e->codec = p[DIMG_REC_CODEC];
	e->flags = p[DIMG_REC_FLAGS];
	e->mode = le32dec(p + DIMG_REC_MODE);
	e->uid = le32dec(p + DIMG_REC_UID);
	e->gid = le32dec(p + DIMG_REC_GID);
	e->mtime_sec = (int64_t)le64dec(p + DIMG_REC_MTIME);
	e->mtime_nsec = le32dec(p + DIMG_REC_MTIME_NS);
	e->rdev_major = le32dec(p + DIMG_REC_RDEV_MAJ);
	e->rdev_minor = le32dec(p + DIMG_REC_RDEV_MIN);
	e->size = le64dec(p + DIMG_REC_SIZE);
	e->blob_off = le64dec(p + DIMG_REC_BLOB_OFF);
	e->blob_len = le64dec(p + DIMG_REC_BLOB_LEN);
	e->blob_xxh3 = le64dec(p + DIMG_REC_BLOB_XXH3);
	lens->path = le32dec(p + DIMG_REC_PATH_LEN);
	lens->link = le32dec(p + DIMG_REC_LINK_LEN);
	lens->src = le32dec(p + DIMG_REC_SRC_LEN);
	lens->nxattrs = le32dec(p + DIMG_REC_NXATTRS);
}
