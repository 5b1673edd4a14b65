/* The walk's persistent content-hash cache (hashcache-internal.h).
 *
 * Where: one file per tree root, DIR/tree-<first 16 bytes of SHA-256 of the
 * root's real path, hex>, DIR given by the caller (cdimg: --hash-cache,
 * default $XDG_CACHE_HOME/di3fs/hashes or ~/.cache/di3fs/hashes). Every walk
 * of that root, base or target of any diff, shares it.
 *
 * Invalidation: an entry serves only a file whose device, inode, size,
 * mtime and ctime (both in ns) are exactly the stored ones. Writing a file
 * changes its ctime, and nothing but the kernel sets ctime (utimensat sets
 * it to now); entries are only stored for files whose ctime was
 * HCACHE_RACY_NS old when they were read, so a change made after the read
 * lands on a later ctime even on filesystems that stamp coarsely. Each save
 * keeps only the files of the last walk; cache files untouched for 30 days
 * are removed.
 *
 * Trust: it is used only on local filesystems that keep ctime themselves
 * (ext2/3/4, xfs, btrfs, tmpfs, f2fs): never on FUSE, NFS, overlayfs or
 * others, whose attributes a server or another layer provides. A file is
 * only read if it is a regular file owned by us and writable by nobody
 * else, in a directory likewise; a damaged one (xxh3 over its body) is
 * ignored. The digests it gives only ever name content in a walk's tree:
 * `cdimg apply` still verifies every file it writes by its SHA-256, and
 * content stores never take a digest from here. What it cannot stop: root
 * writing the block device underneath, or a clock set back across a change
 * within the same nanosecond stamps; --hash-cache none reads everything.
 * The layout is docs/FORMAT.md, "Hash cache".
 *
 * Layout (little-endian): header 32 bytes (magic "DI3FSHC1", u32 version 1,
 * u32 root path length L, u64 record count N, u64 XXH3-64 of everything
 * after the header), the root path (L bytes), then N records of 80 bytes
 * sorted by (dev, ino), each unique: u64 dev, ino, size; s64 mtime_sec,
 * ctime_sec; u32 mtime_nsec, ctime_nsec; the SHA-256. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "dimg/hash.h"
#include "endian-internal.h"
#include "hashcache-internal.h"

#define HC_MAGIC      "DI3FSHC1"
#define HC_VERSION    1u
#define HC_HDR        32
#define HC_OFF_VER    8
#define HC_OFF_PATHLN 12
#define HC_OFF_COUNT  16
#define HC_OFF_SUM    24
#define HC_REC        80
#define HC_R_DEV      0
#define HC_R_INO      8
#define HC_R_SIZE     16
#define HC_R_MTIME    24
#define HC_R_CTIME    32
#define HC_R_MNSEC    40
#define HC_R_CNSEC    44
#define HC_R_SHA      48
_Static_assert(HC_R_SHA + 32 == HC_REC, "hash cache record layout");
_Static_assert(HC_OFF_SUM + 8 == HC_HDR, "hash cache header layout");
/* Far more than any tree's files; bounds what a damaged header can ask. */
#define HC_MAX_RECORDS (64u << 20)
#define HC_PRUNE_SEC   (30 * 24 * 3600)

struct hc_rec {
	struct hcache_key k;
	uint8_t sha[32];
};

struct hcache {
	int enabled;
	uint64_t root_dev;
	char *dir, *file, *root; /* root: its real path */
	struct hc_rec *old;      /* loaded, sorted */
	size_t nold;
	struct hc_rec *kept; /* this walk's, unsorted */
	size_t nkept, capkept;
};

void hcache_key_from_stat(struct hcache_key *k, const struct stat *st)
{
	memset(k, 0, sizeof(*k));
	k->dev = (uint64_t)st->st_dev;
	k->ino = (uint64_t)st->st_ino;
	k->size = (uint64_t)st->st_size;
	k->mtime_sec = st->st_mtim.tv_sec;
	k->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	k->ctime_sec = st->st_ctim.tv_sec;
	k->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
}

