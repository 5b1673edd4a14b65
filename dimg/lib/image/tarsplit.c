/* Layer recipes (tar-split style): a layer's uncompressed tar stream
 * recorded as raw bytes (headers, extension headers, padding, end blocks,
 * trailing bytes) and references to regular files' contents by size and
 * SHA-256, so the exact stream can be rebuilt from the contents. Every
 * byte is either raw or inside a referenced region, so the recipe is exact
 * even where this parser misreads the tar: it then just keeps more raw. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cas-internal.h"
#include "dimg/hash.h"
#include "dimg/tar.h"
#include "endian-internal.h"

#define TS_BLOCK   DIMG_TAR_BLOCK
#define TS_RAW_MAX (64u << 10) /* raw bytes per record */
#define TS_PAX_MAX (1u << 20)  /* pax data parsed for a size; larger: kept raw */

enum ts_mode {
	TS_HDR,   /* collecting a header block */
	TS_FILE,  /* a regular file's content: referenced */
	TS_DATA,  /* other data (extension headers, odd entries): raw */
	TS_PAD,   /* padding after data: raw */
	TS_TRAIL, /* lost the framing: everything else raw */
};

struct dimg_tarsplit {
	FILE *out;
	uint64_t out_off;
	enum ts_mode mode;
	uint8_t hdr[TS_BLOCK];
	size_t hlen;
	uint64_t left;    /* bytes left in the current data or padding */
	uint64_t pad;     /* padding after the current data */
	uint64_t fsize;   /* size of the referenced file at hand */
	int pax;          /* the data at hand is a pax 'x' header's */
	int64_t pax_size; /* size override for the next entry, -1 none */
	int pax_sparse;   /* the next entry's data is a GNU sparse map and segments */
	uint8_t *paxbuf;  /* collected pax data */
	size_t paxlen;
	struct dimg_sha256 *h;
	uint8_t raw[TS_RAW_MAX];
	size_t rawlen;
	int err;
};

static int ts_put(struct dimg_tarsplit *t, const void *p, size_t n)
{
	if (n && fwrite(p, 1, n, t->out) != n)
		return -EIO;
	t->out_off += n;
	return 0;
}

static int ts_flush_raw(struct dimg_tarsplit *t)
{
	uint8_t rec[5];
	if (!t->rawlen)
		return 0;
	rec[0] = DIMG_RECIPE_RAW;
	le32enc(rec + 1, (uint32_t)t->rawlen);
	int r = ts_put(t, rec, sizeof(rec));
	if (r == 0)
		r = ts_put(t, t->raw, t->rawlen);
	t->rawlen = 0;
	return r;
}

