/* Round trips random directory trees through dimg_tree_walk and
 * dimg_tree_write_dir, and checks what the writer and the beneath-opener
 * must refuse. As root every entry type and field is covered. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "check.h"
#include "dimg/dimg.h"
#include "dimg/hash.h"
#include "dimg/tree.h"
#include "dimg/write.h"
#include "tree-internal.h"

#define NRANDOM 160 /* random entries per tree, besides the fixed ones */

struct env {
	char base[PATH_MAX]; /* scratch directory of this run */
	bool priv;           /* root: owners, devices, trusted/security xattrs */
};

static void pjoin(char *out, const char *a, const char *b)
{
	int n = b[0] ? snprintf(out, PATH_MAX, "%s/%s", a, b) : snprintf(out, PATH_MAX, "%s", a);
	CHECK(n >= 0 && n < PATH_MAX);
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* No ".<name>.tmp-*" directory left behind in the scratch directory. */
static void check_no_temp(const struct env *env)
{
	DIR *d = opendir(env->base);
	CHECK(d);
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		if (de->d_name[0] == '.' && strstr(de->d_name, ".tmp-")) {
			fprintf(stderr, "temporary left behind: %s\n", de->d_name);
			CHECK(0);
		}
	}
	closedir(d);
}

/* ---- tree comparison ---- */

static void fail_entry(const struct dimg_entry *a, const char *field, const char *what)
{
	fprintf(stderr, "%s: entry '%s' differs in %s\n", what, a->path, field);
	exit(1);
}

static bool str_same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void compare_entry(const struct dimg_entry *a, const struct dimg_entry *b, const char *what)
{
	if (strcmp(a->path, b->path))
		fail_entry(a, "path", what);
	if (a->type != b->type)
		fail_entry(a, "type", what);
	if (a->mode != b->mode)
		fail_entry(a, "mode", what);
	if (a->uid != b->uid || a->gid != b->gid)
		fail_entry(a, "owner", what);
	if (a->mtime_sec != b->mtime_sec || a->mtime_nsec != b->mtime_nsec)
		fail_entry(a, "mtime", what);
	if (a->size != b->size)
		fail_entry(a, "size", what);
	if (a->rdev_major != b->rdev_major || a->rdev_minor != b->rdev_minor)
		fail_entry(a, "rdev", what);
	if (memcmp(a->sha256, b->sha256, 32))
		fail_entry(a, "sha256", what);
	if (!str_same(a->link, b->link))
		fail_entry(a, "link", what);
	if (a->nxattrs != b->nxattrs)
		fail_entry(a, "xattr count", what);
	for (uint32_t i = 0; i < a->nxattrs; i++) {
		const struct dimg_xattr *x = &a->xattrs[i], *y = &b->xattrs[i];
		if (strcmp(x->name, y->name) || x->value_len != y->value_len ||
		    memcmp(x->value, y->value, x->value_len))
			fail_entry(a, x->name, what);
	}
	CHECK(dimg_entry_meta_equal(a, b));
}

static void compare_trees(const struct dimg_tree *a, const struct dimg_tree *b, const char *what)
{
	size_t n = a->n < b->n ? a->n : b->n;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(a->v[i].path, b->v[i].path)) {
			fprintf(stderr, "%s: '%s' vs '%s' at %zu\n", what, a->v[i].path,
			        b->v[i].path, i);
			exit(1);
		}
		compare_entry(&a->v[i], &b->v[i], what);
	}
	if (a->n != b->n) {
		const struct dimg_tree *l = a->n > b->n ? a : b;
		fprintf(stderr, "%s: %zu vs %zu entries, first extra '%s'\n", what, a->n, b->n,
		        l->v[n].path);
		exit(1);
	}
	uint8_t ida[32], idb[32];
	CHECK_RC(dimg_tree_id(a, ida));
	CHECK_RC(dimg_tree_id(b, idb));
	CHECK(memcmp(ida, idb, 32) == 0);
}