int hcache_key_equal(const struct hcache_key *a, const struct hcache_key *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
	       a->ctime_sec == b->ctime_sec && a->ctime_nsec == b->ctime_nsec;
}

static int hc_cmp_id(const struct hcache_key *a, const struct hcache_key *b)
{
	if (a->dev != b->dev)
		return a->dev < b->dev ? -1 : 1;
	if (a->ino != b->ino)
		return a->ino < b->ino ? -1 : 1;
	return 0;
}

static int hc_cmp_rec(const void *a, const void *b)
{
	return hc_cmp_id(&((const struct hc_rec *)a)->k, &((const struct hc_rec *)b)->k);
}

/* Filesystems whose ctime only their own kernel code sets. */
static int hc_fs_trusted(int fd)
{
	static const unsigned long ok[] = {
	    0xEF53,     /* ext2/3/4 */
	    0x58465342, /* xfs */
	    0x9123683E, /* btrfs */
	    0x01021994, /* tmpfs */
	    0xF2F52010, /* f2fs */
	};
	struct statfs sf;
	if (fstatfs(fd, &sf) < 0)
		return 0;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if ((unsigned long)sf.f_type == ok[i])
			return 1;
	return 0;
}

/* Ours and writable by nobody else. */
static int hc_owned(const struct stat *st)
{
	return st->st_uid == geteuid() && !(st->st_mode & (S_IWGRP | S_IWOTH));
}

static int hc_names(struct hcache *c, const char *dir, const char *root)
{
	uint8_t d[32];
	char hex[65];
	c->root = realpath(root, NULL);
	if (!c->root)
		return errno == ENOMEM ? -ENOMEM : 0;
	if (dimg_sha256_buf(c->root, strlen(c->root), d) < 0)
		return -ENOMEM;
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	c->dir = strdup(dir);
	if (!c->dir || asprintf(&c->file, "%s/tree-%s", dir, hex) < 0) {
		c->file = NULL;
		return -ENOMEM;
	}
	return 1;
}

static void hc_rec_get(struct hc_rec *r, const uint8_t *p)
{
	r->k.dev = le64dec(p + HC_R_DEV);
	r->k.ino = le64dec(p + HC_R_INO);
	r->k.size = le64dec(p + HC_R_SIZE);
	r->k.mtime_sec = (int64_t)le64dec(p + HC_R_MTIME);
	r->k.ctime_sec = (int64_t)le64dec(p + HC_R_CTIME);
	r->k.mtime_nsec = le32dec(p + HC_R_MNSEC);
	r->k.ctime_nsec = le32dec(p + HC_R_CNSEC);
	memcpy(r->sha, p + HC_R_SHA, 32);
}

static void hc_rec_put(uint8_t *p, const struct hc_rec *r)
{
	le64enc(p + HC_R_DEV, r->k.dev);
	le64enc(p + HC_R_INO, r->k.ino);
	le64enc(p + HC_R_SIZE, r->k.size);
	le64enc(p + HC_R_MTIME, (uint64_t)r->k.mtime_sec);
	le64enc(p + HC_R_CTIME, (uint64_t)r->k.ctime_sec);
	le32enc(p + HC_R_MNSEC, r->k.mtime_nsec);
	le32enc(p + HC_R_CNSEC, r->k.ctime_nsec);
	memcpy(p + HC_R_SHA, r->sha, 32);
}

