/* The gRPC transport: serves the Snapshots service on a unix socket with
 * gRPC core's C API, calls running concurrently on a pool of threads. */
#ifndef DI3FS_SNAP_GRPC_SERVER_H
#define DI3FS_SNAP_GRPC_SERVER_H

#include "log.h"
#include "snap.h"

struct rpc_server;

/* Binds address (an absolute socket path; gRPC unlinks what is there, so
 * the caller must hold the socket's lock file) and starts serving with
 * `threads` workers. sn and lg must outlive the server. */
int rpc_server_start(struct rpc_server **out, const char *address, int threads, struct snap *sn,
                     const struct snap_log *lg);

/* Stops accepting calls, cancels those in flight, waits for the workers and
 * frees the server. Accepts NULL. */
void rpc_server_stop(struct rpc_server *srv);

#endif
