/* A buffer sink with a ceiling, for contents whose length a blob declares:
 * output past max bytes is the blob's fault (-EBADMSG), not a reason to
 * grow without bound. */
#ifndef DIMG_BUF_INTERNAL_H
#define DIMG_BUF_INTERNAL_H

#include <errno.h>
#include <stdint.h>

#include "dimg/types.h"

struct dimg_capped {
	struct dimg_buf *b;
	uint64_t max;
};

/* A dimg_write_fn; ctx is a struct dimg_capped*. */
static inline int dimg_write_capped(void *ctx, const void *p, size_t n)
{
	struct dimg_capped *c = ctx;
	if (c->b->len > c->max || n > c->max - c->b->len)
		return -EBADMSG;
	return dimg_buf_append(c->b, p, n);
}

#endif
