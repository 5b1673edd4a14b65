/* A bounded byte pipe between two threads: a source's get_blob writes
 * (push), a destination's put_blob reads (pull); memory stays at cap. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "copy-internal.h"

int xpipe_init(struct xpipe *p, size_t cap)
{
	memset(p, 0, sizeof(*p));
	p->buf = malloc(cap);
	if (!p->buf)
		return -ENOMEM;
	p->cap = cap;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	return 0;
}

void xpipe_free(struct xpipe *p)
{
	if (!p->buf)
		return;
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p->buf);
	p->buf = NULL;
}

int xpipe_write(void *ctx, const void *data, size_t n)
{
	struct xpipe *p = ctx;
	const uint8_t *s = data;
	int r = 0;
	pthread_mutex_lock(&p->mu);
	while (n && !p->closed) {
		while (p->len == p->cap && !p->closed)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->closed)
			break;
		size_t tail = (p->head + p->len) % p->cap;
		size_t k = p->cap - p->len;
		if (k > p->cap - tail)
			k = p->cap - tail;
		if (k > n)
			k = n;
		memcpy(p->buf + tail, s, k);
		p->len += k;
		s += k;
		n -= k;
		pthread_cond_broadcast(&p->cv);
	}
	if (p->closed)
		r = -ECANCELED;
	pthread_mutex_unlock(&p->mu);
	return r;
}

void xpipe_finish(struct xpipe *p, int rc)
{
	pthread_mutex_lock(&p->mu);
	p->done = 1;
	p->rc = rc;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

ssize_t xpipe_read(struct xpipe *p, void *buf, size_t n)
{
	ssize_t r;
	pthread_mutex_lock(&p->mu);
	while (p->len == 0 && !p->done)
		pthread_cond_wait(&p->cv, &p->mu);
	if (p->len == 0) {
		r = p->rc < 0 ? p->rc : 0;
	} else {
		size_t k = p->len < n ? p->len : n;
		if (k > p->cap - p->head)
			k = p->cap - p->head;
		memcpy(buf, p->buf + p->head, k);
		p->head = (p->head + k) % p->cap;
		p->len -= k;
		r = (ssize_t)k;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return r;
}

void xpipe_close(struct xpipe *p)
{
	pthread_mutex_lock(&p->mu);
	p->closed = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}
