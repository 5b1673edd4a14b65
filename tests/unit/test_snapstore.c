/* Unit tests of di3fs-snapshotter's store and snapshot logic (no gRPC): the
 * record format and its corruption checks, containerd's snapshot semantics
 * and error kinds, mount shapes, labels, List filters and paging, and the
 * reconciliation that follows a crash. */
#ifdef DI3FS_NO_SNAPSHOTTER /* configured with BUILD_SNAPSHOTTER=OFF */
#include <stdio.h>

int main(void)
{
	printf("test_snapstore: skipped, the snapshotter is not built\n");
	return 0;
}
#else

#include "check.h"

#include "config.h"
#include "fsutil.h"
#include "snap.h"
#include "snap_filter.h"
#include "store-internal.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK_ERR(expr, err) CHECK((expr) == -(err))
/* A path (or other string) into a char array, failing the test if cut. */
#define PATHF(buf, ...)      CHECK_RC(fsutil_pathf((buf), sizeof(buf), __VA_ARGS__))

static const struct snap_log quiet = {SNAP_LOG_ERROR};

static void sample_info(struct snap_info *info)
{
	memset(info, 0, sizeof(*info));
	info->id = 42;
	info->kind = SNAP_KIND_ACTIVE;
	info->name = strdup("ns/7/extract-1 sha256:abc");
	info->parent = strdup("ns/3/sha256:parent");
	info->created.tv_sec = 1700000000;
	info->created.tv_nsec = 123456789;
	info->updated.tv_sec = -5;
	info->updated.tv_nsec = 999999999;
	CHECK_RC(snap_labels_set(&info->labels, "containerd.io/snapshot/b", "2"));
	CHECK_RC(snap_labels_set(&info->labels, "containerd.io/snapshot/a", "1"));
	CHECK_RC(snap_labels_set(&info->labels, "empty", ""));
}

static void check_same(const struct snap_info *a, const struct snap_info *b)
{
	CHECK(a->id == b->id && a->kind == b->kind);
	CHECK(strcmp(a->name, b->name) == 0 && strcmp(a->parent, b->parent) == 0);
	CHECK(a->created.tv_sec == b->created.tv_sec && a->created.tv_nsec == b->created.tv_nsec);
	CHECK(a->updated.tv_sec == b->updated.tv_sec && a->updated.tv_nsec == b->updated.tv_nsec);
	CHECK(a->labels.n == b->labels.n);
	for (size_t i = 0; i < a->labels.n; i++) {
		CHECK(strcmp(a->labels.v[i].key, b->labels.v[i].key) == 0);
		CHECK(strcmp(a->labels.v[i].value, b->labels.v[i].value) == 0);
	}
}

/* Round trip, then every truncation, bit flip and extension must decode to
 * an error or to a valid record: never crash, never read out of bounds. */
