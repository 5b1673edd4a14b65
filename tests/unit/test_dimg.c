/* .dimg writer/reader round trip on in-memory trees, and what the reader
 * does with every truncation and every single-byte corruption of a delta. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "dimg/dimg.h"
#include "dimg/hash.h"

/* Base file contents live in memfds, opened by path through this table. */
struct memfiles {
	const char *paths[8];
	const char *data[8];
	int n;
};

static int mem_open(void *ctx, const struct dimg_entry *e, int *fd)
{
	struct memfiles *m = ctx;
	for (int i = 0; i < m->n; i++) {
		if (strcmp(m->paths[i], e->path) != 0)
			continue;
		int f = memfd_create("base", MFD_CLOEXEC);
		size_t len = strlen(m->data[i]);
		if (f < 0 || write(f, m->data[i], len) != (ssize_t)len)
			return -EIO;
		lseek(f, 0, SEEK_SET);
		*fd = f;
		return 0;
	}
	return -ENOENT;
}

static void add(struct dimg_tree *t, const char *path, int type, const char *content)
{
	struct dimg_entry e = {0};
	e.path = (char *)path;
	e.type = (uint8_t)type;
	e.mode = type == DIMG_TYPE_DIR ? 0755 : 04755;
	e.uid = 1000;
	e.gid = 100;
	e.mtime_sec = -5;
	e.mtime_nsec = 123456789;
	if (type == DIMG_TYPE_REG) {
		e.size = strlen(content);
		CHECK_RC(dimg_sha256_buf(content, e.size, e.sha256));
		e.payload = e.size ? DIMG_PAYLOAD_SAME : DIMG_PAYLOAD_EMPTY;
	} else if (type == DIMG_TYPE_SYMLINK) {
		e.link = (char *)content;
		e.size = strlen(content);
	}
	CHECK_RC(dimg_tree_append(t, &e));
}

struct sinkbuf {
	char data[4096];
	size_t len;
};

static int sink_mem(void *ctx, const void *p, size_t n)
{
	struct sinkbuf *s = ctx;
	if (n > sizeof(s->data) - s->len)
		return -EFBIG;
	memcpy(s->data + s->len, p, n);
	s->len += n;
	return 0;
}

static const char *NEWTEXT = "hello new world, this is the changed file content\n";

static struct dimg_tree *make_base(void)
{
	struct dimg_tree *t;
	CHECK_RC(dimg_tree_new(&t));
	add(t, "", DIMG_TYPE_DIR, NULL);
	add(t, "a", DIMG_TYPE_REG, "unchanged file\n");
	add(t, "b", DIMG_TYPE_REG, "hello old world, this is the file content\n");
	add(t, "c", DIMG_TYPE_REG, "to be renamed\n");
	add(t, "d", DIMG_TYPE_DIR, NULL);
	add(t, "d/gone", DIMG_TYPE_REG, "deleted\n");
	add(t, "lnk", DIMG_TYPE_SYMLINK, "a");
	return t;
}

/* Target: a kept, b changed (full blob), c renamed to e (same), d/gone
 * removed, d/new empty, lnk retargeted. */
static struct dimg_tree *make_target(void)
{
	struct dimg_tree *t;
	CHECK_RC(dimg_tree_new(&t));
	add(t, "", DIMG_TYPE_DIR, NULL);
	add(t, "a", DIMG_TYPE_REG, "unchanged file\n");
	add(t, "b", DIMG_TYPE_REG, NEWTEXT);
	add(t, "d", DIMG_TYPE_DIR, NULL);
	add(t, "d/new", DIMG_TYPE_REG, "");
	add(t, "e", DIMG_TYPE_REG, "to be renamed\n");
	add(t, "lnk", DIMG_TYPE_SYMLINK, "e");
	t->v[5].src = strdup("c");
	return t;
}

