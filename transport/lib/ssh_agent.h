/* The agent's state (ssh_agent.c) and its blob upload (ssh_agent_put.c). */
#ifndef DI3FS_SSH_AGENT_H
#define DI3FS_SSH_AGENT_H

#include "sshproto.h"
#include "transport-internal.h"

struct xagent {
	struct sshp_conn c;
	struct xport_opts o;
	struct xport *x; /* the image OPEN named */
	char platform[128];
	char *cache_dir;    /* partial uploads, by digest */
	uint8_t (*put)[32]; /* blobs put through the cache: dropped from it at COMMIT */
	size_t nput;
	int fatal;     /* the channel is out of step: the session ends */
	int streaming; /* PUT_BLOB: OFFSET sent, END not yet read */
	int streamed;  /* PUT_BLOB: the client's bytes were read (once a request) */
};

/* PUT_BLOB: OFFSET, the client's DATA into the cache, checked, put. */
int xagent_put_blob(struct xagent *a, struct dimg_err *err);

#endif
