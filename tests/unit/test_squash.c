/* Squashing image layers: whiteout, opaque and hardlink semantics on small
 * layers written here with libarchive, and hostile layers each refused
 * with its own message. With arguments it is the integration tests'
 * driver: `test_squash --extract IMAGE OUTDIR [--ref R] [--platform P]
 * [--cas DIR] [--no-owner] [--open-only]` opens an image, writes its
 * squashed tree, and reports squash throughput and peak memory. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cas-internal.h"
#include "check.h"
#include "dimg/hash.h"
#include "dimg/image.h"
#include "dimg/write.h"

/* ---- building layers in memory ---- */

struct buf {
	uint8_t *p;
	size_t n, cap;
};

static void buf_put(struct buf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 4096;
		b->p = realloc(b->p, b->cap);
		CHECK(b->p);
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static la_ssize_t buf_write_cb(struct archive *a, void *ctx, const void *p, size_t n)
{
	(void)a;
	buf_put(ctx, p, n);
	return (la_ssize_t)n;
}

struct layer {
	struct archive *a;
	struct buf out;
};

/* filter: 0 none, 1 gzip, or an ARCHIVE_FILTER_* code. */
static void layer_begin(struct layer *l, int filter)
{
	memset(l, 0, sizeof(*l));
	l->a = archive_write_new();
	CHECK(l->a);
	CHECK(archive_write_set_format_pax(l->a) == ARCHIVE_OK);
	CHECK(archive_write_add_filter(l->a, filter == 1 ? ARCHIVE_FILTER_GZIP : filter) ==
	      ARCHIVE_OK);
	/* Unblocked: a compressed layer ends where its stream ends. */
	CHECK(archive_write_set_bytes_per_block(l->a, 0) == ARCHIVE_OK);
	CHECK(archive_write_open(l->a, &l->out, NULL, buf_write_cb, NULL) == ARCHIVE_OK);
}

static void layer_end(struct layer *l)
{
	CHECK(archive_write_close(l->a) == ARCHIVE_OK);
	archive_write_free(l->a);
	l->a = NULL;
}

/* Adds one entry; type is AE_IF*; data for regular files; link for
 * symlinks ("S") or hardlinks ("H"). */
static struct archive_entry *entry_new(const char *path, unsigned type, unsigned mode)
{
	struct archive_entry *e = archive_entry_new();
	CHECK(e);
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, mode);
	archive_entry_set_mtime(e, 1700000000, 123456789);
	return e;
}

static void put_entry(struct layer *l, struct archive_entry *e, const char *data)
{
	size_t n = data ? strlen(data) : 0;
	if (data)
		archive_entry_set_size(e, (la_int64_t)n);
	CHECK(archive_write_header(l->a, e) == ARCHIVE_OK);
	if (n)
		CHECK(archive_write_data(l->a, data, n) == (la_ssize_t)n);
	archive_entry_free(e);
}

static void add_file(struct layer *l, const char *path, const char *data)
{
	put_entry(l, entry_new(path, AE_IFREG, 0644), data);
}

static void add_dir(struct layer *l, const char *path, unsigned mode)
{
	put_entry(l, entry_new(path, AE_IFDIR, mode), NULL);
}

static void add_symlink(struct layer *l, const char *path, const char *target)
{
	struct archive_entry *e = entry_new(path, AE_IFLNK, 0777);
	archive_entry_set_symlink(e, target);
	put_entry(l, e, NULL);
}

static void add_hardlink(struct layer *l, const char *path, const char *target)
{
	struct archive_entry *e = entry_new(path, AE_IFREG, 0644);
	archive_entry_set_hardlink(e, target);
	archive_entry_set_size(e, 0);
	put_entry(l, e, NULL);
}

/* ---- feeding layers to the squash ---- */

struct memsrc {
	const uint8_t *p;
	size_t n, off, chunk;
};

/* Small chunks, so tar headers straddle reads as they do on real input. */
static int memsrc_read(void *ctx, const void **buf, size_t *len)
{
	struct memsrc *m = ctx;
	size_t k = m->n - m->off < m->chunk ? m->n - m->off : m->chunk;
	*buf = m->p + m->off;
	*len = k;
	m->off += k;
	return 0;
}

struct sq {
	struct dimg_cas *cas;
	struct dimg_squash *s;
	struct dimg_err err;
};

