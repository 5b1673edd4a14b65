/* libFuzzer target for the transports' tar index (transport/lib/
 * tarindex.c): the input is the archive. An index that is made must hold
 * members whose data lies within the input, found again by name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tarindex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_buf {
	const uint8_t *p;
	size_t n;
};

static int fuzz_pread(void *ctx, void *buf, size_t n, uint64_t off)
{
	const struct fuzz_buf *b = ctx;
	if (off > b->n || n > b->n - off)
		return -5; /* -EIO: past the end */
	memcpy(buf, b->p + off, n);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_buf b = {data, size};
	struct xtar t;
	if (xtar_index(&t, fuzz_pread, &b, size, NULL) < 0)
		return 0;
	for (size_t i = 0; i < t.n; i++) {
		const struct xtar_member *m = xtar_find(&t, t.m[i].name);
		if (m && (m->off > size || m->size > size - m->off))
			abort();
		if (!t.m[i].link && m != &t.m[i])
			abort();
	}
	xtar_free(&t);
	return 0;
}