#include "randtree.h"

/* ---- callbacks ---- */

struct progress {
	pthread_t tid;
	uint64_t done, total;
	unsigned calls;
};

static void progress_cb(void *ctx, const char *what, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;
	CHECK(pthread_equal(p->tid, pthread_self()));
	CHECK(what && what[0]);
	CHECK(done >= p->done && done <= total);
	p->done = done;
	p->total = total;
	p->calls++;
}

static uint64_t reg_bytes(const struct dimg_tree *t)
{
	uint64_t n = 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].type == DIMG_TYPE_REG)
			n += t->v[i].size;
	return n;
}

enum bad_content { GOOD, FLIP, SHORT, LONG_IGNORED, FAIL_EIO };

struct copy_ctx {
	struct dimg_files files;
	const char *bad_path;
	enum bad_content bad;
};

static int copy_content(void *ctx, const struct dimg_entry *e, dimg_write_fn sink, void *sink_ctx)
{
	struct copy_ctx *c = ctx;
	bool bad = c->bad_path && !strcmp(c->bad_path, e->path);
	if (bad && c->bad == FAIL_EIO)
		return -EIO;
	int fd, r = c->files.open(c->files.ctx, e, &fd);
	if (r < 0)
		return r;
	uint8_t buf[65536];
	uint64_t total = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		CHECK(n >= 0);
		if (bad && c->bad == SHORT && n > 0 && total + (uint64_t)n == e->size)
			n--;
		if (n == 0)
			break;
		if (bad && c->bad == FLIP && total == 0)
			buf[0] ^= 1;
		total += (uint64_t)n;
		r = sink(sink_ctx, buf, (size_t)n);
		if (r < 0)
			break;
	}
	close(fd);
	if (bad && c->bad == LONG_IGNORED) {
		CHECK(sink(sink_ctx, "x", 1) == -EBADMSG);
		return 0; /* a careless producer: the writer must still notice */
	}
	return r;
}

/* ---- round trips ---- */

static struct dimg_tree *walk_ok(const char *root, unsigned flags, unsigned nthreads)
{
	struct dimg_tree *t;
	struct progress p = {.tid = pthread_self()};
	struct dimg_err err = {0};
	int r = dimg_tree_walk(&t, root, flags, nthreads, progress_cb, &p, &err);
	if (r < 0)
		fprintf(stderr, "walk %s: %s at '%s'\n", root, strerror(-r),
		        err.what[0] ? err.what : "?");
	CHECK(r == 0 && !err.what[0] && !err.why[0]);
	if (!(flags & DIMG_WALK_NO_HASH)) {
		CHECK(p.calls > 0);
		CHECK(p.done == reg_bytes(t) && p.total == p.done);
	}
	return t;
}

static void write_ok(const struct env *env, const struct dimg_tree *t, const char *src,
                     const char *out)
{
	struct copy_ctx c = {0};
	struct progress p = {.tid = pthread_self()};
	struct dimg_err err = {0};
	CHECK_RC(dimg_dir_files_open(&c.files, src));
	unsigned flags = env->priv ? 0 : DIMG_WRITE_NO_OWNER;
	int r = dimg_tree_write_dir(t, out, copy_content, &c, flags, progress_cb, &p, &err);
	if (r < 0)
		fprintf(stderr, "write %s: %s at '%s'\n", out, strerror(-r),
		        err.what[0] ? err.what : "?");
	CHECK(r == 0 && !err.what[0] && !err.why[0]);
	CHECK(p.done == reg_bytes(t) && p.total == p.done);
	dimg_dir_files_close(&c.files);
	dimg_dir_files_close(&c.files); /* closing twice is harmless */
}

static const struct dimg_entry *first_nonempty_reg(const struct dimg_tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].type == DIMG_TYPE_REG && t->v[i].size > 1)
			return &t->v[i];
	CHECK(0);
	return NULL;
}

