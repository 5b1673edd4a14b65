/* The transports' parts that need no image: names in skopeo's syntax, the
 * tar header index (ustar, pax, GNU long names, links, hostile input), the
 * pipe between a pushing source and a pulling destination, and resumable
 * downloads in the cache (resumed, wrong partial bytes, wrong source). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "copy-internal.h"
#include "dimg/hash.h"
#include "dimg/tree.h"
#include "layout.h"
#include "tarindex.h"

/* ---- names ---- */

struct name_case {
	const char *in;
	int rc;
	enum xport_kind kind;
	const char *where, *ref, *digest;
};

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const struct name_case name_cases[] = {
    {"docker://nginx", 0, XPORT_DOCKER, "docker.io/library/nginx", "latest", NULL},
    {"docker://reg.example:5000/a/b:v2", 0, XPORT_DOCKER, "reg.example:5000/a/b", "v2", NULL},
    {"docker://reg.example/a@sha256:" D64, 0, XPORT_DOCKER, "reg.example/a", NULL, "sha256:" D64},
    {"docker://reg.example/a:v1@sha256:" D64, 0, XPORT_DOCKER, "reg.example/a", "v1",
     "sha256:" D64},
    {"docker://reg.example/a:bad tag", -EINVAL, 0, NULL, NULL, NULL},
    {"docker://reg.example/a@sha256:12", -EINVAL, 0, NULL, NULL, NULL},
    {"containerd:app:v1", 0, XPORT_CONTAINERD, "app", "v1", NULL},
    {"containerd:docker.io/library/nginx:1.25", 0, XPORT_CONTAINERD, "docker.io/library/nginx",
     "1.25", NULL},
    {"containerd:localhost:5000/app", 0, XPORT_CONTAINERD, "localhost:5000/app", NULL, NULL},
    {"containerd:", -EINVAL, 0, NULL, NULL, NULL},
    {"oci:/tmp/x:v1", 0, XPORT_OCI, "/tmp/x", "v1", NULL},
    {"oci:/tmp/x", 0, XPORT_OCI, "/tmp/x", NULL, NULL},
    {"oci:/tmp/x:", 0, XPORT_OCI, "/tmp/x", NULL, NULL},
    {"oci:", -EINVAL, 0, NULL, NULL, NULL},
    {"oci-archive:a.tar:example.org/app:v2", 0, XPORT_OCI_ARCHIVE, "a.tar", "example.org/app:v2",
     NULL},
    {"docker-archive:a.tar", 0, XPORT_DOCKER_ARCHIVE, "a.tar", NULL, NULL},
    {"dir:/x", -ENOTSUP, 0, NULL, NULL, NULL},
    {"docker-daemon:x:y", -ENOTSUP, 0, NULL, NULL, NULL},
    {"/nonexistent/x.tar", 0, XPORT_OCI_ARCHIVE, "/nonexistent/x.tar", NULL, NULL},
    {"/nonexistent/dir", 0, XPORT_OCI, "/nonexistent/dir", NULL, NULL},
    {"/", 0, XPORT_OCI, "/", NULL, NULL},
    {"", -EINVAL, 0, NULL, NULL, NULL},
    {"ssh://dev/containerd:app:v2", 0, XPORT_SSH, "dev", "containerd:app:v2", NULL},
    {"ssh://root@10.0.0.2:2222/oci:/srv/img:v1", 0, XPORT_SSH, "root@10.0.0.2:2222",
     "oci:/srv/img:v1", NULL},
    {"ssh://[::1]:22//srv/img", 0, XPORT_SSH, "[::1]:22", "/srv/img", NULL},
    {"ssh://dev", -EINVAL, 0, NULL, NULL, NULL},
    {"ssh://dev/", -EINVAL, 0, NULL, NULL, NULL},
    {"ssh://-oProxyCommand=x/oci:a", -EINVAL, 0, NULL, NULL, NULL},
    {"ssh://dev:99999/oci:a", -EINVAL, 0, NULL, NULL, NULL},
    {"ssh://a b/oci:a", -EINVAL, 0, NULL, NULL, NULL},
    {"ssh://dev/ssh://other/oci:a", -EINVAL, 0, NULL, NULL, NULL},
};

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void test_names(void)
{
	char back[512];
	for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
		const struct name_case *c = &name_cases[i];
		struct xport_name n;
		struct dimg_err err = {0};
		int r = xport_name_parse(&n, c->in, &err);
		if (r != c->rc)
			fprintf(stderr, "%s: got %d, want %d (%s %s)\n", c->in, r, c->rc, err.what,
			        err.why);
		CHECK(r == c->rc);
		if (r < 0) {
			CHECK(err.why[0] || err.what[0]);
			continue;
		}
		CHECK(n.kind == c->kind && same(n.where, c->where) && same(n.ref, c->ref) &&
		      same(n.digest, c->digest));
		xport_name_str(back, sizeof(back), &n);
		if (strncmp(c->in, "docker://", 9) && c->in[0] != '/' &&
		    strcmp(c->in, "oci:/tmp/x:"))
			CHECK(strcmp(back, c->in) == 0);
		xport_name_clear(&n);
	}
	/* a file that is no tar is not an image */
	struct xport_name n;
	CHECK(xport_name_parse(&n, "/proc/self/cmdline", NULL) < 0);
}

