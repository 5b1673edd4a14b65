/* Temporaries named after their writer (dimg/fileio.h), reclaimed by a
 * later run once that writer is gone, and the removal of trees.
 *
 * Two facts must both say "gone" before anything is removed: the name's
 * PID and start time match no live process (exact in our PID namespace,
 * start times make PID reuse harmless), and the flock the writer held while
 * it lived can be taken (the kernel drops it when the writer dies, in any
 * namespace and, where the file system supports it, on any host). The
 * name alone would be wrong for a writer in another PID namespace; the
 * lock alone would be wrong in the instant between creating a temporary
 * and locking it, and where flock is not supported. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dimg/fileio.h"
#include "tree-internal.h"

#define TAG_RAND 6
/* "<pid>-<start>-<rand>": 10 + 1 + 20 + 1 + 6 digits and dashes, NUL. */
#define TAG_MAX 40

/* ---- removal ---- */

/* Deletes while reading, as rm -rf does: entries not yet returned still
 * come, and a straggler only makes the final rmdir fail. */
static int rmtree_children(int fd)
{
	struct stat st;
	/* Our own read-only directories (unprivileged writes) must become
	 * writable before their entries can go. */
	if (fstat(fd, &st) == 0 && (st.st_mode & 0700) != 0700)
		(void)fchmod(fd, (st.st_mode & 07777) | 0700);
	int dup_fd = dup(fd);
	if (dup_fd < 0)
		return -errno;
	DIR *d = fdopendir(dup_fd);
	if (!d) {
		int r = -errno;
		close(dup_fd);
		return r;
	}
	int r = 0;
	for (struct dirent *de; r == 0 && (de = readdir(d)) != NULL;)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			r = dimg_rmtree_at(fd, de->d_name);
	closedir(d);
	return r;
}

int dimg_rmtree_at(int dfd, const char *name)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES && fchmodat(dfd, name, 0700, AT_SYMLINK_NOFOLLOW) == 0)
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	int r = rmtree_children(fd);
	close(fd);
	if (r == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		r = -errno;
	return r;
}

/* ---- owners ---- */

/* Field 22 of /proc/PID/stat (clock ticks after boot). -ENOENT when there
 * is no such process here. */
static int proc_start_time(pid_t pid, unsigned long long *out)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH ? -ENOENT : -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ENOENT; /* exited meanwhile */
	buf[n] = '\0';
	/* The command name (field 2) may hold spaces and ')': skip to the
	 * last ')', then fields 3 to 21. */
	char *p = strrchr(buf, ')');
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (!p)
		return -EIO;
	char *end;
	errno = 0;
	*out = strtoull(p + 1, &end, 10);
	return errno || end == p + 1 ? -EIO : 0;
}

/* 1 if a live process has pid and start time start, 0 if none has, -errno
 * when it cannot be told (no /proc). */
static int owner_alive(pid_t pid, unsigned long long start)
{
	unsigned long long now;
	int r = proc_start_time(pid, &now);
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : now == start;
}