/* Every way of producing wrong content fails with nothing left behind. */
static void check_bad_content(const struct env *env, const struct dimg_tree *t, const char *src)
{
	static const struct {
		enum bad_content bad;
		int rc;
	} cases[] = {
	    {FLIP, -EBADMSG}, {SHORT, -EBADMSG}, {LONG_IGNORED, -EBADMSG}, {FAIL_EIO, -EIO}};
	char out[PATH_MAX];
	pjoin(out, env->base, "bad-out");
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct copy_ctx c = {.bad_path = first_nonempty_reg(t)->path, .bad = cases[k].bad};
		struct dimg_err err = {0};
		CHECK_RC(dimg_dir_files_open(&c.files, src));
		int r = dimg_tree_write_dir(t, out, copy_content, &c, env->priv ? 0 : 1, NULL, NULL,
		                            &err);
		CHECK(r == cases[k].rc);
		CHECK(!strcmp(err.what, c.bad_path));
		dimg_dir_files_close(&c.files);
		CHECK(!exists(out));
		check_no_temp(env);
	}
}

static void check_existing_out(const struct env *env, const struct dimg_tree *t, const char *src,
                               const char *out)
{
	struct copy_ctx c = {0};
	struct dimg_err err = {0};
	char dang[PATH_MAX];
	CHECK_RC(dimg_dir_files_open(&c.files, src));
	CHECK(dimg_tree_write_dir(t, out, copy_content, &c, 1, NULL, NULL, &err) == -EEXIST);
	CHECK(err.what[0]);
	/* A dangling symlink occupies the name as much as a directory does. */
	pjoin(dang, env->base, "dangling-out");
	CHECK_RC(symlink("nowhere", dang));
	CHECK(dimg_tree_write_dir(t, dang, copy_content, &c, 1, NULL, NULL, NULL) == -EEXIST);
	CHECK_RC(unlink(dang));
	/* With DIMG_WRITE_REPLACE the old directory goes, a new one stays. */
	struct stat before, after;
	unsigned flags = (env->priv ? 0 : DIMG_WRITE_NO_OWNER) | DIMG_WRITE_REPLACE;
	CHECK_RC(stat(out, &before));
	CHECK_RC(dimg_tree_write_dir(t, out, copy_content, &c, flags, NULL, NULL, NULL));
	CHECK_RC(stat(out, &after));
	CHECK(before.st_ino != after.st_ino);
	struct dimg_tree *w = walk_ok(out, 0, 1);
	compare_trees(w, t, "replaced vs source");
	dimg_tree_free(w);
	dimg_dir_files_close(&c.files);
	check_no_temp(env);
}

static void check_no_hash(const struct dimg_tree *full, const char *root)
{
	static const uint8_t zero[32];
	struct dimg_tree *t = walk_ok(root, DIMG_WALK_NO_HASH, 2);
	CHECK(t->n == full->n);
	for (size_t i = 0; i < t->n; i++) {
		CHECK(!memcmp(t->v[i].sha256, zero, 32));
		memcpy(t->v[i].sha256, full->v[i].sha256, 32);
	}
	compare_trees(t, full, "no-hash walk");
	dimg_tree_free(t);
}

/* The random tree really has every kind of entry and attribute. */
static void check_coverage(const struct env *env, const struct dimg_tree *t)
{
	unsigned types[8] = {0}, caps = 0, user = 0, trusted = 0, negative = 0, special = 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct dimg_entry *e = &t->v[i];
		types[e->type < 8 ? e->type : 0]++;
		negative += e->mtime_sec < 0 && e->mtime_nsec > 0;
		special += (e->mode & 07000) != 0;
		for (uint32_t k = 0; k < e->nxattrs; k++) {
			caps += !strcmp(e->xattrs[k].name, "security.capability");
			user += !strncmp(e->xattrs[k].name, "user.", 5);
			trusted += !strncmp(e->xattrs[k].name, "trusted.", 8) &&
			           e->type == DIMG_TYPE_SYMLINK;
		}
	}
	for (int ty = DIMG_TYPE_DIR; ty <= DIMG_TYPE_FIFO; ty++) {
		bool needs_root = ty == DIMG_TYPE_CHR || ty == DIMG_TYPE_BLK;
		CHECK(types[ty] > 0 || (needs_root && !env->priv));
	}
	CHECK(types[0] == 0 && user > 0 && negative > 0 && special > 0);
	CHECK(!env->priv || (caps > 0 && trusted > 0));
}

