/* lazyfs's FUSE connection: the connection an fd holder kept from a
 * previous daemon, taken over (its libfuse session is fed the connection's
 * saved INIT, which the kernel sends only once per mount), or a new mount,
 * for which a holder is started. The holder (lazyfs_holder.c) then keeps
 * the connection alive whenever this process ends, however it ends; a
 * watch thread starts a new holder if that one dies first. */
#define FUSE_USE_VERSION 312
#include "lazyfs-holder.h"
#include "lazyfs-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define FUSE_DEV_MAJOR 10
#define FUSE_DEV_MINOR 229

/* ---------------------------------------------------------------- mounts */

/* mountinfo writes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

int lazyfs_mount_dev(const char *mnt, uint64_t *dev)
{
	char line[8192], mp[4096];
	unsigned a, b;
	int found = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &a, &b, mp) != 3)
			continue;
		unescape(mp);
		if (strcmp(mp, mnt) == 0) {
			*dev = makedev(a, b); /* the last one: the newest mount there */
			found = 1;
		}
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

/* Whatever is mounted there (a dead connection of a killed daemon, whose
 * files answer ENOTCONN) goes; no stat, which would hang on a live one. */
static void detach_mounts(struct lazyfs *fs)
{
	int n = 0;
	while (umount2(fs->mountpoint, MNT_DETACH) == 0)
		n++;
	if (n)
		snap_warn(fs->lg, "lazyfs: detached %d stale mount(s) at %s", n, fs->mountpoint);
}

/* ---------------------------------------------------------------- journal */

static int journal_map(struct lazyfs_conn *c, int fd, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	c->journal = p;
	c->journal_len = len;
	c->journal_fd = fd;
	return 0;
}

static int journal_create(struct lazyfs_conn *c)
{
	size_t slot = (size_t)LAZYFS_SLOT_PAGES * (size_t)sysconf(_SC_PAGESIZE);
	size_t len = LAZYFS_JOURNAL_HEAD + LAZYFS_SLOTS * slot;
	int fd = memfd_create("di3fs-fuse-journal", MFD_CLOEXEC);
	int r = fd < 0 ? -errno : ftruncate(fd, (off_t)len) < 0 ? -errno : 0;
	if (r == 0)
		r = journal_map(c, fd, len);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	struct lazyfs_journal_head *h = (void *)c->journal;
	h->magic = LAZYFS_WIRE_MAGIC;
	h->version = LAZYFS_WIRE_VERSION;
	h->nslots = LAZYFS_SLOTS;
	h->slot_size = slot;
	return 0;
}

/* A journal from a holder; takes fd. */
static int journal_adopt(struct lazyfs_conn *c, int fd)
{
	struct stat st;
	int r = fstat(fd, &st) < 0 ? -errno : st.st_size < LAZYFS_JOURNAL_HEAD ? -EINVAL : 0;
	if (r == 0)
		r = journal_map(c, fd, (size_t)st.st_size);
	if (r < 0) {
		close(fd);
		return r;
	}
	const struct lazyfs_journal_head *h = (const void *)c->journal;
	if (h->magic != LAZYFS_WIRE_MAGIC || h->version != LAZYFS_WIRE_VERSION || h->nslots == 0 ||
	    h->nslots > LAZYFS_SLOTS || h->init_len > LAZYFS_INIT_MAX ||
	    h->init_len < sizeof(struct fuse_in_header) ||
	    h->slot_size < (size_t)LAZYFS_SLOT_PAGES * (size_t)sysconf(_SC_PAGESIZE) ||
	    LAZYFS_JOURNAL_HEAD + h->nslots * h->slot_size > c->journal_len)
		return -EPROTO;
	return 0;
}

/* ---------------------------------------------------------------- session */

/* The libfuse session on /dev/fuse fd (taken: the session closes it). The
 * mount itself is never libfuse's: it is ours to unmount, or the holder's
 * to keep. */
