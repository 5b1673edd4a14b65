/* The sd_notify protocol: one AF_UNIX datagram of "KEY=VALUE" lines to the
 * socket in $NOTIFY_SOCKET (a path, or '@' for the abstract namespace). The
 * protocol is small and stable, so the daemon needs no libsystemd. */
#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SDNOTIFY_MAX_FDS 16

static int notify_address(struct sockaddr_un *sa, socklen_t *len, const char *name)
{
	size_t n = strlen(name);

	if ((name[0] != '/' && name[0] != '@') || n < 2 ||
	    n + (name[0] == '/') > sizeof(sa->sun_path))
		return -EINVAL;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, name, n);
	if (name[0] == '@')
		sa->sun_path[0] = '\0'; /* abstract: the name is not NUL-terminated */
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '/'));
	return 0;
}

int sdnotify_send(const char *state, const int *fds, size_t n_fds)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t sa_len;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * SDNOTIFY_MAX_FDS)];
	} control;
	struct iovec iov = {.iov_base = (void *)state, .iov_len = strlen(state)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

	if (!name || !name[0])
		return 0;
	if (n_fds > SDNOTIFY_MAX_FDS)
		return -E2BIG;
	int r = notify_address(&sa, &sa_len, name);
	if (r < 0)
		return r;
	msg.msg_name = &sa;
	msg.msg_namelen = sa_len;
	if (n_fds > 0) {
		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
	}
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = sendmsg(fd, &msg, MSG_NOSIGNAL) < 0 ? -errno : 1;
	close(fd);
	return r;
}