static void roundtrip(const struct env *env, unsigned seed)
{
	char srcname[32], outname[32], src[PATH_MAX], out[PATH_MAX], outslash[PATH_MAX + 1];
	snprintf(srcname, sizeof(srcname), "src%u", seed);
	snprintf(outname, sizeof(outname), "out%u", seed);
	pjoin(src, env->base, srcname);
	pjoin(out, env->base, outname);
	struct dimg_tree *expect = build_tree(env, seed, srcname);
	check_coverage(env, expect);
	struct dimg_tree *t1 = walk_ok(src, 0, 1);
	compare_trees(t1, expect, "walk vs built");
	struct dimg_tree *t4 = walk_ok(src, 0, 4);
	compare_trees(t4, t1, "4 threads vs 1");
	dimg_tree_free(t4);
	struct dimg_tree *t0 = walk_ok(src, 0, 0);
	compare_trees(t0, t1, "one per core vs 1");
	dimg_tree_free(t0);
	check_no_hash(t1, src);
	snprintf(outslash, sizeof(outslash), "%s/", out); /* trailing '/' is fine */
	write_ok(env, t1, src, outslash);
	check_no_temp(env);
	struct dimg_tree *t2 = walk_ok(out, 0, 3);
	compare_trees(t2, expect, "written vs built");
	check_existing_out(env, t1, src, out);
	check_bad_content(env, t1, src);
	CHECK_RC(dimg_rmtree(out));
	CHECK_RC(dimg_rmtree(src));
	CHECK(!exists(out) && !exists(src));
	dimg_tree_free(t2);
	dimg_tree_free(t1);
	dimg_tree_free(expect);
}

/* ---- refusals ---- */

static void tree_add(struct dimg_tree *t, const char *path, uint8_t type, const char *link)
{
	struct dimg_entry e = {
	    .path = (char *)path, .type = type, .mode = 0755, .link = (char *)link};
	if (type == DIMG_TYPE_SYMLINK)
		e.size = strlen(link);
	if (type == DIMG_TYPE_REG)
		CHECK_RC(dimg_sha256_buf("", 0, e.sha256));
	CHECK_RC(dimg_tree_append(t, &e));
}

static int empty_content(void *ctx, const struct dimg_entry *e, dimg_write_fn sink, void *sc)
{
	return 0;
}

/* Must fail before anything is written, and leave nothing anywhere. */
static void check_refused(const struct env *env, struct dimg_tree *t, const char *outside)
{
	char out[PATH_MAX];
	struct dimg_err err = {0};
	pjoin(out, env->base, "refused");
	int r =
	    dimg_tree_write_dir(t, out, empty_content, NULL, env->priv ? 0 : 1, NULL, NULL, &err);
	CHECK(r < 0);
	CHECK(err.what[0] || err.why[0]);
	CHECK(!exists(out));
	if (outside)
		CHECK(!exists(outside));
	check_no_temp(env);
	dimg_tree_free(t);
}