static void sq_begin(struct sq *q)
{
	memset(q, 0, sizeof(*q));
	CHECK_RC(dimg_cas_open(&q->cas, NULL));
	CHECK_RC(dimg_squash_new(&q->s, q->cas, 0, NULL, NULL));
}

/* Applies a layer; fills li (if given) with expectations first. */
static int sq_apply(struct sq *q, const struct buf *b, struct dimg_layer_info *li_in)
{
	struct dimg_layer_info li = {.name = "test", .size = UINT64_MAX};
	if (li_in)
		li = *li_in;
	struct memsrc m = {.p = b->p, .n = b->n, .chunk = 777};
	struct dimg_layer_src src = {.read = memsrc_read, .ctx = &m};
	dimg_err_clear(&q->err);
	int r = dimg_squash_layer(q->s, &li, &src, &q->err);
	if (li_in)
		*li_in = li;
	return r;
}

static struct dimg_tree *sq_end(struct sq *q)
{
	struct dimg_tree *t;
	CHECK_RC(dimg_squash_finish(q->s, &t, &q->err));
	dimg_squash_free(q->s);
	q->s = NULL;
	return t;
}

static void sq_free(struct sq *q)
{
	dimg_squash_free(q->s);
	dimg_cas_free(q->cas);
}

static const struct dimg_entry *must_find(const struct dimg_tree *t, const char *path)
{
	const struct dimg_entry *e = dimg_tree_find(t, path);
	if (!e) {
		fprintf(stderr, "missing entry '%s'\n", path);
		exit(1);
	}
	return e;
}

static void must_lack(const struct dimg_tree *t, const char *path)
{
	if (dimg_tree_find(t, path)) {
		fprintf(stderr, "unexpected entry '%s'\n", path);
		exit(1);
	}
}

/* Content of a REG entry from the store equals s. */
static void check_content(struct dimg_cas *cas, const struct dimg_entry *e, const char *s)
{
	char got[256];
	int fd;
	CHECK(e->type == DIMG_TYPE_REG);
	CHECK_RC(dimg_cas_open_blob(cas, e->sha256, &fd));
	ssize_t n = read(fd, got, sizeof(got));
	close(fd);
	CHECK(n == (ssize_t)strlen(s) && memcmp(got, s, (size_t)n) == 0);
	CHECK(e->size == strlen(s));
}

/* ---- semantics ---- */

static void test_metadata(void)
{
	struct layer l;
	struct sq q;
	layer_begin(&l, 1);
	struct archive_entry *e = entry_new("./", AE_IFDIR, 0700);
	archive_entry_set_uid(e, 5);
	put_entry(&l, e, NULL);
	e = entry_new("./bin/ping", AE_IFREG, 04755);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 7);
	archive_entry_xattr_add_entry(e, "security.capability", "\x01\x00\x00\x02", 4);
	archive_entry_xattr_add_entry(e, "user.a", "", 0);
	put_entry(&l, e, "ping!");
	add_symlink(&l, "bin/sh", "/bin/dash");
	e = entry_new("dev/null", AE_IFCHR, 0666);
	archive_entry_set_rdevmajor(e, 1);
	archive_entry_set_rdevminor(e, 3);
	put_entry(&l, e, NULL);
	put_entry(&l, entry_new("run/fifo", AE_IFIFO, 0600), NULL);
	layer_end(&l);

	sq_begin(&q);
	CHECK_RC(sq_apply(&q, &l.out, NULL));
	struct dimg_tree *t = sq_end(&q);
	const struct dimg_entry *r = must_find(t, "");
	CHECK(r->type == DIMG_TYPE_DIR && r->mode == 0700 && r->uid == 5);
	CHECK(r->mtime_sec == 1700000000 && r->mtime_nsec == 123456789);
	const struct dimg_entry *p = must_find(t, "bin/ping");
	CHECK(p->mode == 04755 && p->gid == 7 && p->nxattrs == 2);
	CHECK(strcmp(p->xattrs[0].name, "security.capability") == 0 && p->xattrs[0].value_len == 4);
	CHECK(strcmp(p->xattrs[1].name, "user.a") == 0 && p->xattrs[1].value_len == 0);
	check_content(q.cas, p, "ping!");
	/* Implied by bin/ping: fixed metadata, not the time of the run. */
	const struct dimg_entry *b = must_find(t, "bin");
	CHECK(b->type == DIMG_TYPE_DIR && b->mode == 0755 && b->uid == 0 && b->mtime_sec == 0);
	const struct dimg_entry *s = must_find(t, "bin/sh");
	CHECK(s->type == DIMG_TYPE_SYMLINK && strcmp(s->link, "/bin/dash") == 0 && s->size == 9);
	const struct dimg_entry *d = must_find(t, "dev/null");
	CHECK(d->type == DIMG_TYPE_CHR && d->rdev_major == 1 && d->rdev_minor == 3);
	CHECK(must_find(t, "run/fifo")->type == DIMG_TYPE_FIFO);
	CHECK(t->n == 8);
	dimg_tree_free(t);
	sq_free(&q);
	free(l.out.p);
}