static int self_tag(char out[TAG_MAX])
{
	static const char alnum[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned long long start = 0;
	uint8_t rnd[TAG_RAND];
	char r6[TAG_RAND + 1];
	pid_t pid = getpid();
	(void)proc_start_time(pid, &start); /* no /proc: 0, and no reclaiming */
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -EIO;
	for (int i = 0; i < TAG_RAND; i++)
		r6[i] = alnum[rnd[i] % (sizeof(alnum) - 1)];
	r6[TAG_RAND] = '\0';
	snprintf(out, TAG_MAX, "%d-%llu-%s", (int)pid, start, r6);
	return 0;
}

/* The digits of name that end just before end, read backwards: their
 * value in *v and where they start in *beg. false if none or over 20. */
static bool digits_before(const char *name, const char *end, const char **beg,
                          unsigned long long *v)
{
	const char *p = end;
	while (p > name && p[-1] >= '0' && p[-1] <= '9' && end - p <= 20)
		p--;
	if (p == end || end - p > 20)
		return false;
	errno = 0;
	*v = strtoull(p, NULL, 10);
	*beg = p;
	return errno == 0;
}

static bool is_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* If name ends in a tag, its owner and the length of what precedes it. */
static bool split_tag(const char *name, size_t *head, pid_t *pid, unsigned long long *start)
{
	size_t len = strlen(name);
	unsigned long long p;
	const char *b;
	if (len < TAG_RAND + 4)
		return false;
	const char *r = name + len - TAG_RAND;
	for (int i = 0; i < TAG_RAND; i++)
		if (!is_alnum(r[i]))
			return false;
	if (r[-1] != '-' || !digits_before(name, r - 1, &b, start) || b == name || b[-1] != '-' ||
	    !digits_before(name, b - 1, &b, &p) || p == 0 || p > INT32_MAX)
		return false;
	*head = (size_t)(b - name);
	*pid = (pid_t)p;
	return true;
}

/* name is prefix + tag, or "." + (such a name, recursively) + ".tmp-" +
 * tag; *pid and *start are the outermost tag's owner. */
static bool temp_of(const char *name, const char *prefix, pid_t *pid, unsigned long long *start)
{
	size_t head, plen = strlen(prefix);
	if (!split_tag(name, &head, pid, start))
		return false;
	if (head == plen && !strncmp(name, prefix, plen))
		return true;
	if (head < 1 + 5 || name[0] != '.' || strncmp(name + head - 5, ".tmp-", 5))
		return false;
	char *inner = strndup(name + 1, head - 6);
	pid_t ip;
	unsigned long long is;
	bool ok = inner && temp_of(inner, prefix, &ip, &is);
	free(inner);
	return ok;
}

/* ---- create and reclaim ---- */

static int create_locked(int dirfd, const char *name, int dir, int *fd)
{
	if (dir && mkdirat(dirfd, name, 0700) < 0)
		return -errno;
	*fd = dir ? openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
	          : openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (*fd < 0) {
		int r = -errno;
		if (dir)
			(void)unlinkat(dirfd, name, AT_REMOVEDIR);
		return r;
	}
	/* Best effort: where flock is refused (some network file systems),
	 * the name still protects the temporary from reclaimers here. */
	(void)flock(*fd, LOCK_EX | LOCK_NB);
	return 0;
}

int dimg_temp_create(int dirfd, const char *prefix, int dir, char **name, int *fd)
{
	char tag[TAG_MAX];
	size_t n = strlen(prefix) + TAG_MAX;
	*name = NULL;
	*fd = -1;
	for (int tries = 0; tries < 16; tries++) {
		int r = self_tag(tag);
		char *p = r < 0 ? NULL : malloc(n);
		if (r < 0 || !p)
			return r < 0 ? r : -ENOMEM;
		snprintf(p, n, "%s%s", prefix, tag);
		r = create_locked(dirfd, p, dir, fd);
		if (r == 0) {
			*name = p;
			return 0;
		}
		free(p);
		if (r != -EEXIST)
			return r;
	}
	return -EEXIST;
}

/* 1 if removed, 0 if left alone (alive, locked, not ours, not a file or
 * directory), -errno. The lock is held while removing. */
static int reclaim_one(int dirfd, const char *name)
{
	struct stat st, fst;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (st.st_uid != geteuid() || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
		return 0;
	int fd = openat(dirfd, name,
	                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
	                    (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	int r = 0;
	if (fstat(fd, &fst) == 0 && fst.st_dev == st.st_dev && fst.st_ino == st.st_ino &&
	    flock(fd, LOCK_EX | LOCK_NB) == 0) {
		r = S_ISDIR(st.st_mode) ? dimg_rmtree_at(dirfd, name)
		                        : (unlinkat(dirfd, name, 0) < 0 ? -errno : 0);
		r = r < 0 ? r : 1;
	}
	close(fd);
	return r;
}

int dimg_temp_reclaim(int dirfd, const char *prefix)
{
	unsigned long long self;
	if (proc_start_time(getpid(), &self) < 0)
		return 0; /* no /proc: no telling who is alive */
	int dup_fd = dup(dirfd);
	DIR *d = dup_fd < 0 ? NULL : fdopendir(dup_fd);
	if (!d) {
		int r = -errno;
		if (dup_fd >= 0)
			close(dup_fd);
		return r;
	}
	rewinddir(d);
	int count = 0, err = 0;
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		pid_t pid;
		unsigned long long start;
		if (!temp_of(de->d_name, prefix, &pid, &start) || owner_alive(pid, start) != 0)
			continue;
		int r = reclaim_one(dirfd, de->d_name);
		if (r < 0 && !err)
			err = r;
		count += r > 0;
	}
	closedir(d);
	return count ? count : err;
}