/* Writes the delta into a memfd and returns its bytes (malloc'd). */
static uint8_t *write_delta_at(const struct dimg_tree *base, struct dimg_tree *target, size_t *len)
{
	uint8_t bid[32], tid[32];
	struct dimg_writer *w;
	struct dimg_buf blob = {0};
	int fd = memfd_create("delta", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_RC(dimg_tree_id(base, bid));
	CHECK_RC(dimg_tree_id(target, tid));
	CHECK_RC(dimg_writer_new(&w, fd, bid, tid));
	struct dimg_entry *b = &target->v[dimg_tree_index(target, "b")];
	CHECK_RC(dimg_zstd_encode((const uint8_t *)NEWTEXT, strlen(NEWTEXT), 19, &blob));
	CHECK_RC(dimg_writer_add_blob(w, blob.data, blob.len, &b->blob_off, &b->blob_xxh3));
	b->blob_len = blob.len;
	b->payload = DIMG_PAYLOAD_FULL;
	CHECK_RC(dimg_writer_finish(w, base, target));
	*len = (size_t)dimg_writer_offset(w);
	dimg_writer_free(w);
	dimg_buf_free(&blob);
	uint8_t *buf = malloc(*len);
	CHECK(pread(fd, buf, *len, 0) == (ssize_t)*len);
	close(fd);
	return buf;
}

/* Opens, resolves and rebuilds every file. 0 only when every step passed;
 * then every rebuilt file equals its expected content. */
static int use_delta(const uint8_t *buf, size_t len, const struct dimg_tree *base,
                     const struct dimg_tree *expect, struct memfiles *mf)
{
	struct dimg_reader *rd;
	struct dimg_tree *t = NULL;
	struct dimg_files files = {mem_open, mf};
	int r = dimg_reader_open_mem(&rd, buf, len);
	if (r < 0)
		return r;
	r = dimg_reader_resolve(rd, base, &t);
	for (size_t i = 0; !r && i < t->n; i++) {
		struct sinkbuf s = {.len = 0};
		CHECK(dimg_entry_meta_equal(&t->v[i], &expect->v[i]));
		if (t->v[i].type != DIMG_TYPE_REG)
			continue;
		r = dimg_reader_rebuild(rd, &t->v[i], &files, sink_mem, &s);
		if (!r) {
			uint8_t sha[32];
			CHECK_RC(dimg_sha256_buf(s.data, s.len, sha));
			CHECK(memcmp(sha, expect->v[i].sha256, 32) == 0);
		}
	}
	if (!r)
		CHECK(t->n == expect->n);
	dimg_tree_free(t);
	dimg_reader_free(rd);
	return r;
}

/* A delta whose target tree would write outside the output directory is
 * refused at resolve, whatever the writer was made to put in it. */
static void check_hostile(const struct dimg_tree *base, const char *path, int lnk_type)
{
	struct dimg_tree *t = make_target();
	struct dimg_reader *rd;
	struct dimg_tree *out = NULL;
	size_t len;
	/* Turn "lnk" into the given type and add the hostile path. */
	t->v[6].type = (uint8_t)lnk_type;
	if (lnk_type == DIMG_TYPE_DIR) {
		free(t->v[6].link);
		t->v[6].link = NULL;
		t->v[6].size = 0;
	}
	add(t, path, DIMG_TYPE_REG, "");
	CHECK(dimg_tree_sort(t) == 0);
	uint8_t *buf = write_delta_at(base, t, &len);
	CHECK_RC(dimg_reader_open_mem(&rd, buf, len));
	CHECK(dimg_reader_resolve(rd, base, &out) == -EBADMSG);
	dimg_reader_free(rd);
	dimg_tree_free(t);
	free(buf);
}

/* A base listed without hashes: the unverified resolve gives the verified
 * tree but for the sha256 of kept and SAME files; an index that does not
 * fit the base is still refused. */
static void check_unverified(const uint8_t *buf, size_t len, const struct dimg_tree *base)
{
	struct dimg_reader *rd;
	struct dimg_tree *nohash = make_base(), *want = NULL, *got = NULL;
	for (size_t i = 0; i < nohash->n; i++)
		memset(nohash->v[i].sha256, 0, 32);
	CHECK_RC(dimg_reader_open_mem(&rd, buf, len));
	CHECK_RC(dimg_reader_resolve(rd, base, &want));
	CHECK(dimg_reader_resolve(rd, nohash, &got) == -EXDEV);
	CHECK_RC(dimg_reader_resolve_unverified(rd, nohash, &got));
	CHECK(got->n == want->n);
	unsigned zeroed = 0;
	for (size_t i = 0; i < got->n; i++) {
		struct dimg_entry *g = &got->v[i];
		CHECK(g->payload == want->v[i].payload);
		if (g->payload == DIMG_PAYLOAD_SAME) {
			CHECK(memcmp(g->sha256, (uint8_t[32]){0}, 32) == 0);
			memcpy(g->sha256, want->v[i].sha256, 32);
			zeroed++;
		}
		CHECK(dimg_entry_meta_equal(g, &want->v[i]));
	}
	CHECK(zeroed == 2); /* "a" kept, "e" SAME as "c" */
	dimg_tree_free(got);
	got = NULL;
	/* The SAME source "c" missing, then a base longer than the runs. */
	struct dimg_tree *misfit = make_base();
	dimg_entry_clear(&misfit->v[3]);
	memmove(&misfit->v[3], &misfit->v[4], (misfit->n - 4) * sizeof(misfit->v[0]));
	misfit->n--;
	CHECK(dimg_reader_resolve_unverified(rd, misfit, &got) == -EBADMSG);
	add(nohash, "z-extra", DIMG_TYPE_REG, "x");
	CHECK(dimg_reader_resolve_unverified(rd, nohash, &got) == -EBADMSG);
	CHECK(got == NULL);
	dimg_tree_free(misfit);
	dimg_tree_free(nohash);
	dimg_tree_free(want);
	dimg_reader_free(rd);
}

/* The counts every command reports, on the known update make_target is:
 * from both trees, from the resolved delta, from the index alone. */
static void check_counts(const uint8_t *buf, size_t len, const struct dimg_tree *base,
                         const struct dimg_tree *target)
{
	struct dimg_counts c, r;
	struct dimg_reader *rd;
	struct dimg_tree *resolved = NULL;
	CHECK_RC(dimg_counts_trees(&c, base, target));
	CHECK(c.entries == 7 && c.kept == 3);  /* "", "a", "d" */
	CHECK(c.changed == 2);                 /* b, lnk */
	CHECK(c.added == 1 && c.renamed == 1); /* d/new; c -> e */
	CHECK(c.removed == 1);                 /* d/gone */
	CHECK(c.stored == 4 && c.dropped == 4);
	CHECK(c.files[DIMG_PAYLOAD_FULL] == 1 && c.files[DIMG_PAYLOAD_SAME] == 1 &&
	      c.files[DIMG_PAYLOAD_EMPTY] == 1 && c.bytes[DIMG_PAYLOAD_FULL] > 0);
	CHECK_RC(dimg_reader_open_mem(&rd, buf, len));
	CHECK_RC(dimg_reader_resolve(rd, base, &resolved));
	CHECK_RC(dimg_counts_trees(&r, base, resolved));
	CHECK(memcmp(&r, &c, sizeof(c)) == 0);
	dimg_counts_index(&r, rd);
	CHECK(r.entries == 7 && r.kept == 3 && r.stored == 4 && r.dropped == 4);
	CHECK(r.changed == DIMG_COUNT_UNKNOWN && r.removed == DIMG_COUNT_UNKNOWN);
	CHECK(!memcmp(r.files, c.files, sizeof(c.files)) &&
	      !memcmp(r.bytes, c.bytes, sizeof(c.bytes)));
	/* Nothing changed: every count known from the index too. */
	CHECK_RC(dimg_counts_trees(&c, base, base));
	CHECK(c.kept == base->n && c.stored == 0 && c.dropped == 0 && c.removed == 0);
	dimg_tree_free(resolved);
	dimg_reader_free(rd);
}

int main(void)
{
	struct memfiles mf = {{"a", "b", "c", "d/gone"},
	                      {"unchanged file\n", "hello old world, this is the file content\n",
	                       "to be renamed\n", "deleted\n"},
	                      4};
	struct dimg_tree *base = make_base(), *target = make_target();
	size_t len;
	uint8_t *buf = write_delta_at(base, target, &len);
	struct dimg_index_stats st;
	struct dimg_reader *rd;

	CHECK_RC(use_delta(buf, len, base, target, &mf));
	CHECK_RC(dimg_reader_open_mem(&rd, buf, len));
	dimg_reader_stats(rd, &st);
	CHECK(st.entries == target->n);
	CHECK(st.kept == 3);      /* "", "a" and "d" */
	CHECK(st.explicit_ == 4); /* b changed, d/new and e new, lnk changed */
	CHECK(st.dropped == 4);   /* b, c, d/gone, lnk */
	dimg_reader_free(rd);
	check_counts(buf, len, base, target);
	check_unverified(buf, len, base);

	/* Same input, same bytes. */
	size_t len2;
	uint8_t *buf2 = write_delta_at(base, target, &len2);
	CHECK(len2 == len && memcmp(buf, buf2, len) == 0);
	free(buf2);

	/* A wrong base is refused as such. */
	struct dimg_tree *wrong = make_base();
	wrong->v[1].mode = 0600;
	CHECK(dimg_reader_open_mem(&rd, buf, len) == 0);
	struct dimg_tree *t = NULL;
	CHECK(dimg_reader_resolve(rd, wrong, &t) == -EXDEV);
	dimg_reader_free(rd);
	dimg_tree_free(wrong);

	/* Every truncation fails at open. */
	for (size_t n = 0; n < len; n++) {
		uint8_t *cut = malloc(n ? n : 1);
		memcpy(cut, buf, n);
		CHECK(dimg_reader_open_mem(&rd, cut, n) < 0);
		free(cut);
	}
	/* Every single-byte corruption fails somewhere, never gives wrong bytes
	 * (use_delta CHECKs content whenever all steps pass). */
	unsigned passed = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t *bad = malloc(len);
		memcpy(bad, buf, len);
		bad[i] ^= 0x5a;
		if (use_delta(bad, len, base, target, &mf) == 0)
			passed++;
		free(bad);
	}
	/* Only bytes nothing depends on may be flipped harmlessly: none here. */
	CHECK(passed == 0);
	free(buf);

	check_hostile(base, "../x", DIMG_TYPE_SYMLINK);
	check_hostile(base, "/abs", DIMG_TYPE_SYMLINK);
	check_hostile(base, "d/../../x", DIMG_TYPE_SYMLINK);
	check_hostile(base, "d//x", DIMG_TYPE_SYMLINK);
	check_hostile(base, "lnk/file", DIMG_TYPE_SYMLINK);   /* through a symlink */
	check_hostile(base, "nodir/file", DIMG_TYPE_SYMLINK); /* parent missing */
	dimg_tree_free(base);
	dimg_tree_free(target);
	printf("test_dimg: ok (%zu-byte delta, every corruption refused)\n", len);
	return 0;
}
