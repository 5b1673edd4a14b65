/* Rebuilding one regular file of a delta's target tree from its payload and
 * the base, streamed and verified (size and SHA-256) on the way out. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dimg/dimg.h"
#include "dimg/fileio.h"
#include "dimg/hash.h"
#include "format-internal.h"

/* Passes bytes on while counting and hashing them; refuses output past the
 * expected size so a bad payload cannot fill the disk. */
struct verify_sink {
	dimg_write_fn sink;
	void *ctx;
	struct dimg_sha256 *h;
	uint64_t n, want;
};

static int verify_write(void *ctx, const void *p, size_t n)
{
	struct verify_sink *v = ctx;
	if (n > v->want - v->n)
		return -EBADMSG;
	v->n += n;
	dimg_sha256_update(v->h, p, n);
	return v->sink(v->ctx, p, n);
}

static int copy_fd(int fd, struct verify_sink *v)
{
	size_t cap = 1 << 20;
	uint8_t *buf = malloc(cap);
	int r = 0;
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t got = read(fd, buf, cap);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			r = got < 0 ? -errno : 0;
			break;
		}
		if ((r = verify_write(v, buf, (size_t)got)) < 0)
			break;
	}
	free(buf);
	return r;
}

static int open_source(const struct dimg_files *base, const struct dimg_entry *e, int *fd)
{
	struct dimg_entry s = {0};
	s.path = e->src ? e->src : e->path;
	s.type = DIMG_TYPE_REG;
	if (e->payload == DIMG_PAYLOAD_SAME) {
		memcpy(s.sha256, e->sha256, 32);
		s.size = e->size;
	}
	return base->open(base->ctx, &s, fd);
}

/* The base file is loaded, not mapped: it may be a sparse file of a
 * content store on a full tmpfs (dimg/fileio.h). */
static int patch_from_fd(int fd, const uint8_t *patch, size_t plen, uint8_t codec,
                         struct verify_sink *v)
{
	const uint8_t *old;
	size_t olen;
	int r = dimg_file_load(fd, &old, &olen);
	if (r < 0)
		return r;
	uint64_t n = 0;
	r = dimg_patch_apply(codec, old, olen, patch, plen, verify_write, v, &n);
	dimg_file_unload(old, olen);
	return r;
}

static int produce(const struct dimg_reader *r, const struct dimg_entry *e,
                   const struct dimg_files *base, struct verify_sink *v)
{
	const uint8_t *blob = NULL;
	size_t blen = 0;
	int fd = -1, rc;
	switch (e->payload) {
	case DIMG_PAYLOAD_EMPTY:
		return 0;
	case DIMG_PAYLOAD_FULL:
		return dimg_reader_decode_full(r, e, verify_write, v);
	case DIMG_PAYLOAD_SAME:
	case DIMG_PAYLOAD_PATCH:
		if (e->payload == DIMG_PAYLOAD_PATCH &&
		    (rc = dimg_reader_blob(r, e, &blob, &blen)) < 0)
			return rc;
		if ((rc = open_source(base, e, &fd)) < 0)
			return rc;
		if (e->payload == DIMG_PAYLOAD_SAME)
			rc = copy_fd(fd, v);
		else
			rc = patch_from_fd(fd, blob, blen, e->codec, v);
		close(fd);
		return rc;
	default:
		return -EINVAL;
	}
}

int dimg_reader_rebuild(const struct dimg_reader *r, const struct dimg_entry *e,
                        const struct dimg_files *base, dimg_write_fn sink, void *sink_ctx)
{
	struct verify_sink v = {sink, sink_ctx, NULL, 0, e->size};
	uint8_t got[32];
	if (e->type != DIMG_TYPE_REG)
		return -EINVAL;
	int rc = dimg_sha256_new(&v.h);
	if (rc < 0)
		return rc;
	rc = produce(r, e, base, &v);
	dimg_sha256_final(v.h, got);
	dimg_sha256_free(v.h);
	if (rc < 0)
		return rc;
	if (v.n != e->size || memcmp(got, e->sha256, 32) != 0)
		return -EBADMSG;
	return 0;
}
