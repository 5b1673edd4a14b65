/* The client end of an ssh:// name: the ssh process running `cdimg agent
 * --stdio` on the other machine (ssh_spawn.c) and the backend's state
 * (ssh.c). */
#ifndef DI3FS_XSSH_H
#define DI3FS_XSSH_H

#include <pthread.h>
#include <sys/types.h>

#include "sshproto.h"
#include "transport-internal.h"

struct xssh {
	struct sshp_conn c;
	pid_t pid;          /* ssh, or -1 */
	pthread_mutex_t mu; /* one request on the channel at a time */
	int inband;         /* the last failure came in an ERROR frame: still in step */
	int broken;         /* -errno once the channel is out of step */
	char peer[300];
};

/* Starts ssh to x's host running the agent, with s->c on its stdin and
 * stdout, and exchanges hellos: a version other than ours is an error
 * naming both. */
int xssh_spawn(struct xssh *s, struct xport *x, struct dimg_err *err);
/* Closes the channel (the agent ends at its end of stream) and reaps ssh. */
void xssh_reap(struct xssh *s);
/* After a failure before the agent answered: why, from ssh's exit status. */
int xssh_died(struct xssh *s, int r, struct dimg_err *err);

/* One request at a time: xssh_lock takes the channel (-EPIPE once it is
 * out of step), xssh_unlock gives it back, marking it out of step after a
 * failure that did not come in an ERROR frame; returns r. */
int xssh_lock(struct xssh *s, struct dimg_err *err);
int xssh_unlock(struct xssh *s, int r);
/* Reads the reply, which must be a want frame (an ERROR is its error). */
int xssh_reply(struct xssh *s, uint8_t want, struct dimg_err *err);

/* ssh_blob.c: blobs streamed in DATA frames. */
int xssh_get_blob(struct xport *x, const struct oci_desc *d, uint64_t offset, dimg_write_fn sink,
                  void *ctx, struct dimg_err *err);
int xssh_put_blob(struct xport *x, const struct oci_desc *d, xport_read_fn src, void *ctx,
                  struct dimg_err *err);

#endif
