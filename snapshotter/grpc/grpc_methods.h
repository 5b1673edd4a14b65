/* The Snapshots service's methods as the transport sees them: a request
 * descriptor and a handler that turns a decoded request into a response
 * (unary) or a sequence of responses (server streaming). */
#ifndef DI3FS_SNAP_GRPC_METHODS_H
#define DI3FS_SNAP_GRPC_METHODS_H

#include "arena.h"
#include "log.h"
#include "snap.h"

#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#define RPC_SERVICE "/containerd.services.snapshots.v1.Snapshots/"

/* One call's handler state. Handlers build responses in arena (the
 * transport frees it once a response is packed), say why a call failed in
 * why (a static string) and what it was about in subject (for the log). */
struct rpc_ctx {
	struct snap *sn;
	const struct snap_log *lg;
	struct arena arena;
	const char *why;
	char subject[512];
	void *stream; /* a streaming method's cursor, freed by stream_end */
};

struct rpc_method {
	const char *name; /* "Prepare": the path is RPC_SERVICE + name */
	const ProtobufCMessageDescriptor *request;
	/* Unary methods: 0 and *resp set (arena memory), or -errno. */
	int (*unary)(ProtobufCMessage **resp, struct rpc_ctx *ctx, const ProtobufCMessage *req);
	/* Streaming methods: start once, then next until it returns 0 (no more)
	 * or -errno; 1 means *resp holds the next message. end always runs. */
	int (*stream_start)(struct rpc_ctx *ctx, const ProtobufCMessage *req);
	int (*stream_next)(ProtobufCMessage **resp, struct rpc_ctx *ctx);
	void (*stream_end)(struct rpc_ctx *ctx);
};

/* The string fields of the packed message p (len bytes) of type d, and of
 * its sub-messages: -EINVAL if one holds a NUL byte, -EBADMSG if the bytes
 * are not a message (pb_strings.c). */
int rpc_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len);

/* The method named by a request path (not NUL-terminated), or NULL. */
const struct rpc_method *rpc_method_find(const char *path, size_t len);

/* The gRPC status for a handler's -errno: the one place errors become
 * status codes. 0 gives GRPC_STATUS_OK. */
grpc_status_code rpc_status_from_errno(int err);
/* "NOT_FOUND" etc., for logs. */
const char *rpc_status_name(grpc_status_code code);

#endif