static void check_refusals(const struct env *env)
{
	char victim[PATH_MAX], abs[PATH_MAX], vfile[PATH_MAX], esc[PATH_MAX];
	struct dimg_tree *t;
	pjoin(victim, env->base, "victim");
	CHECK_RC(mkdir(victim, 0755));
	pjoin(vfile, victim, "file");
	pjoin(esc, env->base, "x");

	CHECK_RC(dimg_tree_new(&t)); /* "../x" from the temp dir is base/x */
	tree_add(t, "", DIMG_TYPE_DIR, NULL);
	tree_add(t, "../x", DIMG_TYPE_REG, NULL);
	check_refused(env, t, esc);

	CHECK_RC(dimg_tree_new(&t));
	tree_add(t, "", DIMG_TYPE_DIR, NULL);
	pjoin(abs, victim, "abs");
	tree_add(t, abs, DIMG_TYPE_REG, NULL); /* "/..." sorts after "" */
	check_refused(env, t, abs);

	CHECK_RC(dimg_tree_new(&t));
	tree_add(t, "", DIMG_TYPE_DIR, NULL);
	tree_add(t, "a", DIMG_TYPE_DIR, NULL);
	tree_add(t, "a/../x", DIMG_TYPE_REG, NULL);
	check_refused(env, t, esc);

	CHECK_RC(dimg_tree_new(&t)); /* through a symlink entry */
	tree_add(t, "", DIMG_TYPE_DIR, NULL);
	tree_add(t, "lnk", DIMG_TYPE_SYMLINK, victim);
	tree_add(t, "lnk/file", DIMG_TYPE_REG, NULL);
	check_refused(env, t, vfile);

	CHECK_RC(dimg_tree_new(&t)); /* same, with a relative target */
	tree_add(t, "", DIMG_TYPE_DIR, NULL);
	tree_add(t, "lnk", DIMG_TYPE_SYMLINK, "../victim");
	tree_add(t, "lnk/file", DIMG_TYPE_REG, NULL);
	check_refused(env, t, vfile);

	CHECK_RC(dimg_tree_new(&t)); /* hardlink to nothing */
	tree_add(t, "", DIMG_TYPE_DIR, NULL);
	tree_add(t, "h", DIMG_TYPE_HARDLINK, "nope");
	check_refused(env, t, NULL);

	CHECK_RC(dimg_tree_new(&t)); /* no root */
	tree_add(t, "a", DIMG_TYPE_DIR, NULL);
	check_refused(env, t, NULL);

	/* Bad outdir names. */
	CHECK_RC(dimg_tree_new(&t));
	tree_add(t, "", DIMG_TYPE_DIR, NULL);
	CHECK(dimg_tree_write_dir(t, "/", empty_content, NULL, 1, NULL, NULL, NULL) == -EINVAL);
	CHECK(dimg_tree_write_dir(t, ".", empty_content, NULL, 1, NULL, NULL, NULL) == -EINVAL);
	pjoin(abs, env->base, "no/such/dir");
	CHECK(dimg_tree_write_dir(t, abs, empty_content, NULL, 1, NULL, NULL, NULL) == -ENOENT);
	dimg_tree_free(t);
	CHECK(rmdir(victim) == 0); /* still empty */
}

/* ---- dimg_openat_beneath ---- */

static void write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK_RC(fd);
	CHECK(write(fd, s, strlen(s)) == (ssize_t)strlen(s));
	close(fd);
}

static void make_beneath_dir(const char *dir)
{
	char p[PATH_MAX];
	CHECK_RC(mkdir(dir, 0755));
	pjoin(p, dir, "d");
	CHECK_RC(mkdir(p, 0755));
	pjoin(p, dir, "d/f");
	write_file(p, "hello");
	pjoin(p, dir, "top");
	write_file(p, "top");
	pjoin(p, dir, "d/l");
	CHECK_RC(symlink("f", p));
	pjoin(p, dir, "s");
	CHECK_RC(symlink("d", p));
	pjoin(p, dir, "up");
	CHECK_RC(symlink("..", p));
	pjoin(p, dir, "p");
	CHECK_RC(mkfifo(p, 0644));
}

static int beneath(int dfd, const char *path, int flags)
{
	int fd = 12345;
	int r = dimg_openat_beneath(dfd, path, flags, &fd);
	if (r == 0) {
		CHECK(fd >= 0);
		CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		close(fd);
	} else {
		CHECK(fd == -1);
	}
	return r;
}