static int session_on(struct lazyfs *fs, int fd)
{
	char *argv[] = {"di3fs", NULL};
	char name[32];
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	fs->conn.se = fuse_session_new(&args, &lazyfs_ops, sizeof(lazyfs_ops), fs);
	fuse_opt_free_args(&args);
	if (!fs->conn.se) {
		close(fd);
		return -ENOMEM;
	}
	fs->conn.fd = fd;
	snprintf(name, sizeof(name), "/dev/fd/%d", fd);
	return fuse_session_mount(fs->conn.se, name) == 0 ? 0 : -EIO;
}

/* A new mount on a new /dev/fuse fd, as libfuse mounts for root:
 * allow_other, default_permissions, ro, nosuid, nodev. */
static int mount_fd(struct lazyfs *fs, int *out)
{
	char opts[160];
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(opts, sizeof(opts),
	         "fd=%d,rootmode=%o,user_id=%u,group_id=%u,allow_other,default_permissions", fd,
	         (unsigned)S_IFDIR, (unsigned)getuid(), (unsigned)getgid());
	if (mount("di3fs", fs->mountpoint, "fuse.di3fs", MS_NOSUID | MS_NODEV | MS_RDONLY, opts) <
	    0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*out = fd;
	return 0;
}

static int process_init(struct lazyfs *fs, uint8_t *buf, size_t len)
{
	lazyfs_loop_process(fs, buf, len);
	return fs->conn.init_done ? 0 : -EPROTO;
}

/* A new mount's first request is INIT: answered, and kept for the next
 * daemons' sessions. */
static int read_init(struct lazyfs *fs)
{
	struct lazyfs_conn *c = &fs->conn;
	struct lazyfs_journal_head *h = (void *)c->journal;
	uint8_t *slot = lazyfs_slot(c->journal, 0);
	struct fuse_in_header in;
	ssize_t n;
	do
		n = read(c->fd, slot, h->slot_size);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	memcpy(&in, slot, sizeof(in));
	if ((size_t)n < sizeof(in) || (size_t)n > LAZYFS_INIT_MAX || in.opcode != FUSE_INIT)
		return -EPROTO;
	memcpy(h->init, slot, (size_t)n);
	h->init_len = (uint32_t)n;
	return process_init(fs, slot, (size_t)n); /* which clears the slot */
}

/* ---------------------------------------------------------------- holder */

/* A socket for the holder's address path, in *sa. */
static int holder_socket(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, path, strlen(path) + 1);
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	return s < 0 ? -errno : s;
}

static int holder_connect(const char *path, int *out)
{
	struct sockaddr_un sa;
	int s = holder_socket(&sa, path);
	if (s < 0)
		return s;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(s);
		return r;
	}
	*out = s;
	return 0;
}

static int send_op(int sock, uint32_t op, unsigned wait_ms)
{
	struct lazyfs_holder_msg m = {LAZYFS_WIRE_MAGIC, LAZYFS_WIRE_VERSION, op,
	                              wait_ms,           (int32_t)getpid(),   0};
	return send(sock, &m, sizeof(m), MSG_NOSIGNAL) == (ssize_t)sizeof(m) ? 0 : -EIO;
}

/* The holder's answer to ATTACH: its two fds, or why not. */
static int recv_fds(int sock, int fds[2], pid_t *pid)
{
	struct lazyfs_holder_msg m;
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {&m, sizeof(m)};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = u.buf,
	                    .msg_controllen = sizeof(u.buf)};
	struct pollfd p = {sock, POLLIN, 0};
	if (poll(&p, 1, 2000) <= 0)
		return -ETIMEDOUT;
	ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
	int got = c && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(2 * sizeof(int));
	if (got)
		memcpy(fds, CMSG_DATA(c), 2 * sizeof(int));
	int r = n != (ssize_t)sizeof(m) || m.magic != LAZYFS_WIRE_MAGIC ||
	                m.version != LAZYFS_WIRE_VERSION
	            ? -EPROTO
	        : m.op == LAZYFS_HOLDER_BUSY       ? -EBUSY
	        : m.op == LAZYFS_HOLDER_FDS && got ? 0
	                                           : -EPROTO;
	if (r < 0 && got) {
		close(fds[0]);
		close(fds[1]);
	}
	*pid = m.pid;
	return r;
}

/* Attaches to the holder at path: *sock stays open while we serve (its
 * end tells the holder we are gone). A just killed daemon may still be
 * attached for a moment: BUSY is retried for a while. */
