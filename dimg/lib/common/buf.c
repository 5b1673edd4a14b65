/* Growable byte buffers and the file-descriptor sink shared by the codecs
 * and the writers: the small plumbing every encoder appends through. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dimg/types.h"

int dimg_buf_reserve(struct dimg_buf *b, size_t extra)
{
	size_t need, cap;
	uint8_t *p;

	if (extra > SIZE_MAX - b->len)
		return -ENOMEM;
	need = b->len + extra;
	if (need <= b->cap)
		return 0;
	/* Doubling keeps a long series of appends linear overall. */
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int dimg_buf_append(struct dimg_buf *b, const void *p, size_t n)
{
	int r;

	if (n == 0)
		return 0;
	r = dimg_buf_reserve(b, n);
	if (r < 0)
		return r;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void dimg_buf_free(struct dimg_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int dimg_write_fd(void *ctx, const void *p, size_t n)
{
	const uint8_t *q = p;
	int fd = *(const int *)ctx;

	while (n > 0) {
		ssize_t w = write(fd, q, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* A regular file or pipe never takes zero bytes of a non-empty
		 * write; treat it as an I/O error rather than spin. */
		if (w == 0)
			return -EIO;
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

int dimg_write_buf(void *ctx, const void *p, size_t n)
{
	return dimg_buf_append(ctx, p, n);
}