static void check_beneath(const char *dir)
{
	int dfd = open(dir, O_PATH | O_DIRECTORY);
	CHECK_RC(dfd);
	CHECK(beneath(dfd, "d/f", O_RDONLY) == 0);
	CHECK(beneath(dfd, "top", O_RDONLY) == 0);
	CHECK(beneath(dfd, "d", O_RDONLY | O_DIRECTORY) == 0);
	CHECK(beneath(dfd, "d/f", O_PATH) == 0);
	CHECK(beneath(dfd, "d/l", O_RDONLY) == -ELOOP);
	CHECK(beneath(dfd, "d/l", O_PATH) == -ELOOP);
	CHECK(beneath(dfd, "d/l", O_PATH | O_NOFOLLOW) == -ELOOP);
	CHECK(beneath(dfd, "s/f", O_RDONLY) == -ELOOP);
	CHECK(beneath(dfd, "s", O_RDONLY | O_DIRECTORY) == -ELOOP);
	CHECK(beneath(dfd, "up/top", O_RDONLY) == -ELOOP);
	static const char *const invalid[] = {"..",    "../top", "d/../top", "/etc/passwd",
	                                      "",      "d//f",   "d/",       "./top",
	                                      "d/./f", "/",      ".",        "d/.."};
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		CHECK(beneath(dfd, invalid[i], O_RDONLY) == -EINVAL);
	CHECK(beneath(dfd, "nope", O_RDONLY) == -ENOENT);
	CHECK(beneath(dfd, "top/x", O_RDONLY) == -ENOTDIR);
	CHECK(beneath(dfd, "new", O_RDWR | O_CREAT) == -EINVAL);
	close(dfd);

	struct dimg_files f;
	struct dimg_entry e = {.type = DIMG_TYPE_REG, .path = "d/f"};
	char buf[16] = {0};
	int fd;
	CHECK_RC(dimg_dir_files_open(&f, dir));
	CHECK_RC(f.open(f.ctx, &e, &fd));
	CHECK(read(fd, buf, sizeof(buf)) == 5 && !memcmp(buf, "hello", 5));
	close(fd);
	e.path = "s/f";
	CHECK(f.open(f.ctx, &e, &fd) == -ELOOP && fd == -1);
	e.path = "p"; /* a FIFO where a file should be: no hang, an error */
	CHECK(f.open(f.ctx, &e, &fd) == -ESTALE && fd == -1);
	e.path = "../x";
	CHECK(f.open(f.ctx, &e, &fd) == -EINVAL);
	dimg_dir_files_close(&f);
	CHECK(dimg_dir_files_open(&f, "/nonexistent/dir") == -ENOENT);
}

#if defined(__x86_64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef TEST_AUDIT_ARCH
/* Makes openat2 fail with ENOSYS for this process, as on kernels < 5.6. */
static void hide_openat2(void)
{
	struct sock_filter f[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TEST_AUDIT_ARCH, 1, 0),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
	CHECK_RC(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
	CHECK_RC(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog));
	CHECK(syscall(SYS_openat2, AT_FDCWD, ".", NULL, 0) < 0 && errno == ENOSYS);
}
#endif

