/* Temporaries named after their writer (dimg/fileio.h): what
 * dimg_temp_reclaim removes (a dead writer's, a reused PID's, nested ones)
 * and what it must leave (a live writer's, one whose lock is held though its
 * name looks dead, another prefix's, names not ours, another user's). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "dimg/fileio.h"
#include "tree-internal.h"

static char dir[] = "/tmp/test_temp.XXXXXX";
static int dfd;

static bool present(const char *name)
{
	struct stat st;
	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static unsigned long long start_of(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	CHECK(f && fgets(buf, sizeof(buf), f));
	fclose(f);
	char *p = strrchr(buf, ')');
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	CHECK(p);
	return strtoull(p + 1, NULL, 10);
}

/* A PID no process has: a child that has exited and been reaped. */
static pid_t dead_pid(void)
{
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(0);
	CHECK(waitpid(pid, NULL, 0) == pid);
	return pid;
}

/* A file or directory with a made-up name (no lock held). */
static void make(const char *name, bool is_dir)
{
	if (is_dir) {
		CHECK(mkdirat(dfd, name, 0700) == 0);
		char sub[PATH_MAX];
		snprintf(sub, sizeof(sub), "%s/f", name);
		int fd = openat(dfd, sub, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		CHECK(fd >= 0);
		close(fd);
	} else {
		int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		CHECK(fd >= 0);
		close(fd);
	}
}

static void tag(char *out, size_t cap, const char *prefix, pid_t pid, unsigned long long start,
                const char *rnd)
{
	CHECK(snprintf(out, cap, "%s%d-%llu-%s", prefix, (int)pid, start, rnd) < (int)cap);
}

/* A child that creates a temporary and waits: alive, and locking it. */
static pid_t live_writer(const char *prefix, int is_dir, char *name, size_t cap)
{
	int pfd[2];
	CHECK(pipe(pfd) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char *n;
		int fd;
		if (dimg_temp_create(dfd, prefix, is_dir, &n, &fd) < 0)
			_exit(1);
		if (write(pfd[1], n, strlen(n) + 1) < 0)
			_exit(1);
		pause();
		_exit(0);
	}
	close(pfd[1]);
	ssize_t k = read(pfd[0], name, cap);
	CHECK(k > 0 && name[k - 1] == '\0');
	close(pfd[0]);
	return pid;
}

static void check_names(void)
{
	char *name;
	int fd;
	char want[64];
	CHECK_RC(dimg_temp_create(dfd, ".out.tmp-", 1, &name, &fd));
	tag(want, sizeof(want), ".out.tmp-", getpid(), start_of(getpid()), "");
	CHECK(!strncmp(name, want, strlen(want)) && strlen(name) == strlen(want) + 6);
	int other = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	CHECK(other >= 0 && flock(other, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK);
	close(other);
	CHECK(dimg_temp_reclaim(dfd, ".out.tmp-") == 0); /* ours, alive */
	CHECK(present(name));
	CHECK_RC(dimg_rmtree_at(dfd, name));
	close(fd);
	free(name);
}

static void check_reclaim(void)
{
	char dead[128], dead_dir[128], reused[128], nested[256], alive[128], other[128];
	char locked[128], foreign[128], live[128], livef[128];
	pid_t gone = dead_pid(), me = getpid();
	tag(dead, sizeof(dead), ".out.tmp-", gone, 12345, "abcDEF");
	tag(dead_dir, sizeof(dead_dir), ".out.tmp-", gone, 12345, "dir123");
	tag(reused, sizeof(reused), ".out.tmp-", me, start_of(me) + 1, "reused");
	CHECK(snprintf(nested, sizeof(nested), ".%s.tmp-%d-7-nested", dead, (int)gone) > 0);
	tag(alive, sizeof(alive), ".out.tmp-", me, start_of(me), "alive0");
	tag(other, sizeof(other), ".other.tmp-", gone, 12345, "other0");
	tag(locked, sizeof(locked), ".out.tmp-", gone, 99, "locked");
	make(dead, false);
	make(dead_dir, true);
	make(reused, false);
	make(nested, false);
	make(alive, true);
	make(other, false);
	make(locked, false);
	make(".out.tmp-123-45-bad", false); /* 3 random characters: not a tag */
	make(".out.tmp-XXXXXX", false);     /* the old names: writer unknown */
	make("out", true);
	/* (forked before the lock is taken: children would share it) */
	pid_t w = live_writer(".out.tmp-", 1, live, sizeof(live));
	pid_t wf = live_writer(".out.tmp-", 0, livef, sizeof(livef));
	int lfd = openat(dfd, locked, O_RDONLY | O_CLOEXEC);
	CHECK(lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) == 0);

	CHECK(dimg_temp_reclaim(dfd, ".out.tmp-") == 4);
	CHECK(!present(dead) && !present(dead_dir) && !present(reused) && !present(nested));
	CHECK(present(alive) && present(other) && present(locked) && present(live) &&
	      present(livef) && present(".out.tmp-123-45-bad") && present(".out.tmp-XXXXXX") &&
	      present("out"));
	close(lfd); /* the lock holder is gone now: its temporary goes */
	CHECK(dimg_temp_reclaim(dfd, ".out.tmp-") == 1 && !present(locked));
	CHECK(kill(w, SIGKILL) == 0 && waitpid(w, NULL, 0) == w);
	CHECK(kill(wf, SIGKILL) == 0 && waitpid(wf, NULL, 0) == wf);
	CHECK(dimg_temp_reclaim(dfd, ".out.tmp-") == 2 && !present(live) && !present(livef));
	CHECK(dimg_temp_reclaim(dfd, ".other.tmp-") == 1 && !present(other));
	/* Prefix "" (a store's tmp/): bare tags only. */
	tag(foreign, sizeof(foreign), "", gone, 1, "bare00");
	make(foreign, false);
	CHECK(dimg_temp_reclaim(dfd, "") == 1 && !present(foreign));
	CHECK(present(alive) && present("out"));
}

/* Another user's temporary is not ours to remove, even when its writer is
 * gone (needs root to make one). */
static void check_other_user(void)
{
	char name[128];
	if (geteuid() != 0)
		return;
	tag(name, sizeof(name), ".out.tmp-", dead_pid(), 5, "user00");
	make(name, false);
	CHECK(fchownat(dfd, name, 4321, 4321, AT_SYMLINK_NOFOLLOW) == 0);
	CHECK(dimg_temp_reclaim(dfd, ".out.tmp-") == 0 && present(name));
}

int main(void)
{
	CHECK(mkdtemp(dir));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(dfd >= 0);
	check_names();
	check_reclaim();
	check_other_user();
	close(dfd);
	CHECK_RC(dimg_rmtree(dir));
	printf("test_temp: ok\n");
	return 0;
}