static void test_whiteouts(void)
{
	struct layer l1, l2;
	struct sq q;
	layer_begin(&l1, 1);
	add_file(&l1, "a/b", "b");
	add_file(&l1, "a/c", "c");
	add_file(&l1, "d/e/f", "f");
	add_file(&l1, "x/1", "1");
	add_file(&l1, "x/sub/2", "2");
	add_file(&l1, "y/1", "1");
	add_file(&l1, "keep/k", "k");
	layer_end(&l1);
	layer_begin(&l2, 0);
	add_file(&l2, "a/.wh.b", "");
	add_file(&l2, ".wh.d", "");
	add_file(&l2, "a/.wh.nothing", ""); /* whiteout of an absent path: no-op */
	add_dir(&l2, "x", 0750);
	add_file(&l2, "x/.wh..wh..opq", "");
	add_file(&l2, "x/3", "3");
	/* Opaque marker after this layer's own child: the child stays. */
	add_dir(&l2, "y", 0755);
	add_file(&l2, "y/2", "2");
	add_file(&l2, "y/.wh..wh..opq", "");
	/* Whiteout after re-adding in the same layer: lower only. */
	add_file(&l2, "keep/k", "k2");
	add_file(&l2, "keep/.wh.k", "");
	layer_end(&l2);

	sq_begin(&q);
	CHECK_RC(sq_apply(&q, &l1.out, NULL));
	CHECK_RC(sq_apply(&q, &l2.out, NULL));
	struct dimg_tree *t = sq_end(&q);
	must_lack(t, "a/b");
	must_find(t, "a/c");
	must_lack(t, "d");
	must_lack(t, "d/e/f");
	must_lack(t, "x/1");
	must_lack(t, "x/sub");
	CHECK(must_find(t, "x")->mode == 0750);
	must_find(t, "x/3");
	must_lack(t, "y/1");
	must_find(t, "y/2");
	check_content(q.cas, must_find(t, "keep/k"), "k2");
	for (size_t i = 0; i < t->n; i++)
		CHECK(!strstr(t->v[i].path, ".wh."));
	dimg_tree_free(t);
	sq_free(&q);
	free(l1.out.p);
	free(l2.out.p);
}

static void test_replace(void)
{
	struct layer l1, l2;
	struct sq q;
	layer_begin(&l1, 0);
	add_dir(&l1, "d", 0700);
	add_file(&l1, "d/child", "c");
	add_file(&l1, "swap/child", "c");
	add_file(&l1, "flip", "file");
	add_symlink(&l1, "ln", "target");
	layer_end(&l1);
	layer_begin(&l2, 0);
	add_dir(&l2, "d", 0711);             /* dir over dir: keeps children */
	add_file(&l2, "swap", "now a file"); /* file over dir: subtree gone */
	add_file(&l2, "flip/inner", "dir now");
	add_dir(&l2, "flip", 0755);
	add_file(&l2, "ln", "no longer a link");
	layer_end(&l2);

	sq_begin(&q);
	CHECK_RC(sq_apply(&q, &l1.out, NULL));
	/* flip/inner before flip's dir entry: flip is still a file then. */
	CHECK(sq_apply(&q, &l2.out, NULL) == -EBADMSG);
	CHECK(strstr(q.err.why, "not a directory"));
	sq_free(&q);
	free(l2.out.p);

	layer_begin(&l2, 0);
	add_dir(&l2, "d", 0711);
	add_file(&l2, "swap", "now a file");
	add_dir(&l2, "flip", 0755);
	add_file(&l2, "flip/inner", "dir now");
	add_file(&l2, "ln", "no longer a link");
	layer_end(&l2);
	sq_begin(&q);
	CHECK_RC(sq_apply(&q, &l1.out, NULL));
	CHECK_RC(sq_apply(&q, &l2.out, NULL));
	struct dimg_tree *t = sq_end(&q);
	CHECK(must_find(t, "d")->mode == 0711);
	must_find(t, "d/child");
	check_content(q.cas, must_find(t, "swap"), "now a file");
	must_lack(t, "swap/child");
	CHECK(must_find(t, "flip")->type == DIMG_TYPE_DIR);
	must_find(t, "flip/inner");
	check_content(q.cas, must_find(t, "ln"), "no longer a link");
	dimg_tree_free(t);
	sq_free(&q);
	free(l1.out.p);
	free(l2.out.p);
}