/* Parses a whole cache file; anything unexpected leaves the cache empty. */
static int hc_parse(struct hcache *c, const uint8_t *p, size_t len)
{
	if (len < HC_HDR || memcmp(p, HC_MAGIC, 8) != 0 || le32dec(p + HC_OFF_VER) != HC_VERSION)
		return 0;
	uint64_t pl = le32dec(p + HC_OFF_PATHLN), n = le64dec(p + HC_OFF_COUNT);
	if (n > HC_MAX_RECORDS || pl != strlen(c->root) || len != HC_HDR + pl + n * HC_REC)
		return 0;
	if (dimg_xxh3(p + HC_HDR, len - HC_HDR) != le64dec(p + HC_OFF_SUM) ||
	    memcmp(p + HC_HDR, c->root, pl) != 0)
		return 0;
	c->old = calloc(n ? n : 1, sizeof(*c->old));
	if (!c->old)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		hc_rec_get(&c->old[i], p + HC_HDR + pl + i * HC_REC);
		if (i && hc_cmp_id(&c->old[i - 1].k, &c->old[i].k) >= 0)
			return 0; /* not sorted: nold stays 0 */
	}
	c->nold = n;
	return 0;
}

static int hc_read_all(int fd, uint8_t *buf, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t k = read(fd, buf + off, len - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		off += (size_t)k;
	}
	return 0;
}

static int hc_load(struct hcache *c)
{
	struct stat st, dst;
	int r = 0;
	if (stat(c->dir, &dst) < 0 || !S_ISDIR(dst.st_mode) || !hc_owned(&dst))
		return 0;
	int fd = open(c->file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && hc_owned(&st) &&
	    (uint64_t)st.st_size <= HC_HDR + PATH_MAX + (uint64_t)HC_MAX_RECORDS * HC_REC) {
		size_t len = (size_t)st.st_size;
		uint8_t *buf = malloc(len ? len : 1);
		if (!buf)
			r = -ENOMEM;
		else if (hc_read_all(fd, buf, len) == 0)
			r = hc_parse(c, buf, len);
		free(buf);
	}
	close(fd);
	return r;
}

int hcache_open(struct hcache **out, const char *dir, const char *root, int rootfd)
{
	struct stat st;
	struct hcache *c = calloc(1, sizeof(*c));
	*out = NULL;
	if (!c)
		return -ENOMEM;
	int r = 0;
	if (dir && fstat(rootfd, &st) == 0 && hc_fs_trusted(rootfd)) {
		c->root_dev = (uint64_t)st.st_dev;
		r = hc_names(c, dir, root);
		c->enabled = r > 0;
		if (r > 0)
			r = hc_load(c);
	}
	if (r < 0) {
		hcache_free(c);
		return r;
	}
	*out = c;
	return 0;
}

void hcache_free(struct hcache *c)
{
	if (!c)
		return;
	free(c->dir);
	free(c->file);
	free(c->root);
	free(c->old);
	free(c->kept);
	free(c);
}