static void test_record(void)
{
	struct snap_info in, out;
	uint8_t *buf;
	size_t len;

	sample_info(&in);
	CHECK(strcmp(in.labels.v[0].key, "containerd.io/snapshot/a") == 0);
	CHECK_RC(store_record_encode(&buf, &len, &in));
	CHECK_RC(store_record_decode(&out, in.name, strlen(in.name), buf, len));
	check_same(&in, &out);
	snap_info_clear(&out);
	for (size_t cut = 0; cut < len; cut++)
		CHECK_ERR(store_record_decode(&out, "k", 1, buf, cut), EBADMSG);
	for (size_t i = 0; i < len * 8; i++) {
		buf[i / 8] ^= (uint8_t)(1u << (i % 8));
		if (store_record_decode(&out, "k", 1, buf, len) == 0)
			snap_info_clear(&out);
		buf[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, buf, len);
	longer[len] = 0;
	CHECK_ERR(store_record_decode(&out, "k", 1, longer, len + 1), EBADMSG);
	longer[0] = 9;
	CHECK_ERR(store_record_decode(&out, "k", 1, longer, len), ENOTSUP);
	free(longer);
	free(buf);
	snap_info_clear(&in);
}

static char *make_root(void)
{
	char tmpl[] = "/tmp/di3fs-snapstore.XXXXXX";
	CHECK(mkdtemp(tmpl));
	return strdup(tmpl);
}

static void test_store(const char *root)
{
	struct store *st;
	struct store_txn *t;
	struct snap_info a, got;
	uint64_t id1, id2;
	char dir[4096];

	PATHF(dir, "%s/store", root);
	CHECK_RC(fsutil_mkdir_p(dir, 0700));
	CHECK_RC(store_open(&st, dir));
	CHECK_RC(store_begin(&t, st, 1));
	CHECK_RC(store_alloc_id(&id1, t));
	CHECK_RC(store_alloc_id(&id2, t));
	CHECK(id1 == 1 && id2 == 2);
	sample_info(&a);
	a.id = id1;
	CHECK_RC(store_put(t, &a, 1));
	CHECK_ERR(store_put(t, &a, 1), EEXIST);
	CHECK(store_has_children(t, a.parent) == 1);
	CHECK(store_has_children(t, a.name) == 0);
	CHECK(store_id_exists(t, id1) == 1 && store_id_exists(t, id2) == 0);
	CHECK_RC(store_commit(t));

	CHECK_RC(store_begin(&t, st, 0));
	CHECK_RC(store_get(&got, t, a.name));
	check_same(&a, &got);
	snap_info_clear(&got);
	CHECK_ERR(store_get(&got, t, "nope"), ENOENT);
	CHECK_ERR(store_get(&got, t, ""), EINVAL);
	char *huge = calloc(1, store_max_key(st) + 2);
	memset(huge, 'k', store_max_key(st) + 1);
	CHECK_ERR(store_get(&got, t, huge), ENAMETOOLONG);
	free(huge);
	store_abort(t);

	/* an aborted write leaves nothing behind */
	CHECK_RC(store_begin(&t, st, 1));
	CHECK_RC(store_del(t, a.name));
	store_abort(t);
	CHECK_RC(store_begin(&t, st, 1));
	CHECK_RC(store_del(t, a.name));
	CHECK(store_has_children(t, a.parent) == 0);
	CHECK(store_id_exists(t, id1) == 0);
	CHECK_ERR(store_del(t, a.name), ENOENT);
	CHECK_RC(store_commit(t));
	snap_info_clear(&a);
	store_close(st);
}

static void check_mount(const struct snap_mounts *m, const char *type, const char *opts)
{
	char joined[8192] = "";

	CHECK(m->n == 1);
	CHECK(strcmp(m->v[0].type, type) == 0);
	for (size_t i = 0; i < m->v[0].n_options; i++) {
		if (strncmp(m->v[0].options[i], "index=", 6) == 0)
			continue; /* depends on the kernel */
		strncat(joined, i ? " " : "", sizeof(joined) - strlen(joined) - 1);
		strncat(joined, m->v[0].options[i], sizeof(joined) - strlen(joined) - 1);
	}
	while (joined[0] == ' ')
		memmove(joined, joined + 1, strlen(joined));
	if (strcmp(joined, opts) != 0) {
		fprintf(stderr, "mount options [%s], expected [%s]\n", joined, opts);
		CHECK(0);
	}
}

static void write_file(const char *path, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char buf[4096];

	CHECK(fd >= 0);
	memset(buf, 'x', sizeof(buf));
	for (size_t done = 0; done < size; done += sizeof(buf))
		CHECK(write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf));
	close(fd);
}

/* Two committed layers, then actives and views on them, as containerd's
 * image unpack and container creation drive a snapshotter. */