static void test_hardlinks(void)
{
	struct layer l1, l2;
	struct sq q;
	layer_begin(&l1, 1);
	add_file(&l1, "m", "group");
	add_hardlink(&l1, "n", "m");
	add_hardlink(&l1, "o", "./m");
	add_file(&l1, "p", "second");
	add_hardlink(&l1, "q", "p");
	layer_end(&l1);
	layer_begin(&l2, 1);
	add_file(&l2, ".wh.m", "");     /* the leader goes: n leads */
	add_file(&l2, "p", "replaced"); /* the leader changes: q keeps the old */
	add_hardlink(&l2, "z", "q");    /* a link into a lower layer's file */
	layer_end(&l2);

	sq_begin(&q);
	CHECK_RC(sq_apply(&q, &l1.out, NULL));
	CHECK_RC(sq_apply(&q, &l2.out, NULL));
	struct dimg_tree *t = sq_end(&q);
	CHECK_RC(dimg_tree_validate(t, NULL));
	must_lack(t, "m");
	check_content(q.cas, must_find(t, "n"), "group");
	const struct dimg_entry *o = must_find(t, "o");
	CHECK(o->type == DIMG_TYPE_HARDLINK && strcmp(o->link, "n") == 0);
	check_content(q.cas, must_find(t, "p"), "replaced");
	check_content(q.cas, must_find(t, "q"), "second");
	const struct dimg_entry *z = must_find(t, "z");
	CHECK(z->type == DIMG_TYPE_HARDLINK && strcmp(z->link, "q") == 0);
	CHECK(z->mode == 0 && z->size == 0);
	dimg_tree_free(t);
	sq_free(&q);
	free(l1.out.p);
	free(l2.out.p);
}

/* ---- hostile layers ---- */

/* Applies one layer to a fresh squash; checks the code and message. */
static void expect_refused(const struct buf *b, struct dimg_layer_info *li, int code,
                           const char *msg)
{
	struct sq q;
	sq_begin(&q);
	int r = sq_apply(&q, b, li);
	if (r != code || !q.err.why[0] || !strstr(q.err.why, msg)) {
		fprintf(stderr, "expected %d '%s', got %d '%s'\n", code, msg, r,
		        q.err.why[0] ? q.err.why : "(none)");
		exit(1);
	}
	CHECK(strstr(q.err.why, "layer "));
	printf("refused: %s\n", q.err.why);
	sq_free(&q);
}

static void refuse_layer(void (*fill)(struct layer *), int code, const char *msg)
{
	struct layer l;
	layer_begin(&l, 1);
	fill(&l);
	layer_end(&l);
	expect_refused(&l.out, NULL, code, msg);
	free(l.out.p);
}

static void fill_dotdot(struct layer *l)
{
	add_file(l, "a/../../etc/passwd", "x");
}

static void fill_absolute(struct layer *l)
{
	add_file(l, "/etc/passwd", "x");
}

static void fill_through_symlink(struct layer *l)
{
	add_symlink(l, "etc", "/etc");
	add_file(l, "etc/passwd", "x");
}

static void fill_link_missing(struct layer *l)
{
	add_hardlink(l, "h", "nowhere");
}

static void fill_link_outside(struct layer *l)
{
	add_hardlink(l, "h", "../../etc/shadow");
}

static void fill_link_dir(struct layer *l)
{
	add_dir(l, "d", 0755);
	add_hardlink(l, "h", "d");
}