/* ---- the tar index ---- */

struct tbuf {
	uint8_t *p;
	size_t n;
};

static void tput(struct tbuf *t, const void *p, size_t n)
{
	t->p = realloc(t->p, t->n + n + 512);
	CHECK(t->p);
	memcpy(t->p + t->n, p, n);
	t->n += n;
	size_t pad = (512 - n % 512) % 512;
	memset(t->p + t->n, 0, pad);
	t->n += pad;
}

/* A ustar header (checksum right unless bad) and data. */
static void tmember(struct tbuf *t, const char *name, char type, const char *link, const void *data,
                    size_t n, int bad)
{
	uint8_t h[512] = {0};
	unsigned sum = 0;
	snprintf((char *)h, 100, "%s", name);
	snprintf((char *)h + 100, 8, "%07o", 0644);
	snprintf((char *)h + 124, 12, "%011zo", n);
	h[156] = (uint8_t)type;
	if (link)
		snprintf((char *)h + 157, 100, "%s", link);
	memcpy(h + 257,
	       "ustar\0"
	       "00",
	       8);
	memset(h + 148, ' ', 8);
	for (size_t i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum + (bad ? 1 : 0));
	tput(t, h, 512);
	if (n)
		tput(t, data, n);
}

static void tpax(struct tbuf *t, const char *key, const char *value)
{
	char rec[8192];
	int len = (int)strlen(key) + (int)strlen(value) + 3, digits = 1;
	while (snprintf(NULL, 0, "%d", len + digits) > digits)
		digits++;
	int n = snprintf(rec, sizeof(rec), "%d %s=%s\n", len + digits, key, value);
	tmember(t, "PaxHeader", 'x', NULL, rec, (size_t)n, 0);
}

static int tread(void *ctx, void *buf, size_t n, uint64_t off)
{
	struct tbuf *t = ctx;
	if (off > t->n || n > t->n - off)
		return -EIO;
	memcpy(buf, t->p + off, n);
	return 0;
}

static int tindex(struct xtar *x, struct tbuf *t)
{
	uint8_t zero[1024] = {0};
	t->p = realloc(t->p, t->n + sizeof(zero));
	CHECK(t->p);
	memcpy(t->p + t->n, zero, sizeof(zero));
	t->n += sizeof(zero);
	return xtar_index(x, tread, t, t->n, NULL);
}

static void check_member(const struct xtar *x, const struct tbuf *t, const char *name,
                         const char *want)
{
	const struct xtar_member *m = xtar_find(x, name);
	CHECK(m && m->size == strlen(want) && memcmp(t->p + m->off, want, m->size) == 0);
}

static void test_tar_good(void)
{
	struct tbuf t = {0};
	struct xtar x;
	char longname[300];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	tmember(&t, "./index.json", '0', NULL, "{}", 2, 0);
	tmember(&t, "blobs/", '5', NULL, NULL, 0, 0);
	tmember(&t, "blobs//sha256/./aa", '0', NULL, "hello", 5, 0);
	tmember(&t, "blobs/sha256/sym", '2', "aa", NULL, 0, 0);
	tmember(&t, "hard", '1', "./blobs/sha256/aa", NULL, 0, 0);
	tmember(&t, "abs", '2', "/index.json", NULL, 0, 0);
	tpax(&t, "path", longname);
	tmember(&t, "short", '0', NULL, "long one", 8, 0);
	tmember(&t, "././@LongLink", 'L', NULL, "gnu/long/name", 14, 0);
	tmember(&t, "trunc", '0', NULL, "gnu", 3, 0);
	tmember(&t, "loop1", '2', "loop2", NULL, 0, 0);
	tmember(&t, "loop2", '2', "loop1", NULL, 0, 0);
	CHECK_RC(tindex(&x, &t));
	check_member(&x, &t, "index.json", "{}");
	check_member(&x, &t, "blobs/sha256/aa", "hello");
	check_member(&x, &t, "blobs/sha256/sym", "hello");
	check_member(&x, &t, "hard", "hello");
	check_member(&x, &t, "abs", "{}");
	check_member(&x, &t, longname, "long one");
	check_member(&x, &t, "gnu/long/name", "gnu");
	CHECK(!xtar_find(&x, "short") && !xtar_find(&x, "trunc") && !xtar_find(&x, "blobs"));
	CHECK(!xtar_find(&x, "loop1") && !xtar_find(&x, "nothing"));
	xtar_free(&x);
	free(t.p);
}