int hcache_lookup(const struct hcache *c, const struct hcache_key *k, uint8_t sha[32])
{
	size_t lo = 0, hi = c && c->enabled ? c->nold : 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = hc_cmp_id(&c->old[mid].k, k);
		if (d == 0) {
			if (!hcache_key_equal(&c->old[mid].k, k))
				return 0;
			memcpy(sha, c->old[mid].sha, 32);
			return 1;
		}
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

int hcache_keep(struct hcache *c, const struct hcache_key *k, const uint8_t sha[32],
                int64_t read_ns)
{
	if (!c || !c->enabled || k->dev != c->root_dev)
		return 0;
	int64_t ctime_ns = k->ctime_sec * 1000000000LL + k->ctime_nsec;
	if (k->ctime_sec > INT64_MAX / 1000000000LL - 1 || ctime_ns > read_ns - HCACHE_RACY_NS)
		return 0;
	if (c->nkept == c->capkept) {
		size_t cap = c->capkept ? 2 * c->capkept : 256;
		struct hc_rec *v = realloc(c->kept, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->kept = v;
		c->capkept = cap;
	}
	c->kept[c->nkept].k = *k;
	memcpy(c->kept[c->nkept++].sha, sha, 32);
	return 0;
}

/* Sorts what was kept and drops repeated inodes (hardlinks are hashed once,
 * but a caller may keep one twice). */
static void hc_sort_kept(struct hcache *c)
{
	size_t n = 0;
	if (c->nkept)
		qsort(c->kept, c->nkept, sizeof(*c->kept), hc_cmp_rec);
	for (size_t i = 0; i < c->nkept; i++)
		if (!n || hc_cmp_id(&c->kept[n - 1].k, &c->kept[i].k) != 0)
			c->kept[n++] = c->kept[i];
	c->nkept = n;
}

static int hc_same_as_loaded(const struct hcache *c)
{
	if (c->nkept != c->nold)
		return 0;
	for (size_t i = 0; i < c->nkept; i++)
		if (!hcache_key_equal(&c->kept[i].k, &c->old[i].k) ||
		    memcmp(c->kept[i].sha, c->old[i].sha, 32) != 0)
			return 0;
	return 1;
}

/* mkdir -p with mode 0700 for what it creates; the last component must
 * end up ours and closed to others. */
static int hc_mkdirs(const char *dir)
{
	char *p = strdup(dir);
	struct stat st;
	if (!p)
		return -1;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		(void)mkdir(p, 0700);
		*s = '/';
	}
	(void)mkdir(p, 0700);
	free(p);
	return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && hc_owned(&st) ? 0 : -1;
}

static void hc_prune(const struct hcache *c)
{
	DIR *d = opendir(c->dir);
	struct dirent *de;
	struct stat st;
	time_t now = time(NULL);
	if (!d)
		return;
	while ((de = readdir(d)) != NULL)
		if (!strncmp(de->d_name, "tree-", 5) &&
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && st.st_mtime + HC_PRUNE_SEC < now)
			(void)unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

static uint8_t *hc_encode(const struct hcache *c, size_t *len)
{
	size_t pl = strlen(c->root);
	*len = HC_HDR + pl + c->nkept * HC_REC;
	uint8_t *buf = calloc(1, *len);
	if (!buf)
		return NULL;
	memcpy(buf, HC_MAGIC, 8);
	le32enc(buf + HC_OFF_VER, HC_VERSION);
	le32enc(buf + HC_OFF_PATHLN, (uint32_t)pl);
	le64enc(buf + HC_OFF_COUNT, c->nkept);
	memcpy(buf + HC_HDR, c->root, pl);
	for (size_t i = 0; i < c->nkept; i++)
		hc_rec_put(buf + HC_HDR + pl + i * HC_REC, &c->kept[i]);
	le64enc(buf + HC_OFF_SUM, dimg_xxh3(buf + HC_HDR, *len - HC_HDR));
	return buf;
}

static void hc_write(const struct hcache *c, const uint8_t *buf, size_t len)
{
	char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp-XXXXXX", c->file) < 0)
		return;
	int fd = mkostemp(tmp, O_CLOEXEC), ok = fd >= 0;
	for (size_t off = 0; ok && off < len;) {
		ssize_t k = write(fd, buf + off, len - off);
		if (k < 0 && errno == EINTR)
			continue;
		ok = k > 0;
		off += ok ? (size_t)k : 0;
	}
	if (fd >= 0 && close(fd) < 0)
		ok = 0;
	/* No fsync: a cache torn by a crash fails its checksum and is redone. */
	if (fd >= 0 && (!ok || rename(tmp, c->file) < 0))
		(void)unlink(tmp);
	free(tmp);
}

void hcache_save(struct hcache *c)
{
	size_t len;
	if (!c || !c->enabled)
		return;
	hc_sort_kept(c);
	if (c->nkept == 0 && c->nold == 0)
		return;
	if (hc_same_as_loaded(c)) {
		(void)utimensat(AT_FDCWD, c->file, NULL, 0); /* in use: not pruned */
		return;
	}
	if (hc_mkdirs(c->dir) < 0)
		return;
	uint8_t *buf = hc_encode(c, &len);
	if (buf)
		hc_write(c, buf, len);
	free(buf);
	hc_prune(c);
}