static void test_semantics(struct snap *sn, const char *root)
{
	struct snap_mounts m;
	struct snap_info info;
	struct snap_labels l = {0};
	const char *why = NULL;
	char want[8192];
	char s[4096];

	PATHF(s, "%s/snapshots", root);
	CHECK_RC(snap_labels_set(&l, "containerd.io/snapshot/x", "y"));
	CHECK_RC(snap_prepare(&m, sn, SNAP_KIND_ACTIVE, "ns/1/extract a:b", "", &l, &why));
	PATHF(want, "rw rbind");
	check_mount(&m, "bind", want);
	CHECK(strcmp(m.v[0].source, "/") > 0 && strstr(m.v[0].source, "/snapshots/1/fs"));
	snap_mounts_clear(&m);
	CHECK_ERR(snap_prepare(&m, sn, SNAP_KIND_ACTIVE, "ns/1/extract a:b", "", NULL, &why),
	          EEXIST);
	CHECK_ERR(snap_prepare(&m, sn, SNAP_KIND_ACTIVE, "k2", "ns/1/extract a:b", NULL, &why),
	          EINVAL); /* the parent is not committed */
	CHECK_ERR(snap_prepare(&m, sn, SNAP_KIND_ACTIVE, "k2", "missing", NULL, &why), ENOENT);
	CHECK_ERR(snap_prepare(&m, sn, SNAP_KIND_COMMITTED, "k2", "", NULL, &why), EINVAL);
	CHECK_ERR(snap_prepare(&m, sn, SNAP_KIND_ACTIVE, "", "", NULL, &why), EINVAL);
	CHECK_ERR(snap_commit(sn, "L1", "nope", NULL, &why), ENOENT);
	CHECK_RC(snap_commit(sn, "L1", "ns/1/extract a:b", NULL, &why));
	CHECK_ERR(snap_commit(sn, "L1", "L1", NULL, &why), EBUSY); /* committed, not active */
	CHECK_RC(snap_stat(&info, sn, "L1", &why));
	CHECK(info.kind == SNAP_KIND_COMMITTED && info.id == 1 && info.labels.n == 0);
	CHECK(info.created.tv_sec > 0 && info.updated.tv_sec > 0);
	snap_info_clear(&info);
	CHECK_ERR(snap_stat(&info, sn, "ns/1/extract a:b", &why), ENOENT);
	CHECK_ERR(snap_mounts(&m, sn, "L1", &why), EBUSY);

	CHECK_RC(snap_prepare(&m, sn, SNAP_KIND_ACTIVE, "ex2", "L1", NULL, &why));
	snap_mounts_clear(&m);
	CHECK_RC(snap_prepare(&m, sn, SNAP_KIND_ACTIVE, "L2-taken", "L1", NULL, &why));
	snap_mounts_clear(&m);
	CHECK_ERR(snap_commit(sn, "L2-taken", "ex2", NULL, &why), EEXIST);
	CHECK_RC(snap_remove(sn, "L2-taken", &why));
	CHECK_RC(snap_commit(sn, "L2", "ex2", &l, &why));
	CHECK_ERR(snap_remove(sn, "L1", &why), ENOTEMPTY);

	/* a container: overlay with the chain nearest first */
	CHECK_RC(snap_prepare(&m, sn, SNAP_KIND_ACTIVE, "ns/9/c1", "L2", NULL, &why));
	PATHF(want, "workdir=%s/4/work upperdir=%s/4/fs lowerdir=%s/2/fs:%s/1/fs", s, s, s, s);
	check_mount(&m, "overlay", want);
	snap_mounts_clear(&m);
	CHECK_RC(snap_mounts(&m, sn, "ns/9/c1", &why));
	check_mount(&m, "overlay", want);
	snap_mounts_clear(&m);
	/* views: read-only bind of a lone parent, else lowerdirs only */
	CHECK_RC(snap_prepare(&m, sn, SNAP_KIND_VIEW, "v1", "L1", NULL, &why));
	PATHF(want, "ro rbind");
	check_mount(&m, "bind", want);
	CHECK(strstr(m.v[0].source, "/snapshots/1/fs"));
	snap_mounts_clear(&m);
	CHECK_RC(snap_prepare(&m, sn, SNAP_KIND_VIEW, "v2", "L2", NULL, &why));
	PATHF(want, "lowerdir=%s/2/fs:%s/1/fs", s, s);
	check_mount(&m, "overlay", want);
	snap_mounts_clear(&m);
	CHECK_RC(snap_prepare(&m, sn, SNAP_KIND_VIEW, "v0", "", NULL, &why));
	check_mount(&m, "bind", "ro rbind");
	snap_mounts_clear(&m);
	CHECK_ERR(snap_commit(sn, "v1c", "v1", NULL, &why), EBUSY);

	/* Usage counts what is written in the upper dir */
	struct snap_usage u0, u1;
	char path[4200];
	CHECK_RC(snap_usage(&u0, sn, "ns/9/c1", &why));
	PATHF(path, "%s/4/fs/f", s);
	write_file(path, 256 * 1024);
	PATHF(want, "%s/4/fs/hardlink", s);
	CHECK(link(path, want) == 0);
	CHECK_RC(snap_usage(&u1, sn, "ns/9/c1", &why));
	CHECK(u1.size >= u0.size + 256 * 1024 && u1.size < u0.size + 2 * 256 * 1024);
	CHECK(u1.inodes == u0.inodes + 1);
	CHECK_ERR(snap_usage(&u1, sn, "nope", &why), ENOENT);
	snap_labels_clear(&l);
}