static int holder_attach(const char *path, unsigned wait_ms, int *sock, int fds[2], pid_t *pid)
{
	int r = -EBUSY;
	for (int tries = 0; r == -EBUSY && tries < 40; tries++) {
		if (tries)
			nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
		if ((r = holder_connect(path, sock)) < 0)
			return r;
		r = send_op(*sock, LAZYFS_HOLDER_ATTACH, wait_ms);
		if (r == 0)
			r = recv_fds(*sock, fds, pid);
		if (r < 0)
			close(*sock);
	}
	return r;
}

static int holder_listen(const char *path, int *out)
{
	struct sockaddr_un sa;
	int s = holder_socket(&sa, path);
	if (s < 0)
		return s;
	unlink(path); /* a dead holder's */
	int r = bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	if (r == 0 && (chmod(path, 0600) < 0 || listen(s, 8) < 0))
		r = -errno;
	if (r < 0) {
		close(s);
		return r;
	}
	*out = s;
	return 0;
}

/* Runs /proc/self/exe as the holder with fd 3 = /dev/fuse, 4 = the
 * journal, 5 = the listening socket, in a session of its own. */
static int spawn(struct lazyfs *fs, int lsock, pid_t *pid)
{
	int src[3] = {fcntl(fs->conn.fd, F_DUPFD_CLOEXEC, 10),
	              fcntl(fs->conn.journal_fd, F_DUPFD_CLOEXEC, 10),
	              fcntl(lsock, F_DUPFD_CLOEXEC, 10)};
	char wait[16];
	snprintf(wait, sizeof(wait), "%u", fs->wait_ms);
	char *argv[] = {"di3fs-fuse-holder", LAZYFS_HOLDER_ARG, wait, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dflt;
	sigemptyset(&none);
	sigemptyset(&dflt);
	for (int sig = 1; sig < 32; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaddset(&dflt, sig);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	for (int i = 0; i < 3; i++)
		posix_spawn_file_actions_adddup2(&fa, src[i], 3 + i);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
	                                  POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dflt);
	int r = src[0] < 0 || src[1] < 0 || src[2] < 0
	            ? EMFILE
	            : posix_spawn(pid, "/proc/self/exe", &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	for (int i = 0; i < 3; i++)
		if (src[i] >= 0)
			close(src[i]);
	return -r;
}

/* A new holder for our connection, attached to. */
static int holder_spawn(struct lazyfs *fs)
{
	int lsock = -1, fds[2];
	pid_t pid, got;
	int r = holder_listen(fs->holder_path, &lsock);
	if (r == 0) {
		r = spawn(fs, lsock, &pid);
		close(lsock);
	}
	if (r == 0)
		r = holder_attach(fs->holder_path, fs->wait_ms, &fs->conn.holder, fds, &got);
	if (r < 0)
		return r;
	close(fds[0]); /* ours already */
	close(fds[1]);
	fs->conn.holder_pid = pid;
	snap_info(fs->lg,
	          "lazyfs: fd holder %d keeps the FUSE connection across restarts (requests "
	          "wait up to %u ms for a daemon)",
	          (int)pid, fs->wait_ms);
	return 0;
}

/* ---------------------------------------------------------------- open */

/* Checks the holder's fds are the connection mounted at our mountpoint
 * and sets the session up on them. Takes the fds. */
static int adopt(struct lazyfs *fs, int fds[2], const char **why)
{
	struct lazyfs_conn *c = &fs->conn;
	struct stat st;
	uint64_t dev = 0;
	c->fd = fds[0];
	*why = "the fd holder's journal is not one of ours";
	int r = journal_adopt(c, fds[1]);
	if (r < 0)
		return r;
	const struct lazyfs_journal_head *h = (const void *)c->journal;
	*why = "the fd holder's fd is not /dev/fuse";
	if (fstat(c->fd, &st) < 0 || !S_ISCHR(st.st_mode) ||
	    st.st_rdev != makedev(FUSE_DEV_MAJOR, FUSE_DEV_MINOR))
		return -EPROTO;
	*why = "the mount there is not the fd holder's connection (unmounted meanwhile?)";
	if (lazyfs_mount_dev(fs->mountpoint, &dev) < 0 || dev != h->dev)
		return -ESTALE;
	c->dev = dev;
	*why = "cannot create the FUSE session";
	int fd = c->fd;
	c->fd = -1; /* the session's from here */
	if ((r = session_on(fs, fd)) < 0)
		return r;
	*why = "the connection's saved INIT was refused";
	uint64_t init[LAZYFS_INIT_MAX / sizeof(uint64_t)];
	memcpy(init, h->init, h->init_len);
	return process_init(fs, (uint8_t *)init, h->init_len);
}

static void takeover_fail(struct lazyfs *fs)
{
	struct lazyfs_conn *c = &fs->conn;
	(void)send_op(c->holder, LAZYFS_HOLDER_QUIT, 0);
	close(c->holder);
	c->holder = -1;
	if (c->se)
		fuse_session_destroy(c->se); /* closes c->fd */
	else if (c->fd >= 0)
		close(c->fd);
	c->se = NULL;
	c->fd = -1;
	if (c->journal)
		munmap(c->journal, c->journal_len);
	if (c->journal_fd >= 0)
		close(c->journal_fd);
	c->journal = NULL;
	c->journal_fd = -1;
	c->init_done = 0;
}

/* -ENOENT when no holder answers: mount anew. */
static int takeover(struct lazyfs *fs, const char **why)
{
	struct lazyfs_conn *c = &fs->conn;
	int fds[2];
	pid_t pid;
	int r = holder_attach(fs->holder_path, fs->wait_ms, &c->holder, fds, &pid);
	if (r == -ENOENT || r == -ECONNREFUSED)
		return -ENOENT;
	*why = "the fd holder does not answer, or speaks another version";
	if (r == 0)
		r = adopt(fs, fds, why);
	else
		c->holder = -1;
	if (r < 0) {
		if (c->holder >= 0)
			takeover_fail(fs);
		return r;
	}
	snap_info(fs->lg, "lazyfs: took over the FUSE connection of %s from fd holder %d",
	          fs->mountpoint, (int)pid);
	pthread_mutex_lock(&fs->restore_mu);
	fs->restoring = 1;
	clock_gettime(CLOCK_REALTIME, &fs->restore_deadline);
	fs->restore_deadline.tv_sec += fs->wait_ms / 1000;
	fs->restore_deadline.tv_nsec += (long)(fs->wait_ms % 1000) * 1000000;
	if (fs->restore_deadline.tv_nsec >= 1000000000) {
		fs->restore_deadline.tv_sec++;
		fs->restore_deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_unlock(&fs->restore_mu);
	if (fs->wait_ms == 0) { /* no holder wanted any more: the mount ends with us */
		(void)send_op(c->holder, LAZYFS_HOLDER_QUIT, 0);
		close(c->holder);
		c->holder = -1;
	}
	return 0;
}

static int mount_new(struct lazyfs *fs, const char **why)
{
	struct lazyfs_conn *c = &fs->conn;
	int fd = -1;
	detach_mounts(fs);
	*why = "cannot mount (is /dev/fuse there, and are we root?)";
	int r = mount_fd(fs, &fd);
	if (r < 0)
		return r;
	*why = "cannot create the FUSE session";
	if ((r = session_on(fs, fd)) < 0)
		return r;
	*why = "cannot create the request journal";
	if ((r = journal_create(c)) < 0)
		return r;
	struct lazyfs_journal_head *h = (void *)c->journal;
	*why = "the new mount is not in /proc/self/mountinfo";
	if ((r = lazyfs_mount_dev(fs->mountpoint, &c->dev)) < 0)
		return r;
	h->dev = c->dev;
	*why = "the kernel's FUSE INIT failed";
	if ((r = read_init(fs)) < 0)
		return r;
	if (fs->holder_path && fs->wait_ms && (r = holder_spawn(fs)) < 0)
		snap_warn(fs->lg, "lazyfs: no fd holder (%s): a restart will end the mount",
		          strerror(-r));
	return 0;
}

int lazyfs_conn_open(struct lazyfs *fs, const char **why)
{
	if (fs->holder_path) {
		int r = takeover(fs, why);
		if (r == 0)
			return 0;
		if (r != -ENOENT)
			snap_err(
			    fs->lg,
			    "lazyfs: cannot take over the FUSE connection at %s: %s: %s; mounting "
			    "anew (containers running on the old mount lose its files)",
			    fs->mountpoint, *why, strerror(-r));
	}
	return mount_new(fs, why);
}

/* ---------------------------------------------------------------- watch */

/* The connection still works (not aborted, not unmounted). */
static int conn_alive(struct lazyfs_conn *c)
{
	struct pollfd p = {c->fd, 0, 0};
	return poll(&p, 1, 0) == 0;
}

static void *watch_main(void *arg)
{
	struct lazyfs *fs = arg;
	struct lazyfs_conn *c = &fs->conn;
	while (c->holder >= 0) {
		struct pollfd p[2] = {{c->stop_efd, POLLIN, 0}, {c->holder, POLLIN, 0}};
		char b[64];
		if (poll(p, 2, -1) < 0 || p[0].revents)
			break;
		if (!p[1].revents || recv(c->holder, b, sizeof(b), MSG_DONTWAIT) > 0)
			continue;
		close(c->holder);
		c->holder = -1;
		if (c->holder_pid > 0)
			(void)waitpid(c->holder_pid, NULL, WNOHANG); /* if it was our child */
		if (!conn_alive(c))
			break;
		snap_warn(fs->lg, "lazyfs: the fd holder died; starting a new one");
		int r = holder_spawn(fs);
		if (r < 0)
			snap_err(fs->lg, "lazyfs: no fd holder (%s): a restart will end the mount",
			         strerror(-r));
	}
	return NULL;
}

void lazyfs_conn_watch(struct lazyfs *fs)
{
	struct lazyfs_conn *c = &fs->conn;
	if (c->holder < 0)
		return;
	c->stop_efd = eventfd(0, EFD_CLOEXEC);
	if (c->stop_efd >= 0 && pthread_create(&c->watch, NULL, watch_main, fs) == 0)
		c->watch_started = 1;
}

/* ---------------------------------------------------------------- close */

void lazyfs_conn_close(struct lazyfs *fs)
{
	struct lazyfs_conn *c = &fs->conn;
	uint64_t dev;
	if (c->watch_started) {
		uint64_t one = 1;
		if (write(c->stop_efd, &one, sizeof(one)) < 0)
			snap_warn(fs->lg, "lazyfs: cannot stop the holder watch");
		pthread_join(c->watch, NULL);
	}
	if (c->stop_efd >= 0)
		close(c->stop_efd);
	if (c->holder >= 0) {
		close(c->holder); /* the holder keeps the mount for the next daemon */
	} else if (c->se && lazyfs_mount_dev(fs->mountpoint, &dev) == 0 && dev == c->dev) {
		if (umount2(fs->mountpoint, MNT_DETACH) < 0)
			snap_warn(fs->lg, "lazyfs: umount %s: %s", fs->mountpoint, strerror(errno));
	}
	if (c->se)
		fuse_session_destroy(c->se); /* closes c->fd: without a holder, the end */
	if (c->journal)
		munmap(c->journal, c->journal_len);
	if (c->journal_fd >= 0)
		close(c->journal_fd);
	memset(c, 0, sizeof(*c));
	c->fd = c->holder = c->journal_fd = c->stop_efd = c->loop_efd = -1;
}

/* ---------------------------------------------------------------- unmount */

int lazyfs_unmount(const char *holder, const char *mountpoint, const struct snap_log *lg)
{
	int sock, n = 0;
	if (holder && holder_connect(holder, &sock) == 0) {
		struct pollfd p = {sock, POLLIN, 0};
		if (send_op(sock, LAZYFS_HOLDER_QUIT, 0) == 0)
			(void)poll(&p, 1, 2000); /* its end: the connection is closed */
		close(sock);
		snap_info(lg, "lazyfs: told the fd holder at %s to exit", holder);
	}
	while (umount2(mountpoint, MNT_DETACH) == 0)
		n++;
	if (n)
		snap_info(lg, "lazyfs: unmounted %s", mountpoint);
	return errno == EINVAL || errno == ENOENT ? 0 : -errno;
}