static void run_child(void (*fn)(const struct env *, const char *), const struct env *env,
                      const char *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	CHECK_RC(pid);
	if (pid == 0) {
		fn(env, arg);
		exit(0);
	}
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Without openat2: the component walk, and a whole round trip on it. */
static void beneath_without_openat2(const struct env *env, const char *dir)
{
#ifdef TEST_AUDIT_ARCH
	hide_openat2();
	check_beneath(dir);
	char src[PATH_MAX], out[PATH_MAX];
	pjoin(src, env->base, "src-compat");
	pjoin(out, env->base, "out-compat");
	struct dimg_tree *expect = build_tree(env, 99, "src-compat");
	struct dimg_tree *t = walk_ok(src, 0, 2);
	compare_trees(t, expect, "walk without openat2");
	write_ok(env, t, src, out);
	struct dimg_tree *t2 = walk_ok(out, 0, 2);
	compare_trees(t2, expect, "written without openat2");
	CHECK_RC(dimg_rmtree(out));
	CHECK_RC(dimg_rmtree(src));
	dimg_tree_free(t);
	dimg_tree_free(t2);
	dimg_tree_free(expect);
#else
	fprintf(stderr, "no seccomp arch id for this CPU: openat2 fallback untested\n");
	exit(1);
#endif
}

/* ---- devices without CAP_MKNOD ---- */

static void drop_mknod(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	CHECK_RC(syscall(SYS_capget, &h, d));
	d[CAP_MKNOD / 32].effective &= ~(1u << (CAP_MKNOD % 32));
	CHECK_RC(syscall(SYS_capset, &h, d));
}

static void devices_unprivileged(const struct env *env, const char *unused)
{
	char out[PATH_MAX], p[PATH_MAX];
	struct dimg_err err = {0};
	struct dimg_tree *t;
	CHECK_RC(dimg_tree_new(&t));
	tree_add(t, "", DIMG_TYPE_DIR, NULL);
	tree_add(t, "dev", DIMG_TYPE_CHR, NULL);
	tree_add(t, "fifo", DIMG_TYPE_FIFO, NULL);
	tree_add(t, "file", DIMG_TYPE_REG, NULL);
	t->v[1].rdev_major = 1;
	t->v[1].rdev_minor = 3;
	drop_mknod();
	pjoin(out, env->base, "devs");
	CHECK(dimg_tree_write_dir(t, out, empty_content, NULL, 0, NULL, NULL, &err) == -EPERM);
	CHECK(!strcmp(err.what, "dev"));
	CHECK(!exists(out));
	check_no_temp(env);
	CHECK_RC(dimg_tree_write_dir(t, out, empty_content, NULL, DIMG_WRITE_NO_DEVICES, NULL, NULL,
	                             NULL));
	struct dimg_tree *w = walk_ok(out, 0, 1);
	CHECK(w->n == 3 && !dimg_tree_find(w, "dev"));
	CHECK(dimg_tree_find(w, "fifo")->type == DIMG_TYPE_FIFO);
	pjoin(p, out, "file");
	CHECK(exists(p));
	CHECK_RC(dimg_rmtree(out));
	dimg_tree_free(w);
	dimg_tree_free(t);
}

/* ---- misc ---- */

static void check_walk_errors(const struct env *env)
{
	struct dimg_tree *t = (struct dimg_tree *)1;
	struct dimg_err err = {0};
	char p[PATH_MAX];
	pjoin(p, env->base, "missing");
	CHECK(dimg_tree_walk(&t, p, 0, 1, NULL, NULL, &err) == -ENOENT);
	CHECK(t == NULL && !strcmp(err.what, p));
	pjoin(p, env->base, "afile");
	write_file(p, "x");
	CHECK(dimg_tree_walk(&t, p, 0, 1, NULL, NULL, NULL) == -ENOTDIR);
	CHECK_RC(unlink(p));
	if (!env->priv) { /* root reads anything: only testable unprivileged */
		char q[PATH_MAX];
		pjoin(p, env->base, "unreadable");
		CHECK_RC(mkdir(p, 0700));
		pjoin(q, p, "secret");
		write_file(q, "x");
		CHECK_RC(chmod(q, 0));
		dimg_err_clear(&err);
		CHECK(dimg_tree_walk(&t, p, 0, 1, NULL, NULL, &err) == -EACCES);
		CHECK(!strcmp(err.what, "secret"));
		CHECK_RC(dimg_rmtree(p));
	}
}

static void check_rmtree(const struct env *env)
{
	char p[PATH_MAX], q[PATH_MAX], keep[PATH_MAX];
	pjoin(p, env->base, "rm");
	CHECK_RC(mkdir(p, 0755));
	pjoin(q, p, "ro");
	CHECK_RC(mkdir(q, 0755));
	pjoin(q, p, "ro/f");
	write_file(q, "x");
	pjoin(q, p, "ro");
	CHECK_RC(chmod(q, 0500));
	pjoin(keep, env->base, "keep");
	CHECK_RC(mkdir(keep, 0755));
	pjoin(q, keep, "f");
	write_file(q, "x");
	pjoin(q, p, "to-keep");
	CHECK_RC(symlink(keep, q));
	CHECK_RC(dimg_rmtree(p));
	CHECK(!exists(p));
	pjoin(q, keep, "f");
	CHECK(exists(q)); /* the symlink went, not what it pointed to */
	pjoin(q, env->base, "link-to-keep");
	CHECK_RC(symlink(keep, q));
	CHECK_RC(dimg_rmtree(q));
	CHECK(!exists(q) && exists(keep));
	CHECK_RC(dimg_rmtree(keep));
	CHECK_RC(dimg_rmtree(p)); /* already gone: fine */
	CHECK(dimg_rmtree("/") == -EINVAL);
	CHECK(dimg_rmtree("..") == -EINVAL);
}

/* As root, the unprivileged path as well: a child that became nobody. */
static void unprivileged_child(const struct env *env, const char *dir)
{
	struct env u = {.priv = false};
	char outside[PATH_MAX];
	pjoin(u.base, dir, "");
	CHECK_RC(setgroups(0, NULL));
	CHECK_RC(setgid(65534));
	CHECK_RC(setuid(65534));
	CHECK(geteuid() == 65534);
	roundtrip(&u, 7);
	check_refusals(&u);
	check_walk_errors(&u);
	check_rmtree(&u);
	pjoin(outside, u.base, "outside-7");
	CHECK_RC(unlink(outside));
	check_no_temp(&u);
}

int main(void)
{
	struct env env = {.priv = geteuid() == 0};
	const char *tmp = getenv("TMPDIR");
	/* Short base: a socket path must fit in sun_path. */
	if (!tmp || strlen(tmp) > 60)
		tmp = "/tmp";
	snprintf(env.base, sizeof(env.base), "%s/dwalkXXXXXX", tmp);
	CHECK(mkdtemp(env.base));
	if (!env.priv)
		fprintf(stderr, "not root: no owners, devices, trusted/security xattrs\n");

	for (unsigned seed = 1; seed <= 4; seed++)
		roundtrip(&env, seed);
	check_refusals(&env);
	char dir[PATH_MAX];
	pjoin(dir, env.base, "beneath");
	make_beneath_dir(dir);
	check_beneath(dir);
	run_child(beneath_without_openat2, &env, dir);
	CHECK_RC(dimg_rmtree(dir));
	if (env.priv)
		run_child(devices_unprivileged, &env, NULL);
	check_walk_errors(&env);
	check_rmtree(&env);
	check_no_temp(&env);
	if (env.priv) {
		pjoin(dir, env.base, "unpriv");
		CHECK_RC(mkdir(dir, 0755));
		CHECK_RC(chown(dir, 65534, 65534));
		CHECK_RC(chmod(env.base, 0711));
		run_child(unprivileged_child, &env, dir);
		CHECK_RC(rmdir(dir)); /* the child cleaned up after itself */
	}
	char outside[PATH_MAX];
	for (unsigned seed = 1; seed <= 4; seed++) {
		snprintf(dir, sizeof(dir), "outside-%u", seed);
		pjoin(outside, env.base, dir);
		CHECK_RC(unlink(outside));
	}
	pjoin(outside, env.base, "outside-99");
	CHECK_RC(unlink(outside));
	CHECK_RC(rmdir(env.base)); /* empty: everything was cleaned up */
	printf("test_walk_write: ok\n");
	return 0;
}
