/* The walk's persistent hash cache: what it serves, what invalidates an
 * entry, what it refuses to store or to read, and that a walk through it
 * gives the same tree as a walk without it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "dimg/hash.h"
#include "dimg/tree.h"
#include "hashcache-internal.h"
#include "tree-internal.h"

#define NFILES 12

struct env {
	char base[PATH_MAX], tree[PATH_MAX], cache[PATH_MAX];
	int trusted_fs; /* the scratch filesystem is one the cache is used on */
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void pjoin(char *out, const char *a, const char *b)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", a, b);
	CHECK(n >= 0 && n < PATH_MAX);
}

static void put_file(const char *dir, const char *name, const char *text)
{
	char p[PATH_MAX];
	pjoin(p, dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	CHECK(close(fd) == 0);
}

static struct hcache_key key_of(const char *path)
{
	struct stat st;
	struct hcache_key k;
	CHECK(lstat(path, &st) == 0);
	hcache_key_from_stat(&k, &st);
	return k;
}

static struct hcache *open_cache(const struct env *env)
{
	struct hcache *c = NULL;
	int fd = open(env->tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_RC(hcache_open(&c, env->cache, env->tree, fd));
	close(fd);
	CHECK(c);
	return c;
}

static void cache_file(const struct env *env, char *out)
{
	char real[PATH_MAX];
	uint8_t d[32];
	CHECK(realpath(env->tree, real));
	CHECK_RC(dimg_sha256_buf(real, strlen(real), d));
	int n = snprintf(out, PATH_MAX, "%s/tree-", env->cache);
	for (int i = 0; i < 16; i++)
		n += snprintf(out + n, PATH_MAX - (size_t)n, "%02x", d[i]);
}

/* Lookups hit only on the exact key; racy and foreign-device files are
 * not stored; what is stored survives a save and a new open. */
static void test_keys(const struct env *env)
{
	char p[PATH_MAX];
	uint8_t sha[32], got[32];
	memset(sha, 0xab, sizeof(sha));
	pjoin(p, env->tree, "f0");
	struct hcache_key k = key_of(p), racy = k, other = k;
	int64_t ctime = k.ctime_sec * 1000000000LL + k.ctime_nsec;
	struct hcache *c = open_cache(env);
	CHECK(!hcache_lookup(c, &k, got));
	CHECK_RC(hcache_keep(c, &k, sha, ctime + HCACHE_RACY_NS + 1));
	racy.ino++;
	CHECK_RC(hcache_keep(c, &racy, sha, ctime + HCACHE_RACY_NS - 1));
	other.dev++;
	other.ino += 2;
	CHECK_RC(hcache_keep(c, &other, sha, ctime + HCACHE_RACY_NS + 1));
	hcache_save(c);
	hcache_free(c);

	c = open_cache(env);
	CHECK(hcache_lookup(c, &k, got) == (env->trusted_fs ? 1 : 0));
	CHECK(!env->trusted_fs || memcmp(got, sha, 32) == 0);
	CHECK(!hcache_lookup(c, &racy, got));
	CHECK(!hcache_lookup(c, &other, got));
	/* Every field of the key counts. */
	struct hcache_key v[7];
	for (int i = 0; i < 7; i++)
		v[i] = k;
	v[0].size++;
	v[1].mtime_sec++;
	v[2].mtime_nsec ^= 1;
	v[3].ctime_sec++;
	v[4].ctime_nsec ^= 1;
	v[5].ino ^= 1;
	v[6].dev ^= 1;
	for (int i = 0; i < 7; i++)
		CHECK(!hcache_lookup(c, &v[i], got));
	hcache_free(c);
	cache_file(env, p);
	CHECK(unlink(p) == 0 || !env->trusted_fs);
}

static void walk(const struct env *env, const char *cache, struct dimg_tree **t,
                 struct dimg_walk_stats *st)
{
	struct dimg_walk_opts o = {.nthreads = 2, .hash_cache = cache, .stats = st};
	CHECK_RC(dimg_tree_walk_opts(t, env->tree, &o, NULL));
}

static void check_same_tree(const struct dimg_tree *a, const struct dimg_tree *b)
{
	uint8_t x[32], y[32];
	CHECK_RC(dimg_tree_id(a, x));
	CHECK_RC(dimg_tree_id(b, y));
	CHECK(memcmp(x, y, 32) == 0);
}

/* A damaged cache file, or one others may write, is not read. */
static void test_refused(const struct env *env, const struct dimg_tree *plain)
{
	char f[PATH_MAX];
	struct dimg_walk_stats st;
	struct dimg_tree *t;
	cache_file(env, f);
	CHECK(chmod(f, 0662) == 0);
	walk(env, env->cache, &t, &st);
	CHECK(st.files_cached == 0);
	check_same_tree(plain, t);
	dimg_tree_free(t);
	/* That walk wrote a fresh file (the temporary is 0600); flip a byte. */
	int fd = open(f, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	uint8_t b;
	off_t off = lseek(fd, 0, SEEK_END) - 1;
	CHECK(pread(fd, &b, 1, off) == 1);
	b ^= 1;
	CHECK(pwrite(fd, &b, 1, off) == 1);
	close(fd);
	walk(env, env->cache, &t, &st);
	CHECK(st.files_cached == 0 && st.files_hashed == NFILES);
	check_same_tree(plain, t);
	dimg_tree_free(t);
}

/* Walks through the cache give the tree a plain walk gives; unchanged
 * files are not read again, a rewritten one (same size, mtime put back)
 * is. */
static void test_walks(const struct env *env)
{
	struct dimg_walk_stats st;
	struct dimg_tree *plain, *t;
	walk(env, NULL, &plain, &st);
	CHECK(st.files_hashed == NFILES && st.files_cached == 0);
	walk(env, env->cache, &t, &st);
	check_same_tree(plain, t);
	dimg_tree_free(t);
	walk(env, env->cache, &t, &st);
	check_same_tree(plain, t);
	dimg_tree_free(t);
	if (!env->trusted_fs) {
		fprintf(stderr, "test_hashcache: scratch filesystem not one the cache is used on: "
		                "hits not checked\n");
		dimg_tree_free(plain);
		return;
	}
	CHECK(st.files_cached == NFILES && st.files_hashed == 0);

	char p[PATH_MAX];
	struct stat before;
	pjoin(p, env->tree, "f3");
	CHECK(lstat(p, &before) == 0);
	put_file(env->tree, "f3", "file 3 changed!");
	struct timespec ts[2] = {before.st_atim, before.st_mtim};
	CHECK(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW) == 0);
	walk(env, env->cache, &t, &st);
	CHECK(st.files_hashed == 1 && st.files_cached == NFILES - 1);
	const struct dimg_entry *e = dimg_tree_find(t, "f3");
	uint8_t want[32];
	CHECK(e && e->size == 15);
	CHECK_RC(dimg_sha256_buf("file 3 changed!", 15, want));
	CHECK(memcmp(e->sha256, want, 32) == 0);
	dimg_tree_free(t);
	dimg_tree_free(plain);
	walk(env, NULL, &plain, &st);
	test_refused(env, plain);
	dimg_tree_free(plain);
}

int main(void)
{
	struct env env;
	struct statfs sf;
	const char *tmp = getenv("TMPDIR");
	snprintf(env.base, sizeof(env.base), "%s/di3fs-hashcache-XXXXXX", tmp ? tmp : "/tmp");
	CHECK(mkdtemp(env.base));
	pjoin(env.tree, env.base, "tree");
	pjoin(env.cache, env.base, "cache/hashes");
	CHECK(mkdir(env.tree, 0755) == 0);
	CHECK(statfs(env.base, &sf) == 0);
	env.trusted_fs = sf.f_type == 0xEF53 || sf.f_type == 0x58465342 ||
	                 sf.f_type == 0x9123683E || sf.f_type == 0x01021994 ||
	                 sf.f_type == 0xF2F52010;
	for (int i = 0; i < NFILES; i++) {
		char name[16], text[32];
		snprintf(name, sizeof(name), "f%d", i);
		snprintf(text, sizeof(text), "file %d", i * 1000);
		put_file(env.tree, name, text);
	}
	test_keys(&env);
	/* Files are only stored once their ctime is HCACHE_RACY_NS old. */
	int64_t ready = now_ns() + HCACHE_RACY_NS + 100000000LL;
	while (now_ns() < ready)
		usleep(100000);
	test_walks(&env);
	CHECK(dimg_rmtree(env.base) == 0);
	printf("test_hashcache: ok\n");
	return 0;
}
