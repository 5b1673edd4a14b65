/* Service manager notification (systemd's sd_notify datagram protocol):
 * tells the manager the daemon is ready or stopping, without libsystemd. */
#ifndef DI3FS_SNAP_SDNOTIFY_H
#define DI3FS_SNAP_SDNOTIFY_H

#include <stddef.h>

/* Sends STATE ("READY=1", "STOPPING=1", "FDSTORE=1\nFDNAME=x", ...: newline
 * separated assignments) to the socket named by $NOTIFY_SOCKET, with the
 * n_fds descriptors in fds attached (SCM_RIGHTS; fds may be NULL when
 * n_fds is 0). Returns 1 when sent, 0 when NOTIFY_SOCKET is unset (not
 * started by a service manager), -errno on failure. */
int sdnotify_send(const char *state, const int *fds, size_t n_fds);

#endif
