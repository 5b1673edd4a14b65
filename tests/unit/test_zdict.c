/* The shared zstd dictionary of a .dimg's small full blobs: training is
 * deterministic, blobs round-trip through the reader, a corrupt, missing or
 * hostile dictionary is refused (-EBADMSG / -EOVERFLOW), never wrong bytes;
 * a delta without one has the trailer fields zero. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "dimg/dimg.h"
#include "dimg/hash.h"
#include "endian-internal.h"

#define NFILES 40

/* Small texts sharing boilerplate, as license and man files do. */
static char *make_text(int i)
{
	static const char *head = "Copyright (C) The Example Project contributors.\n"
	                          "Permission is hereby granted, free of charge, to any person "
	                          "obtaining a copy of this software and associated files, to "
	                          "deal in the Software without restriction.\n";
	size_t cap = 4096, len = 0;
	char *s = malloc(cap);
	CHECK(s != NULL);
	len += (size_t)snprintf(s + len, cap - len, "%s", head);
	for (int k = 0; k < 12; k++)
		len += (size_t)snprintf(s + len, cap - len,
		                        "Section %d of file %d: THE SOFTWARE IS PROVIDED AS IS, "
		                        "WITHOUT WARRANTY OF ANY KIND, item %d.\n",
		                        k, i, (i * 7 + k * 13) % 97);
	return s;
}

static int no_files(void *ctx, const struct dimg_entry *e, int *fd)
{
	(void)ctx;
	(void)e;
	*fd = -1;
	return -ENOENT;
}

static void add_dir(struct dimg_tree *t, const char *path)
{
	struct dimg_entry e = {0};
	e.path = (char *)path;
	e.type = DIMG_TYPE_DIR;
	e.mode = 0755;
	CHECK_RC(dimg_tree_append(t, &e));
}

struct fixture {
	char *text[NFILES];
	size_t sizes[NFILES];
	uint8_t *samples;
	size_t total;
	struct dimg_tree *base, *target;
};

static void fixture_init(struct fixture *f)
{
	f->samples = malloc(NFILES * 4096);
	f->total = 0;
	for (int i = 0; i < NFILES; i++) {
		f->text[i] = make_text(i);
		f->sizes[i] = strlen(f->text[i]);
		memcpy(f->samples + f->total, f->text[i], f->sizes[i]);
		f->total += f->sizes[i];
	}
	CHECK_RC(dimg_tree_new(&f->base));
	CHECK_RC(dimg_tree_new(&f->target));
	add_dir(f->base, "");
	add_dir(f->target, "");
	for (int i = 0; i < NFILES; i++) {
		char path[32];
		struct dimg_entry e = {0};
		snprintf(path, sizeof(path), "f%02d", i);
		e.path = path;
		e.type = DIMG_TYPE_REG;
		e.mode = 0644;
		e.size = f->sizes[i];
		e.payload = DIMG_PAYLOAD_FULL;
		CHECK_RC(dimg_sha256_buf(f->text[i], e.size, e.sha256));
		CHECK_RC(dimg_tree_append(f->target, &e));
	}
}

static void fixture_free(struct fixture *f)
{
	for (int i = 0; i < NFILES; i++)
		free(f->text[i]);
	free(f->samples);
	dimg_tree_free(f->base);
	dimg_tree_free(f->target);
}