static void test_tar_bad(void)
{
	static const struct {
		const char *name;
		char type;
		int bad, rc;
	} cases[] = {
	    {"../escape", '0', 0, -EBADMSG}, {"/abs", '0', 0, -EBADMSG},   {"./", '0', 0, -EBADMSG},
	    {"ok", '0', 1, -EBADMSG},        {"sparse", 'S', 0, -ENOTSUP},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tbuf t = {0};
		struct xtar x;
		tmember(&t, cases[i].name, cases[i].type, NULL, "data", 4, cases[i].bad);
		CHECK(tindex(&x, &t) == cases[i].rc);
		free(t.p);
	}
	/* twice the same member; a size past the end; a pax size past it */
	struct tbuf t = {0};
	struct xtar x;
	tmember(&t, "a", '0', NULL, "1", 1, 0);
	tmember(&t, "./a", '0', NULL, "2", 1, 0);
	CHECK(tindex(&x, &t) == -EBADMSG);
	free(t.p);
	memset(&t, 0, sizeof(t));
	tmember(&t, "a", '0', NULL, "123456", 6, 0);
	t.n -= 512; /* the data block cut off */
	CHECK(xtar_index(&x, tread, &t, t.n, NULL) == -EBADMSG);
	free(t.p);
	memset(&t, 0, sizeof(t));
	tpax(&t, "size", "99999999");
	tmember(&t, "a", '0', NULL, "1", 1, 0);
	CHECK(tindex(&x, &t) == -EBADMSG);
	free(t.p);
}

/* ---- the pipe ---- */

#define PIPE_BYTES (10u << 20)

static void *pipe_writer(void *arg)
{
	struct xpipe *p = arg;
	unsigned long long s = 7;
	uint8_t buf[70001];
	size_t sent = 0;
	int r = 0;
	while (r == 0 && sent < PIPE_BYTES) {
		size_t n = 1 + (size_t)(test_rand(&s) % sizeof(buf));
		n = n > PIPE_BYTES - sent ? PIPE_BYTES - sent : n;
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)(sent + i);
		r = xpipe_write(p, buf, n);
		sent += n;
	}
	xpipe_finish(p, r);
	return (void *)(long)r;
}

static void test_pipe(void)
{
	struct xpipe p;
	pthread_t th;
	uint8_t buf[33333];
	size_t got = 0;
	void *ret;
	CHECK_RC(xpipe_init(&p, 65536));
	CHECK(pthread_create(&th, NULL, pipe_writer, &p) == 0);
	for (;;) {
		ssize_t n = xpipe_read(&p, buf, 1 + got % sizeof(buf));
		CHECK(n >= 0);
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			CHECK(buf[i] == (uint8_t)(got + (size_t)i));
		got += (size_t)n;
	}
	pthread_join(th, &ret);
	CHECK(got == PIPE_BYTES && ret == NULL);
	xpipe_free(&p);
	/* the reader gives up: the writer is told */
	CHECK_RC(xpipe_init(&p, 4096));
	CHECK(pthread_create(&th, NULL, pipe_writer, &p) == 0);
	CHECK(xpipe_read(&p, buf, 100) == 100);
	xpipe_close(&p);
	pthread_join(th, &ret);
	CHECK((long)ret == -ECANCELED);
	xpipe_free(&p);
}

/* ---- resumable downloads ---- */

struct cache_env {
	char root[64], layout[96], cache[96], part[256], done[256];
	uint8_t *blob;
	size_t n;
	struct oci_desc d;
	struct xport *src;
	uint64_t last_resumed;
	int calls;
};

static void cache_progress(void *ctx, uint64_t done, uint64_t resumed)
{
	struct cache_env *e = ctx;
	e->calls++;
	e->last_resumed = resumed; /* of the last attempt */
	CHECK(done >= resumed && done <= e->n);
}