static int ts_raw(struct dimg_tarsplit *t, const uint8_t *p, size_t n)
{
	while (n) {
		size_t k = TS_RAW_MAX - t->rawlen < n ? TS_RAW_MAX - t->rawlen : n;
		memcpy(t->raw + t->rawlen, p, k);
		t->rawlen += k;
		p += k;
		n -= k;
		if (t->rawlen == TS_RAW_MAX) {
			int r = ts_flush_raw(t);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int ts_file_record(struct dimg_tarsplit *t)
{
	uint8_t rec[41];
	int r = ts_flush_raw(t);
	rec[0] = DIMG_RECIPE_FILE;
	le64enc(rec + 1, t->fsize);
	dimg_sha256_final(t->h, rec + 9);
	return r < 0 ? r : ts_put(t, rec, sizeof(rec));
}

static void ts_start_data(struct dimg_tarsplit *t, enum ts_mode m, uint64_t size)
{
	t->mode = size ? m : TS_PAD;
	t->left = size;
	t->pad = (TS_BLOCK - size % TS_BLOCK) % TS_BLOCK;
	t->fsize = size;
	if (!size)
		t->left = t->pad;
}

/* A full header block is in t->hdr: emit it raw, decide what follows. */
static int ts_header(struct dimg_tarsplit *t)
{
	static const uint8_t zero[TS_BLOCK];
	uint64_t size;
	int r = ts_raw(t, t->hdr, TS_BLOCK);
	t->hlen = 0;
	if (r < 0 || memcmp(t->hdr, zero, TS_BLOCK) == 0)
		return r;
	if (!dimg_tar_checksum_ok(t->hdr) || dimg_tar_num(t->hdr + DIMG_TAR_SIZE, 12, &size) < 0) {
		t->mode = TS_TRAIL;
		return 0;
	}
	uint8_t type = t->hdr[DIMG_TAR_TYPE];
	int sparse = 0;
	if (type != 'x' && type != 'g' && type != 'L' && type != 'K') {
		if (t->pax_size >= 0)
			size = (uint64_t)t->pax_size;
		sparse = t->pax_sparse;
		t->pax_size = -1;
		t->pax_sparse = 0;
	}
	t->pax = type == 'x';
	t->paxlen = 0;
	switch (type) {
	case '0':
	case '\0':
	case '7':
		/* a sparse file's data is not its content: kept raw */
		ts_start_data(t, sparse ? TS_DATA : TS_FILE, size);
		return 0;
	case '2':
	case '3':
	case '4':
	case '5':
	case '6':
		ts_start_data(t, TS_DATA, 0); /* no data, whatever the size says */
		return 0;
	default: /* extension headers, hardlinks with data, unknown types */
		ts_start_data(t, TS_DATA, size);
		return 0;
	}
}

static int ts_data_done(struct dimg_tarsplit *t)
{
	int r = 0;
	if (t->mode == TS_FILE)
		r = ts_file_record(t);
	if (t->pax) {
		t->pax_size = -1;
		t->pax_sparse = 0;
		if (t->paxlen < TS_PAX_MAX)
			t->pax_size = dimg_tar_pax_size(t->paxbuf, t->paxlen, &t->pax_sparse);
		t->pax = 0;
	}
	t->mode = t->pad ? TS_PAD : TS_HDR;
	t->left = t->pad;
	return r;
}

static int ts_data(struct dimg_tarsplit *t, const uint8_t *p, size_t k)
{
	if (t->mode == TS_FILE) {
		dimg_sha256_update(t->h, p, k);
		return 0;
	}
	if (t->pax && t->paxlen + k < TS_PAX_MAX) {
		memcpy(t->paxbuf + t->paxlen, p, k);
		t->paxlen += k;
	} else if (t->pax) {
		t->paxlen = TS_PAX_MAX; /* too big to parse: size unknown */
	}
	return ts_raw(t, p, k);
}

static int ts_step(struct dimg_tarsplit *t, const uint8_t *p, size_t n, size_t *used)
{
	size_t k;
	switch (t->mode) {
	case TS_HDR:
		k = TS_BLOCK - t->hlen < n ? TS_BLOCK - t->hlen : n;
		memcpy(t->hdr + t->hlen, p, k);
		t->hlen += k;
		*used = k;
		return t->hlen == TS_BLOCK ? ts_header(t) : 0;
	case TS_FILE:
	case TS_DATA:
		k = t->left < n ? (size_t)t->left : n;
		*used = k;
		t->left -= k;
		int r = ts_data(t, p, k);
		return r == 0 && t->left == 0 ? ts_data_done(t) : r;
	case TS_PAD:
		k = t->left < n ? (size_t)t->left : n;
		*used = k;
		t->left -= k;
		if (t->left == 0)
			t->mode = TS_HDR;
		return ts_raw(t, p, k);
	case TS_TRAIL:
	default:
		*used = n;
		return ts_raw(t, p, n);
	}
}

int dimg_tarsplit_feed(struct dimg_tarsplit *t, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n && t->err == 0) {
		size_t used = 0;
		t->err = ts_step(t, p, n, &used);
		p += used;
		n -= used;
	}
	return t->err;
}

void dimg_tarsplit_begin(struct dimg_tarsplit *t)
{
	uint8_t junk[32];
	t->mode = TS_HDR;
	t->hlen = 0;
	t->left = t->pad = 0;
	t->pax = 0;
	t->pax_size = -1;
	t->pax_sparse = 0;
	t->paxlen = 0;
	t->rawlen = 0;
	t->err = 0;
	dimg_sha256_final(t->h, junk);
}

int dimg_tarsplit_end(struct dimg_tarsplit *t, uint64_t *off, uint64_t *len, uint64_t start)
{
	static const uint8_t end = DIMG_RECIPE_END;
	int r = t->err;
	/* A stream cut inside a header or a file: what came is raw. */
	if (r == 0 && t->mode == TS_HDR && t->hlen)
		r = ts_raw(t, t->hdr, t->hlen);
	if (r == 0 && t->mode == TS_FILE && t->fsize - t->left)
		r = -EBADMSG; /* truncated content: the layer was refused anyway */
	if (r == 0)
		r = ts_flush_raw(t);
	if (r == 0)
		r = ts_put(t, &end, 1);
	if (r == 0 && fflush(t->out) != 0)
		r = -EIO;
	*off = start;
	*len = t->out_off - start;
	return r;
}

uint64_t dimg_tarsplit_offset(const struct dimg_tarsplit *t)
{
	return t->out_off;
}

int dimg_tarsplit_new(struct dimg_tarsplit **out, FILE *f)
{
	struct dimg_tarsplit *t = calloc(1, sizeof(*t));
	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->out = f;
	t->paxbuf = malloc(TS_PAX_MAX);
	int r = t->paxbuf ? dimg_sha256_new(&t->h) : -ENOMEM;
	if (r < 0) {
		dimg_tarsplit_free(t);
		return r;
	}
	*out = t;
	return 0;
}

void dimg_tarsplit_free(struct dimg_tarsplit *t)
{
	if (!t)
		return;
	dimg_sha256_free(t->h);
	free(t->paxbuf);
	free(t);
}