/* Writes the delta, every file with the dictionary when dict is set. */
static uint8_t *write_delta(struct fixture *f, const struct dimg_zdict *dict, size_t *len)
{
	uint8_t bid[32], tid[32];
	struct dimg_writer *w;
	int fd = memfd_create("delta", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_RC(dimg_tree_id(f->base, bid));
	CHECK_RC(dimg_tree_id(f->target, tid));
	CHECK_RC(dimg_writer_new(&w, fd, bid, tid));
	if (dict) {
		const uint8_t *p;
		size_t n;
		dimg_zdict_bytes(dict, &p, &n);
		CHECK_RC(dimg_writer_add_dict(w, p, n));
		CHECK(dimg_writer_add_dict(w, p, n) == -EINVAL); /* only once, only first */
	}
	for (int i = 0; i < NFILES; i++) {
		struct dimg_entry *e = &f->target->v[i + 1];
		struct dimg_buf b = {0};
		const uint8_t *data = (const uint8_t *)f->text[i];
		if (dict)
			CHECK_RC(dimg_zstd_encode_dict(dict, data, f->sizes[i], &b));
		else
			CHECK_RC(dimg_zstd_encode(data, f->sizes[i], 19, &b));
		CHECK_RC(dimg_writer_add_blob(w, b.data, b.len, &e->blob_off, &e->blob_xxh3));
		e->blob_len = b.len;
		e->flags = dict ? DIMG_ENTRY_ZDICT : 0;
		dimg_buf_free(&b);
	}
	CHECK_RC(dimg_writer_finish(w, f->base, f->target));
	*len = (size_t)dimg_writer_offset(w);
	dimg_writer_free(w);
	uint8_t *buf = malloc(*len);
	CHECK(pread(fd, buf, *len, 0) == (ssize_t)*len);
	close(fd);
	return buf;
}

/* Collects rebuilt bytes; a text is never over 4 KiB. */
static int sink_buf(void *ctx, const void *p, size_t n)
{
	struct dimg_buf *b = ctx;
	return b->len + n > 4096 ? -EFBIG : dimg_buf_append(b, p, n);
}

/* 0 only when every file rebuilt, and then each equals its text. When
 * drop_flag is set, the entries' ZDICT flags are cleared before rebuild. */
static int use_delta(const uint8_t *buf, size_t len, struct fixture *f, int drop_flag)
{
	struct dimg_reader *rd;
	struct dimg_tree *t = NULL;
	struct dimg_files files = {no_files, NULL};
	int r = dimg_reader_open_mem(&rd, buf, len);
	if (r < 0)
		return r;
	r = dimg_reader_resolve(rd, f->base, &t);
	for (size_t i = 1; !r && i < t->n; i++) {
		struct dimg_buf s = {0};
		if (drop_flag)
			t->v[i].flags = 0;
		r = dimg_reader_rebuild(rd, &t->v[i], &files, sink_buf, &s);
		if (!r)
			CHECK(s.len == f->sizes[i - 1] && !memcmp(s.data, f->text[i - 1], s.len));
		dimg_buf_free(&s);
	}
	dimg_tree_free(t);
	dimg_reader_free(rd);
	return r;
}

static int open_rc(const uint8_t *buf, size_t len)
{
	struct dimg_reader *rd = NULL;
	int r = dimg_reader_open_mem(&rd, buf, len);
	dimg_reader_free(rd);
	return r;
}

/* Sets the trailer's dictionary fields (and keeps the file otherwise). */
static uint8_t *with_trailer_dict(const uint8_t *buf, size_t len, uint64_t dlen, uint64_t xxh3)
{
	uint8_t *b = malloc(len);
	memcpy(b, buf, len);
	le64enc(b + len - DIMG_TRAILER_SIZE + 40, dlen);
	le64enc(b + len - DIMG_TRAILER_SIZE + 48, xxh3);
	return b;
}

static void check_hostile_dicts(const uint8_t *buf, size_t len, size_t dlen)
{
	/* Missing: the trailer names no dictionary, the entries need one. */
	uint8_t *b = with_trailer_dict(buf, len, 0, 0);
	CHECK(open_rc(b, len) == -EBADMSG);
	free(b);
	/* Too large, or running into the index. */
	b = with_trailer_dict(buf, len, DIMG_DICT_MAX + 1, 0);
	CHECK(open_rc(b, len) == -EOVERFLOW);
	free(b);
	b = with_trailer_dict(buf, len, len, 0);
	CHECK(open_rc(b, len) == -EOVERFLOW);
	free(b);
	/* Not zstd's dictionary format, checksum made to match. */
	b = with_trailer_dict(buf, len, dlen, 0);
	b[DIMG_HEADER_SIZE] ^= 1;
	le64enc(b + len - DIMG_TRAILER_SIZE + 48, dimg_xxh3(b + DIMG_HEADER_SIZE, dlen));
	CHECK(open_rc(b, len) == -EBADMSG);
	free(b);
	/* A length of zero with a checksum set. */
	b = with_trailer_dict(buf, len, 0, 1);
	CHECK(open_rc(b, len) == -EBADMSG);
	free(b);
}

int main(void)
{
	struct fixture f;
	struct dimg_zdict *d1, *d2;
	const uint8_t *p1, *p2;
	size_t l1, l2, len, plen;
	fixture_init(&f);

	/* Deterministic training; too few samples give no dictionary. */
	CHECK_RC(dimg_zdict_train(&d1, f.samples, f.sizes, NFILES, f.total / 32, 19));
	CHECK_RC(dimg_zdict_train(&d2, f.samples, f.sizes, NFILES, f.total / 32, 19));
	dimg_zdict_bytes(d1, &p1, &l1);
	dimg_zdict_bytes(d2, &p2, &l2);
	CHECK(l1 > 0 && l1 <= f.total / 32 && l1 == l2 && memcmp(p1, p2, l1) == 0);
	dimg_zdict_free(d2);
	CHECK(dimg_zdict_train(&d2, f.samples, f.sizes, 1, 1024, 19) == -ENODATA);
	CHECK(d2 == NULL);

	uint8_t *buf = write_delta(&f, d1, &len);
	uint8_t *plain = write_delta(&f, NULL, &plen);
	CHECK_RC(use_delta(buf, len, &f, 0));
	CHECK_RC(use_delta(plain, plen, &f, 0));
	printf("with dictionary %zu bytes (dictionary %zu), without %zu\n", len, l1, plen);
	CHECK(len < plen);

	struct dimg_reader *rd;
	struct dimg_index_stats st;
	CHECK_RC(dimg_reader_open_mem(&rd, buf, len));
	dimg_reader_stats(rd, &st);
	CHECK(st.dict_len == l1 && st.dict_blobs == NFILES);
	CHECK(st.blobs_len == len - DIMG_TRAILER_SIZE - st.index_len - DIMG_HEADER_SIZE - l1);
	dimg_reader_free(rd);
	/* Without a dictionary the trailer's fields stay zero (old layout). */
	CHECK(le64dec(plain + plen - DIMG_TRAILER_SIZE + 40) == 0);
	CHECK(le64dec(plain + plen - DIMG_TRAILER_SIZE + 48) == 0);
	CHECK_RC(dimg_reader_open_mem(&rd, plain, plen));
	dimg_reader_stats(rd, &st);
	CHECK(st.dict_len == 0 && st.dict_blobs == 0);
	dimg_reader_free(rd);

	/* A frame that needs the dictionary, decoded without it: refused. */
	CHECK(use_delta(buf, len, &f, 1) == -EBADMSG);
	check_hostile_dicts(buf, len, l1);

	/* Every truncation fails at open; every byte flip fails somewhere or
	 * gives the right bytes (use_delta CHECKs them). */
	for (size_t n = 0; n < len; n++)
		CHECK(open_rc(buf, n) < 0);
	unsigned passed = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t *bad = malloc(len);
		memcpy(bad, buf, len);
		bad[i] ^= 0x5a;
		if (i >= DIMG_HEADER_SIZE && i < DIMG_HEADER_SIZE + l1)
			CHECK(open_rc(bad, len) == -EBADMSG); /* the dictionary's checksum */
		if (use_delta(bad, len, &f, 0) == 0)
			passed++;
		free(bad);
	}
	CHECK(passed == 0);
	printf("test_zdict: ok (%zu-byte delta, every corruption refused)\n", len);
	free(buf);
	free(plain);
	dimg_zdict_free(d1);
	fixture_free(&f);
	return 0;
}