static void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, p, n) == (ssize_t)n && close(fd) == 0);
}

static void cache_setup(struct cache_env *e)
{
	char path[256], hex[65];
	unsigned long long s = 99;
	snprintf(e->root, sizeof(e->root), "/tmp/di3fs-xcache-XXXXXX");
	CHECK(mkdtemp(e->root));
	snprintf(e->layout, sizeof(e->layout), "%s/layout", e->root);
	snprintf(e->cache, sizeof(e->cache), "%s/cache", e->root);
	e->n = 3000000;
	e->blob = malloc(e->n);
	CHECK(e->blob);
	for (size_t i = 0; i < e->n; i++)
		e->blob[i] = (uint8_t)test_rand(&s);
	CHECK_RC(dimg_sha256_buf(e->blob, e->n, e->d.digest));
	e->d.size = e->n;
	dimg_hex32(e->d.digest, hex);
	snprintf(path, sizeof(path), "%s/blobs", e->layout);
	CHECK(mkdir(e->layout, 0755) == 0 && mkdir(path, 0755) == 0);
	snprintf(path, sizeof(path), "%s/blobs/sha256", e->layout);
	CHECK(mkdir(path, 0755) == 0);
	snprintf(path, sizeof(path), "%s/blobs/sha256/%s", e->layout, hex);
	write_file(path, e->blob, e->n);
	snprintf(e->part, sizeof(e->part), "%s/sha256/%s.partial", e->cache, hex);
	snprintf(e->done, sizeof(e->done), "%s/sha256/%s", e->cache, hex);
	struct xport_name name = {.kind = XPORT_OCI, .where = e->layout};
	CHECK_RC(xport_open(&e->src, &name, 0, NULL, NULL));
}

/* Fetches into the cache; checks what comes out and what was resumed. */
static void cache_fetch_check(struct cache_env *e, uint64_t want_resumed)
{
	int fd;
	uint8_t *back = malloc(e->n + 1);
	e->calls = 0;
	e->last_resumed = ~0ull;
	CHECK(back);
	CHECK_RC(xcache_fetch(e->cache, e->src, &e->d, cache_progress, e, &fd, NULL));
	CHECK(read(fd, back, e->n + 1) == (ssize_t)e->n && memcmp(back, e->blob, e->n) == 0);
	close(fd);
	CHECK(e->calls == 0 || e->last_resumed == want_resumed);
	CHECK(access(e->part, F_OK) < 0 && access(e->done, F_OK) == 0);
	xcache_drop(e->cache, &e->d);
	CHECK(access(e->done, F_OK) < 0);
	free(back);
}

static void test_cache(void)
{
	struct cache_env e = {0};
	uint8_t *wrong;
	cache_setup(&e);
	cache_fetch_check(&e, 0);
	/* an interrupted download: the first half is there */
	write_file(e.part, e.blob, e.n / 2);
	cache_fetch_check(&e, e.n / 2);
	/* a partial file with wrong bytes: once more from the start */
	wrong = malloc(e.n);
	CHECK(wrong);
	memcpy(wrong, e.blob, e.n);
	wrong[100] ^= 1;
	write_file(e.part, wrong, e.n / 3);
	cache_fetch_check(&e, 0);
	/* longer than the blob: dropped */
	write_file(e.part, e.blob, e.n);
	CHECK(truncate(e.part, (off_t)e.n + 10) == 0);
	cache_fetch_check(&e, 0);
	/* the source itself is wrong: refused, nothing kept */
	char hex[65], path[256];
	int fd;
	struct dimg_err err = {0};
	dimg_hex32(e.d.digest, hex);
	snprintf(path, sizeof(path), "%s/blobs/sha256/%s", e.layout, hex);
	write_file(path, wrong, e.n);
	CHECK(xcache_fetch(e.cache, e.src, &e.d, NULL, NULL, &fd, &err) == -EBADMSG);
	CHECK(strncmp(err.what, "sha256:", 7) == 0 && strstr(err.why, "digest"));
	CHECK(access(e.part, F_OK) < 0 && access(e.done, F_OK) < 0);
	xport_close(e.src);
	CHECK(lay_rmtree(e.root) == 0);
	free(wrong);
	free(e.blob);
}

int main(void)
{
	test_names();
	test_tar_good();
	test_tar_bad();
	test_pipe();
	test_cache();
	printf("test_transport: ok\n");
	return 0;
}