static void fill_whiteout_symlink(struct layer *l)
{
	add_symlink(l, "s", "/");
	add_file(l, "s/.wh.etc", "");
}

/* A ustar header by hand: libarchive's writer would pad missing data. */
static void raw_header(uint8_t h[512], const char *name, uint64_t size, int base256)
{
	memset(h, 0, 512);
	snprintf((char *)h, 100, "%s", name);
	memcpy(h + 100, "0000644", 8);
	memcpy(h + 108, "0000000", 8);
	memcpy(h + 116, "0000000", 8);
	if (base256) {
		h[124] = 0x80;
		for (int i = 0; i < 8; i++)
			h[135 - i] = (uint8_t)(size >> (8 * i));
	} else {
		for (int i = 10; i >= 0; i--, size >>= 3) /* 11 octal digits */
			h[124 + i] = (uint8_t)('0' + (size & 7));
	}
	memcpy(h + 136, "00000000000", 12);
	h[156] = '0';
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	unsigned sum = 0;
	memset(h + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
}

static void test_hostile_sizes(void)
{
	uint8_t h[512], z[1024] = {0};
	struct buf b = {0};
	raw_header(h, "huge", 2ULL << 40, 1);
	buf_put(&b, h, 512);
	buf_put(&b, z, sizeof(z));
	expect_refused(&b, NULL, -EOVERFLOW, "over 1 TiB");
	/* Uncompressed, size known: more than is left in the blob. */
	struct dimg_layer_info li = {.name = "sized", .size = b.n};
	b.n = 0;
	raw_header(h, "big", 1u << 30, 0);
	buf_put(&b, h, 512);
	buf_put(&b, z, sizeof(z));
	li.size = b.n;
	expect_refused(&b, &li, -EOVERFLOW, "bytes left in the layer");
	/* Size unknown: the data simply ends. */
	expect_refused(&b, NULL, -EBADMSG, "runcated");
	free(b.p);
}

static void test_hostile_streams(void)
{
	struct layer l;
	layer_begin(&l, 1);
	add_file(&l, "f", "some data that is going to be cut off somewhere in the middle");
	for (int i = 0; i < 40; i++) {
		char name[32];
		snprintf(name, sizeof(name), "pad/%d", i);
		add_file(&l, name, "padding padding padding padding");
	}
	layer_end(&l);
	struct dimg_layer_info li = {.name = "sha256:feed", .size = UINT64_MAX};
	CHECK_RC(dimg_sha256_buf(l.out.p, l.out.n, li.digest));
	li.has_digest = 1;
	li.digest[0] ^= 1;
	expect_refused(&l.out, &li, -EBADMSG, "sha256:feed: blob digest mismatch");
	li.digest[0] ^= 1;
	/* Damaged in the middle: whatever the decoder says, the digest is the cause. */
	struct buf bad = {.p = malloc(l.out.n), .n = l.out.n};
	CHECK(bad.p);
	memcpy(bad.p, l.out.p, l.out.n);
	bad.p[bad.n / 2] ^= 0x55;
	expect_refused(&bad, &li, -EBADMSG, "sha256:feed: blob digest mismatch");
	free(bad.p);
	li.has_diff_id = 1; /* zero: wrong */
	expect_refused(&l.out, &li, -EBADMSG, "diff_id mismatch");
	li.has_diff_id = 0;
	li.size = l.out.n - 1;
	expect_refused(&l.out, &li, -EOVERFLOW, "blob larger than its declared");
	li.size = l.out.n + 1;
	expect_refused(&l.out, &li, -EBADMSG, "manifest says");
	struct buf cut = {.p = l.out.p, .n = l.out.n / 2};
	expect_refused(&cut, NULL, -EBADMSG, "runcated");
	/* Not a tar at all. */
	struct buf junk = {.p = (uint8_t *)"this is not a tar archive, not even close to one....",
	                   .n = 52};
	expect_refused(&junk, NULL, -EBADMSG, "tar");
	free(l.out.p);
}

/* Every compression a layer may use, detected from the bytes. */
static void test_filters(void)
{
	static const struct {
		int code;
		const char *name;
	} f[] = {{ARCHIVE_FILTER_NONE, "none"},
	         {ARCHIVE_FILTER_GZIP, "gzip"},
	         {ARCHIVE_FILTER_ZSTD, "zstd"},
	         {ARCHIVE_FILTER_XZ, "xz"}};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		struct layer l;
		struct sq q;
		uint8_t tar_digest[32];
		layer_begin(&l, f[i].code);
		add_file(&l, "etc/os-release", "ID=debian\n");
		layer_end(&l);
		struct dimg_layer_info li = {.name = f[i].name, .size = l.out.n};
		sq_begin(&q);
		CHECK_RC(sq_apply(&q, &l.out, &li));
		CHECK(strcmp(li.filter, f[i].name) == 0);
		CHECK_RC(dimg_sha256_buf(l.out.p, l.out.n, tar_digest));
		CHECK(memcmp(li.got_digest, tar_digest, 32) == 0);
		CHECK((memcmp(li.got_diff_id, li.got_digest, 32) == 0) == (f[i].code == 0));
		struct dimg_tree *t = sq_end(&q);
		check_content(q.cas, must_find(t, "etc/os-release"), "ID=debian\n");
		dimg_tree_free(t);
		sq_free(&q);
		free(l.out.p);
	}
}

