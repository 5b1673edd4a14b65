/* The walk's persistent content-hash cache: SHA-256 of regular files kept
 * across runs, keyed by what a change of content always changes (device,
 * inode, size, mtime and ctime in ns), so a tree hashed once is not read
 * again. See hashcache.c for where it lives and what it is trusted for. */
#ifndef DIMG_HASHCACHE_INTERNAL_H
#define DIMG_HASHCACHE_INTERNAL_H

#include <stdint.h>
#include <sys/stat.h>

/* A file's identity as stat gives it. */
struct hcache_key {
	uint64_t dev, ino, size;
	int64_t mtime_sec, ctime_sec;
	uint32_t mtime_nsec, ctime_nsec;
};

/* Only files whose ctime is at least this far in the past when they are
 * read are stored: a later change of content then always moves ctime past
 * the stored one, however coarse the clock the filesystem stamps with. */
#define HCACHE_RACY_NS (2 * 1000000000LL)

struct hcache;

void hcache_key_from_stat(struct hcache_key *k, const struct stat *st);
/* Whether a and b name the same file in the same state. */
int hcache_key_equal(const struct hcache_key *a, const struct hcache_key *b);

/* Opens the cache of the tree at root (rootfd: the walk's fd of it) in
 * directory dir, loading what an earlier walk stored. A cache that is
 * missing, damaged, not ours, or a filesystem it is not used on gives an
 * empty or disabled cache, never an error: only -ENOMEM fails. */
int hcache_open(struct hcache **out, const char *dir, const char *root, int rootfd);
void hcache_free(struct hcache *c);

/* 1 and the digest when k is stored, else 0. */
int hcache_lookup(const struct hcache *c, const struct hcache_key *k, uint8_t sha[32]);
/* Keeps k -> sha for the next walk if the file was old enough when read
 * (read_ns: CLOCK_REALTIME when reading began). Files on another device
 * than the root are not kept. */
int hcache_keep(struct hcache *c, const struct hcache_key *k, const uint8_t sha[32],
                int64_t read_ns);
/* Replaces the stored cache with what was kept, when that differs;
 * failures to write are ignored (the cache is an optimisation only). */
void hcache_save(struct hcache *c);

#endif