static void test_update(struct snap *sn)
{
	struct snap_info in = {0}, out;
	const char *why;
	const char *one[] = {"labels.containerd.io/snapshot/x"};
	const char *bad[] = {"parent"};

	in.name = strdup("L2");
	in.parent = strdup("");
	CHECK_RC(snap_labels_set(&in.labels, "a", "1"));
	CHECK_RC(snap_update(&out, sn, &in, NULL, 0, &why)); /* no mask: all labels */
	CHECK(out.labels.n == 1 && strcmp(snap_labels_get(&out.labels, "a"), "1") == 0);
	CHECK(out.kind == SNAP_KIND_COMMITTED && strcmp(out.parent, "L1") == 0);
	snap_info_clear(&out);
	CHECK_RC(snap_labels_set(&in.labels, "containerd.io/snapshot/x", "z"));
	CHECK_RC(snap_update(&out, sn, &in, one, 1, &why));
	CHECK(out.labels.n == 2 && strcmp(snap_labels_get(&out.labels, one[0] + 7), "z") == 0);
	snap_info_clear(&out);
	snap_labels_del(&in.labels, "containerd.io/snapshot/x");
	CHECK_RC(snap_update(&out, sn, &in, one, 1, &why)); /* absent in info: removed */
	CHECK(out.labels.n == 1 && !snap_labels_get(&out.labels, one[0] + 7));
	snap_info_clear(&out);
	CHECK_ERR(snap_update(&out, sn, &in, bad, 1, &why), EINVAL);
	free(in.name);
	in.name = strdup("nope");
	CHECK_ERR(snap_update(&out, sn, &in, NULL, 0, &why), ENOENT);
	snap_info_clear(&in);
}

static size_t list_all(struct snap *sn, const char *const *filters, size_t n_filters,
                       size_t page_max, size_t *pages)
{
	struct snap_filter *f;
	const char *why;
	char *cursor = NULL;
	size_t total = 0;

	CHECK_RC(snap_filter_parse(&f, filters, n_filters, &why));
	*pages = 0;
	for (;;) {
		struct snap_info *page;
		size_t n;
		CHECK_RC(snap_list_page(&page, &n, &cursor, sn, f, page_max, 1 << 20));
		snap_list_free(page, n);
		if (n == 0)
			break;
		total += n;
		(*pages)++;
	}
	free(cursor);
	snap_filter_free(f);
	return total;
}

static void test_list(struct snap *sn)
{
	const char *committed[] = {"kind==committed"};
	const char *any[] = {"name==v1", "name~=^ns/"};
	const char *and[] = {"kind==view , parent==L1"};
	const char *label[] = {"labels.a==1", "labels.\"containerd.io/snapshot/x\""};
	const char *bad[][1] = {{"name=="}, {"name~=("}, {"name==\"x"}, {"name==x y"}, {"!x"}};
	const char *empty[] = {""};
	struct snap_filter *f;
	const char *why;
	size_t pages;

	/* L1 L2 ns/9/c1 v0 v1 v2 */
	CHECK(list_all(sn, NULL, 0, 100, &pages) == 6 && pages == 1);
	CHECK(list_all(sn, NULL, 0, 4, &pages) == 6 && pages == 2);
	CHECK(list_all(sn, NULL, 0, 1, &pages) == 6 && pages == 6);
	CHECK(list_all(sn, empty, 1, 100, &pages) == 6);
	CHECK(list_all(sn, committed, 1, 1, &pages) == 2);
	CHECK(list_all(sn, any, 2, 100, &pages) == 2);
	CHECK(list_all(sn, and, 1, 100, &pages) == 1);
	CHECK(list_all(sn, label, 2, 100, &pages) == 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		CHECK_ERR(snap_filter_parse(&f, bad[i], 1, &why), EINVAL);
		CHECK(why != NULL);
	}
}

static int count_entries(const char *dir)
{
	char cmd[4200];
	PATHF(cmd, "test $(ls %s | wc -l) -eq 0", dir);
	return system(cmd) == 0 ? 0 : 1;
}

/* Remove leaves the directory for Cleanup; a crash's leftovers (staging
 * dirs, dirs of ids never committed) go at the next start; every committed
 * snapshot survives a reopen. */