/* A good layer's digests are reported, and an empty blob is an empty layer. */
static void test_digests(void)
{
	struct layer l;
	struct sq q;
	layer_begin(&l, 1);
	add_file(&l, "f", "x");
	layer_end(&l);
	struct dimg_layer_info li = {.name = "ok", .size = l.out.n, .has_digest = 1};
	CHECK_RC(dimg_sha256_buf(l.out.p, l.out.n, li.digest));
	sq_begin(&q);
	CHECK_RC(sq_apply(&q, &l.out, &li));
	CHECK(strcmp(li.filter, "gzip") == 0 && li.got_size == l.out.n);
	struct buf empty = {0};
	struct dimg_layer_info le = {.name = "empty", .size = 0, .has_diff_id = 1};
	CHECK_RC(dimg_sha256_buf("", 0, le.diff_id));
	CHECK_RC(sq_apply(&q, &empty, &le));
	struct dimg_tree *t = sq_end(&q);
	must_find(t, "f");
	dimg_tree_free(t);
	sq_free(&q);
	free(l.out.p);
}

static void test_cas(void)
{
	struct dimg_cas *c;
	struct dimg_cas_writer *w;
	uint8_t a[32], b[32], want[32];
	uint64_t n;
	CHECK_RC(dimg_cas_open(&c, NULL));
	char *dir = strdup(dimg_cas_dir(c));
	CHECK_RC(dimg_cas_writer_new(&w, c));
	CHECK_RC(dimg_cas_writer_begin(w));
	CHECK_RC(dimg_cas_writer_write(w, "abc", 3));
	CHECK_RC(dimg_cas_writer_zeros(w, 100000));
	CHECK_RC(dimg_cas_writer_commit(w, a, &n));
	CHECK(n == 100003);
	uint8_t *ref = calloc(1, 100003);
	memcpy(ref, "abc", 3);
	CHECK_RC(dimg_sha256_buf(ref, 100003, want));
	CHECK(memcmp(a, want, 32) == 0);
	CHECK_RC(dimg_cas_writer_begin(w));
	CHECK_RC(dimg_cas_writer_write(w, ref, 100003));
	CHECK_RC(dimg_cas_writer_commit(w, b, &n));
	CHECK(memcmp(a, b, 32) == 0);
	int fd;
	struct stat st;
	CHECK_RC(dimg_cas_open_blob(c, a, &fd));
	CHECK(fstat(fd, &st) == 0 && st.st_size == 100003 && st.st_nlink == 1);
	close(fd);
	CHECK_RC(dimg_cas_writer_begin(w));
	CHECK_RC(dimg_cas_writer_write(w, "gone", 4));
	dimg_cas_writer_abort(w);
	dimg_cas_writer_free(w);
	dimg_cas_free(c);
	CHECK(access(dir, F_OK) < 0 && errno == ENOENT); /* private store removed */
	free(dir);
	free(ref);
}

/* ---- the integration driver ---- */

struct content {
	const struct dimg_files *files;
};

