/* libFuzzer target for the layer recipe recorder: any byte stream (a tar or
 * not) fed in arbitrary pieces must come back exactly from its records —
 * RAW bytes as they are, each FILE a range of the input of that size and
 * SHA-256 — with nothing missing or left over. Byte 0 sets the piece size. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The recorder is private to libdimg (see fuzz_squash.c). */
#include "cas-internal.h"
#include "dimg/hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_tarsplit: %s\n", what);
	abort();
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

/* Replays the records in rec[0..n) against the input in[0..len). */
static void fuzz_replay(const uint8_t *rec, size_t n, const uint8_t *in, size_t len)
{
	size_t at = 0, pos = 0;
	uint8_t sha[32];
	for (;;) {
		if (pos >= n)
			fuzz_fail("no END record");
		uint8_t t = rec[pos++];
		if (t == DIMG_RECIPE_END)
			break;
		if (t == DIMG_RECIPE_RAW) {
			uint64_t k = get_le(rec + pos, 4);
			pos += 4;
			if (k == 0 || k > DIMG_RECIPE_RAW_MAX || k > len - at ||
			    memcmp(rec + pos, in + at, k) != 0)
				fuzz_fail("RAW record differs from the input");
			pos += k;
			at += k;
		} else if (t == DIMG_RECIPE_FILE) {
			uint64_t k = get_le(rec + pos, 8);
			if (k == 0 || k > len - at || dimg_sha256_buf(in + at, k, sha) < 0 ||
			    memcmp(sha, rec + pos + 8, 32) != 0)
				fuzz_fail("FILE record does not name its input range");
			pos += 40;
			at += k;
		} else {
			fuzz_fail("unknown record type");
		}
	}
	if (pos != n || at != len)
		fuzz_fail("records do not cover the input exactly");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dimg_tarsplit *t = NULL;
	uint64_t off, len;
	if (size < 1)
		return 0;
	size_t piece = (size_t)data[0] * 7 + 1;
	data++;
	size--;
	FILE *f = tmpfile();
	if (!f || dimg_tarsplit_new(&t, f) < 0)
		fuzz_fail("setup");
	dimg_tarsplit_begin(t);
	int r = 0;
	for (size_t i = 0; i < size && r == 0; i += piece)
		r = dimg_tarsplit_feed(t, data + i, size - i < piece ? size - i : piece);
	if (r == 0)
		r = dimg_tarsplit_end(t, &off, &len, 0);
	/* a file cut short is refused (the squash refuses that layer anyway) */
	if (r == 0) {
		uint8_t *rec = malloc(len ? len : 1);
		if (!rec || fseek(f, 0, SEEK_SET) != 0 || fread(rec, 1, len, f) != len)
			fuzz_fail("reading the records back");
		fuzz_replay(rec, len, data, size);
		free(rec);
	}
	dimg_tarsplit_free(t);
	fclose(f);
	return 0;
}