static void test_cleanup_and_restart(struct snap **sn, const char *root)
{
	char path[4200];
	struct stat st;
	struct snap_info info;
	const char *why;

	CHECK_RC(snap_remove(*sn, "v2", &why));
	PATHF(path, "%s/snapshots/6", root);
	CHECK(stat(path, &st) == 0); /* still there until Cleanup */
	CHECK_RC(snap_cleanup(*sn, &why));
	CHECK(stat(path, &st) < 0 && errno == ENOENT);

	/* what a kill -9 in the middle of Prepare leaves */
	PATHF(path, "%s/snapshots/new-crash1/fs", root);
	CHECK_RC(fsutil_mkdir_p(path, 0755));
	PATHF(path, "%s/snapshots/99/fs/deep", root);
	CHECK_RC(fsutil_mkdir_p(path, 0755));
	CHECK_RC(snap_cleanup(*sn, &why)); /* not while running: a Prepare may own them */
	CHECK(stat(path, &st) == 0);
	snap_close(*sn);
	CHECK_RC(snap_open(sn, root, &quiet));
	CHECK(stat(path, &st) < 0 && errno == ENOENT);
	PATHF(path, "%s/snapshots/new-crash1", root);
	CHECK(stat(path, &st) < 0 && errno == ENOENT);
	size_t pages;
	CHECK(list_all(*sn, NULL, 0, 100, &pages) == 5);
	CHECK_RC(snap_stat(&info, *sn, "ns/9/c1", &why));
	CHECK(info.kind == SNAP_KIND_ACTIVE && strcmp(info.parent, "L2") == 0);
	snap_info_clear(&info);

	/* ids are never reused, even after the highest one was removed */
	struct snap_mounts m;
	CHECK_RC(snap_prepare(&m, *sn, SNAP_KIND_ACTIVE, "after-restart", "", NULL, &why));
	CHECK(strstr(m.v[0].source, "/snapshots/8/fs")); /* v0 had 7 */
	snap_mounts_clear(&m);

	/* tear everything down, children first */
	const char *order[] = {"after-restart", "ns/9/c1", "v0", "v1", "L2", "L1"};
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		CHECK_RC(snap_remove(*sn, order[i], &why));
	CHECK_RC(snap_cleanup(*sn, &why));
	PATHF(path, "%s/snapshots", root);
	CHECK(count_entries(path) == 0);
}

static void test_config(const char *root)
{
	struct snap_config cfg;
	char path[4200];
	const char *why;
	int line;

	snap_config_defaults(&cfg);
	CHECK(strcmp(cfg.root, SNAP_DEFAULT_ROOT) == 0 && cfg.threads == SNAP_DEFAULT_THREADS);
	PATHF(path, "%s/conf", root);
	FILE *f = fopen(path, "w");
	fprintf(f, "# comment\n\n  root = /srv/di3fs  \naddress=\"/run/x y.sock\"\nthreads = 3\n"
	           "log_level = debug\n");
	fclose(f);
	CHECK_RC(snap_config_load(&cfg, path, &line));
	CHECK(strcmp(cfg.root, "/srv/di3fs") == 0 && strcmp(cfg.address, "/run/x y.sock") == 0);
	CHECK(cfg.threads == 3 && cfg.log_level == SNAP_LOG_DEBUG);
	CHECK_RC(snap_config_check(&cfg, &why));
	f = fopen(path, "w");
	fprintf(f, "root = /a\nthreads = 0\n");
	fclose(f);
	CHECK_ERR(snap_config_load(&cfg, path, &line), EINVAL);
	CHECK(line == 2);
	f = fopen(path, "w");
	fprintf(f, "colour = blue\n");
	fclose(f);
	CHECK_ERR(snap_config_load(&cfg, path, &line), ENOENT);
	CHECK_RC(snap_config_set(&cfg, "root", "/a:b"));
	CHECK_ERR(snap_config_check(&cfg, &why), EINVAL);
	CHECK_RC(snap_config_set(&cfg, "root", "relative"));
	CHECK_ERR(snap_config_check(&cfg, &why), EINVAL);
}

int main(void)
{
	char *root = make_root();
	char snaproot[4200];
	struct snap *sn;

	test_record();
	test_store(root);
	test_config(root);
	PATHF(snaproot, "%s/snap", root);
	CHECK_RC(snap_open(&sn, snaproot, &quiet));
	test_semantics(sn, snaproot);
	test_update(sn);
	test_list(sn);
	test_cleanup_and_restart(&sn, snaproot);
	snap_close(sn);
	CHECK_RC(fsutil_rmtree(root));
	free(root);
	printf("test_snapstore: ok\n");
	return 0;
}

#endif /* DI3FS_NO_SNAPSHOTTER */