static int content_from_files(void *ctx, const struct dimg_entry *e, dimg_write_fn sink,
                              void *sink_ctx)
{
	const struct content *c = ctx;
	int fd, r = c->files->open(c->files->ctx, e, &fd);
	if (r < 0)
		return r;
	uint8_t buf[1 << 16];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0) {
			r = n < 0 ? -errno : 0;
			break;
		}
		if ((r = sink(sink_ctx, buf, (size_t)n)) < 0)
			break;
	}
	close(fd);
	return r;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void progress(void *ctx, const char *what, uint64_t done, uint64_t total)
{
	uint64_t *last = ctx;
	*last = done;
	(void)what;
	(void)total;
}

static int extract(int argc, char **argv)
{
	struct dimg_image_opts o = {0};
	const char *img_path = argv[2], *out = argv[3];
	unsigned flags = 0;
	uint64_t read_bytes = 0;
	for (int i = 4; i < argc; i++) {
		if (strcmp(argv[i], "--ref") == 0 && i + 1 < argc)
			o.ref = argv[++i];
		else if (strcmp(argv[i], "--platform") == 0 && i + 1 < argc)
			o.platform = argv[++i];
		else if (strcmp(argv[i], "--cas") == 0 && i + 1 < argc)
			o.cas_dir = argv[++i];
		else if (strcmp(argv[i], "--no-owner") == 0)
			flags |= DIMG_WRITE_NO_OWNER;
		else if (strcmp(argv[i], "--open-only") == 0)
			out = NULL; /* measure the squash alone */
		else
			return 2;
	}
	o.progress = progress;
	o.pctx = &read_bytes;
	struct dimg_image *img;
	struct dimg_err err = {0}, err_path = {0};
	char hex[65];
	double t0 = now();
	int r = dimg_image_open(&img, img_path, &o, &err);
	if (r < 0) {
		fprintf(stderr, "open: %s: %s (%s)\n", err.what, err.why[0] ? err.why : "?",
		        strerror(-r));
		return 3;
	}
	double t1 = now();
	struct content c = {.files = &img->files};
	r = out ? dimg_tree_write_dir(img->tree, out, content_from_files, &c, flags, NULL, NULL,
	                              &err_path)
	        : 0;
	if (r < 0) {
		fprintf(stderr, "write %s: %s\n", err_path.what[0] ? err_path.what : "?",
		        strerror(-r));
		dimg_image_free(img);
		return 1;
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	dimg_hex32(img->tree_id, hex);
	printf("tree_id %s\nentries %zu\nref %s\nconfig %s\nmanifest %s %s\n", hex, img->tree->n,
	       img->ref ? img->ref : "-", img->config_digest[0] ? img->config_digest : "-",
	       img->manifest_digest[0] ? img->manifest_digest : "-",
	       img->manifest_media_type ? img->manifest_media_type : "-");
	fprintf(stderr,
	        "squash: %.2f MB of layers in %.2f s (%.0f MB/s), write %.2f s, max RSS %ld MB\n",
	        read_bytes / 1e6, t1 - t0, read_bytes / 1e6 / (t1 - t0 > 0 ? t1 - t0 : 1e-9),
	        now() - t1, ru.ru_maxrss / 1024);
	dimg_image_free(img);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "--extract") == 0)
		return extract(argc, argv);
	if (argc > 1) {
		fprintf(stderr,
		        "usage: %s [--extract IMAGE OUTDIR [--ref R] [--platform P] "
		        "[--cas DIR] [--no-owner] [--open-only]]\n",
		        argv[0]);
		return 2;
	}
	test_cas();
	test_metadata();
	test_whiteouts();
	test_replace();
	test_hardlinks();
	test_digests();
	test_filters();
	refuse_layer(fill_dotdot, -EBADMSG, "'..' in path refused");
	refuse_layer(fill_absolute, -EBADMSG, "absolute path refused");
	refuse_layer(fill_through_symlink, -ELOOP, "parent 'etc' is a symlink");
	refuse_layer(fill_link_missing, -EBADMSG, "hardlink target 'nowhere' is not a regular");
	refuse_layer(fill_link_outside, -EBADMSG, "'..' in hardlink target refused");
	refuse_layer(fill_link_dir, -EBADMSG, "hardlink target 'd' is not a regular");
	refuse_layer(fill_whiteout_symlink, -ELOOP, "parent 's' is a symlink");
	test_hostile_sizes();
	test_hostile_streams();
	printf("test_squash: ok\n");
	return 0;
}
