/* The fd holder: a small process that keeps a lazyfs FUSE connection open
 * while no daemon serves it, so that a daemon's kill -9, crash, restart or
 * upgrade does not end the mount under running containers. It hands the
 * connection to each daemon that attaches and watches it go; it never
 * serves a request, but fails them with EIO once no daemon has attached
 * for the last daemon's wait. It exits when the connection ends (the
 * mount is gone) or when told to (lazyfs_unmount).
 *
 * Started by lazyfs_conn.c as a copy of the daemon's executable, with
 * /dev/fuse on fd 3, the journal on fd 4 and its listening socket on
 * fd 5. Single-threaded; it allocates one request buffer and no more. */
#include "lazyfs-holder.h"
#include "lazyfs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define FD_FUSE    3
#define FD_JOURNAL 4
#define FD_LISTEN  5

struct holder {
	uint8_t *journal;
	size_t journal_len, slot_size;
	unsigned nslots;
	int daemon; /* the attached daemon's connection, or -1 */
	pid_t daemon_pid;
	unsigned wait_ms;
	int64_t gone_at; /* when the daemon left (ms, monotonic) */
	int failing;     /* past the wait: failing requests with EIO */
	uint8_t *buf;    /* a request being failed */
	struct snap_log lg;
	char pidfile[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
};

int lazyfs_slot_pending(const uint8_t *slot, size_t slot_size)
{
	struct fuse_in_header h;
	memcpy(&h, slot, sizeof(h));
	return h.unique != 0 && h.len >= sizeof(h) && h.len <= slot_size;
}

void lazyfs_slot_clear(uint8_t *slot)
{
	memset(slot, 0, sizeof(struct fuse_in_header));
}

uint8_t *lazyfs_slot(uint8_t *journal, unsigned i)
{
	const struct lazyfs_journal_head *head = (const void *)journal;
	return journal + LAZYFS_JOURNAL_HEAD + (size_t)i * head->slot_size;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int map_journal(struct holder *h)
{
	struct stat st;
	if (fstat(FD_JOURNAL, &st) < 0 || (size_t)st.st_size < LAZYFS_JOURNAL_HEAD)
		return -EINVAL;
	h->journal_len = (size_t)st.st_size;
	h->journal = mmap(NULL, h->journal_len, PROT_READ | PROT_WRITE, MAP_SHARED, FD_JOURNAL, 0);
	if (h->journal == MAP_FAILED)
		return -errno;
	const struct lazyfs_journal_head *head = (const void *)h->journal;
	if (head->magic != LAZYFS_WIRE_MAGIC || head->version != LAZYFS_WIRE_VERSION ||
	    head->nslots > LAZYFS_SLOTS ||
	    LAZYFS_JOURNAL_HEAD + head->nslots * head->slot_size > h->journal_len)
		return -EINVAL;
	h->nslots = head->nslots;
	h->slot_size = head->slot_size;
	h->buf = malloc(h->slot_size);
	return h->buf ? 0 : -ENOMEM;
}

/* FORGET, BATCH_FORGET and INTERRUPT get no answer. */
static int wants_reply(uint32_t opcode)
{
	return opcode != FUSE_FORGET && opcode != FUSE_BATCH_FORGET && opcode != FUSE_INTERRUPT;
}

static void reply_eio(const uint8_t *req)
{
	struct fuse_in_header in;
	memcpy(&in, req, sizeof(in));
	if (!wants_reply(in.opcode))
		return;
	struct fuse_out_header out = {sizeof(out), -EIO, in.unique};
	/* ENOENT: answered already, or the caller gave up */
	while (write(FD_FUSE, &out, sizeof(out)) < 0 && errno == EINTR)
		;
}

/* The requests a killed daemon had read and maybe not answered. */
static void fail_journal(struct holder *h)
{
	for (unsigned i = 0; i < h->nslots; i++) {
		uint8_t *slot = lazyfs_slot(h->journal, i);
		if (lazyfs_slot_pending(slot, h->slot_size))
			reply_eio(slot);
		lazyfs_slot_clear(slot);
	}
}

/* Fails the next request; -1 when the connection is gone. */
static int fail_next(struct holder *h)
{
	ssize_t n = read(FD_FUSE, h->buf, h->slot_size);
	if (n < 0)
		return errno == ENODEV ? -1 : 0; /* EINTR, EAGAIN, ENOENT: again */
	if ((size_t)n >= sizeof(struct fuse_in_header))
		reply_eio(h->buf);
	return 0;
}

static int send_msg(int sock, uint32_t op, const int *fds, int nfds)
{
	struct lazyfs_holder_msg m = {LAZYFS_WIRE_MAGIC, LAZYFS_WIRE_VERSION, op, 0, getpid(), 0};
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {&m, sizeof(m)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(m) ? 0 : -1;
}

/* One message from sock, waiting at most a second: 1, 0 at EOF, -1. */
static int recv_msg(int sock, struct lazyfs_holder_msg *m)
{
	struct pollfd p = {sock, POLLIN, 0};
	if (poll(&p, 1, 1000) <= 0)
		return -1;
	ssize_t n = recv(sock, m, sizeof(*m), 0);
	if (n == 0)
		return 0;
	/* QUIT is understood from any version: a newer daemon may end us */
	return n == (ssize_t)sizeof(*m) && m->magic == LAZYFS_WIRE_MAGIC ? 1 : -1;
}

static void attach(struct holder *h, int sock, const struct lazyfs_holder_msg *m)
{
	const int fds[2] = {FD_FUSE, FD_JOURNAL};
	if (m->version != LAZYFS_WIRE_VERSION) {
		snap_warn(&h->lg, "fuse fd holder: daemon %d speaks version %u, not %u",
		          (int)m->pid, m->version, LAZYFS_WIRE_VERSION);
		close(sock);
		return;
	}
	if (h->daemon >= 0 || send_msg(sock, LAZYFS_HOLDER_FDS, fds, 2) < 0) {
		(void)send_msg(sock, LAZYFS_HOLDER_BUSY, NULL, 0);
		close(sock);
		return;
	}
	h->daemon = sock;
	h->daemon_pid = m->pid;
	h->wait_ms = m->wait_ms;
	snap_info(&h->lg, "fuse fd holder: daemon %d serves the connection%s", (int)m->pid,
	          h->failing ? " again: no more EIO" : "");
	h->failing = 0;
}

/* A new connection: a daemon attaching or a request to quit. 1 to quit. */
static int accept_one(struct holder *h)
{
	struct lazyfs_holder_msg m;
	int sock = accept4(FD_LISTEN, NULL, NULL, SOCK_CLOEXEC);
	if (sock < 0)
		return 0;
	int r = recv_msg(sock, &m);
	if (r == 1 && m.op == LAZYFS_HOLDER_QUIT) {
		close(sock);
		return 1;
	}
	if (r == 1 && m.op == LAZYFS_HOLDER_ATTACH)
		attach(h, sock, &m);
	else
		close(sock);
	return 0;
}

/* The attached daemon wrote or went away. 1 to quit. */
static int daemon_event(struct holder *h)
{
	struct lazyfs_holder_msg m;
	ssize_t n = recv(h->daemon, &m, sizeof(m), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n == (ssize_t)sizeof(m) && m.magic == LAZYFS_WIRE_MAGIC && m.op == LAZYFS_HOLDER_QUIT)
		return 1;
	if (n > 0)
		return 0;
	close(h->daemon);
	h->daemon = -1;
	h->gone_at = now_ms();
	snap_info(&h->lg,
	          "fuse fd holder: daemon %d is gone; requests wait up to %u ms for the next",
	          (int)h->daemon_pid, h->wait_ms);
	return 0;
}

/* poll's timeout: until the wait is over, when a daemon is awaited. */
static int wait_left(const struct holder *h)
{
	if (h->daemon >= 0 || h->failing)
		return -1;
	int64_t left = h->gone_at + h->wait_ms - now_ms();
	return left < 0 ? 0 : left > 60000 ? 60000 : (int)left;
}

static void start_failing(struct holder *h)
{
	h->failing = 1;
	snap_warn(&h->lg,
	          "fuse fd holder: no daemon for %u ms: failing requests with EIO until one "
	          "attaches",
	          h->wait_ms);
	fail_journal(h);
}

/* Until the connection ends or a quit; returns why it ended. */
static const char *run(struct holder *h)
{
	for (;;) {
		struct pollfd p[3] = {{FD_LISTEN, POLLIN, 0},
		                      {FD_FUSE, (short)(h->failing ? POLLIN : 0), 0},
		                      {h->daemon, POLLIN, 0}};
		int n = poll(p, h->daemon >= 0 ? 3 : 2, wait_left(h));
		if (n < 0 && errno != EINTR)
			return "poll failed";
		if (p[1].revents & (POLLERR | POLLHUP | POLLNVAL))
			return "the connection ended";
		if ((p[0].revents & POLLIN) && accept_one(h))
			return "told to quit";
		if (h->daemon >= 0 && p[2].revents && daemon_event(h))
			return "told to quit";
		if (h->daemon < 0 && !h->failing && now_ms() - h->gone_at >= h->wait_ms)
			start_failing(h);
		if (h->failing && h->daemon < 0 && (p[1].revents & POLLIN) && fail_next(h) < 0)
			return "the connection ended";
	}
}

static void write_pidfile(struct holder *h)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	h->pidfile[0] = '\0';
	if (getsockname(FD_LISTEN, (struct sockaddr *)&sa, &len) < 0 || sa.sun_path[0] != '/')
		return;
	snprintf(h->pidfile, sizeof(h->pidfile), "%.*s.pid", (int)sizeof(sa.sun_path), sa.sun_path);
	FILE *f = fopen(h->pidfile, "we");
	if (f) {
		fprintf(f, "%ld\n", (long)getpid());
		fclose(f);
	}
}

static int holder_main(unsigned wait_ms)
{
	struct holder h = {.daemon = -1, .wait_ms = wait_ms, .lg = {SNAP_LOG_INFO}};
	close_range(FD_LISTEN + 1, ~0U, 0);
	if (map_journal(&h) < 0) {
		snap_err(&h.lg, "fuse fd holder: not started with a usable journal");
		return 1;
	}
	write_pidfile(&h);
	h.gone_at = now_ms();
	snap_info(&h.lg, "fuse fd holder %d: keeping the FUSE connection", (int)getpid());
	const char *why = run(&h);
	snap_info(&h.lg, "fuse fd holder %d: %s; exiting", (int)getpid(), why);
	if (h.pidfile[0])
		unlink(h.pidfile);
	free(h.buf);
	munmap(h.journal, h.journal_len);
	return 0;
}

/* argv: LAZYFS_HOLDER_ARG and the wait before the first daemon attaches
 * (the one that started it, normally at once). */
int lazyfs_holder_dispatch(int argc, char **argv)
{
	if (argc != 3 || strcmp(argv[1], LAZYFS_HOLDER_ARG) != 0)
		return -1;
	char *end;
	unsigned long wait_ms = strtoul(argv[2], &end, 10);
	if (*end || end == argv[2] || wait_ms > UINT32_MAX)
		return 2;
	return holder_main((unsigned)wait_ms);
}
