/* ctrd's transport: one gRPC call at a time on a pluck completion queue,
 * protobuf-c messages in and out, containerd's status mapped to -errno. */
#ifndef DI3FS_CTRD_INTERNAL_H
#define DI3FS_CTRD_INTERNAL_H

#include "ctrd.h"

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

/* Deadlines: metadata calls are quick; a blob stream may be large. */
#define CTRD_CALL_TIMEOUT_S   60
#define CTRD_STREAM_TIMEOUT_S 3600

struct ctrd {
	grpc_channel *ch;
	char *address;
	char *ns;
	char *lease; /* NULL until ctrd_lease_create */
};

struct ctrd_call {
	struct ctrd *c;
	const char *what; /* names the call in messages */
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_metadata_array md_in, md_trail;
	grpc_byte_buffer *recv;
	int got_headers, have_status;
	grpc_status_code status;
	grpc_slice details;
};

/* Opens a call of method ("/pkg.Service/Method") and sends the namespace
 * and lease headers. what names the call in error messages (borrowed). */
int ctrd_call_start(struct ctrd_call *k, struct ctrd *c, const char *method, const char *what,
                    int timeout_s);
/* Sends one message; last also half-closes the stream. */
int ctrd_call_send(struct ctrd_call *k, const ProtobufCMessage *m, int last);
/* Receives one message into *out (NULL at the end of the stream); the
 * caller frees it with protobuf_c_message_free_unpacked. */
int ctrd_call_recv(struct ctrd_call *k, const ProtobufCMessageDescriptor *d,
                   ProtobufCMessage **out);
/* Receives the final status; 0 for OK, else -errno with *err set. rc is
 * what the caller saw so far: a transport failure (-EIO) is replaced by
 * containerd's status when there is one. */
int ctrd_call_finish(struct ctrd_call *k, int rc, struct dimg_err *err);
void ctrd_call_end(struct ctrd_call *k);

/* One request, one response of descriptor d (google.protobuf.Empty's for
 * none); *resp (if resp) gets it. */
int ctrd_unary(struct ctrd *c, const char *method, const char *what, const ProtobufCMessage *req,
               const ProtobufCMessageDescriptor *d, ProtobufCMessage **resp, struct dimg_err *err);

/* The single mapping from gRPC status codes to -errno (see ctrd.h). */
int ctrd_status_errno(grpc_status_code s);

/* Sets err's why (if err) to the formatted message, replacing what an
 * inner call said (the ctrd calls say it better); returns rc. */
int ctrd_fail(struct dimg_err *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A protobuf-c map<string,string> from labels: entries of descriptor d
 * (every such entry is {base, key, value}), pointers and entries in one
 * malloc'd block (*out, free() it); the strings stay borrowed. */
int ctrd_pb_labels(const ProtobufCMessageDescriptor *d, const struct ctrd_label *l, size_t n,
                   void ***out);

#endif
