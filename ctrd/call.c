/* ctrd transport: gRPC core calls to containerd with the namespace and lease
 * headers, protobuf-c (un)packing, and the status -> -errno mapping. */
#include "ctrd-internal.h"

#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ctrd_status_errno(grpc_status_code s)
{
	switch (s) {
	case GRPC_STATUS_OK:
		return 0;
	case GRPC_STATUS_NOT_FOUND:
		return -ENOENT;
	case GRPC_STATUS_ALREADY_EXISTS:
		return -EEXIST;
	case GRPC_STATUS_FAILED_PRECONDITION:
		return -EBUSY;
	case GRPC_STATUS_INVALID_ARGUMENT:
		return -EINVAL;
	case GRPC_STATUS_UNAVAILABLE:
		return -ECONNREFUSED;
	case GRPC_STATUS_DEADLINE_EXCEEDED:
		return -ETIMEDOUT;
	default:
		return -EIO;
	}
}

int ctrd_fail(struct dimg_err *err, int rc, const char *fmt, ...)
{
	va_list ap;
	if (!err)
		return rc;
	dimg_err_clear(err);
	va_start(ap, fmt);
	vsnprintf(err->why, sizeof(err->why), fmt, ap);
	va_end(ap);
	return rc;
}

static gpr_timespec after_ms(int64_t ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* Waits for the channel to be READY (connecting it) until the deadline. */
static int wait_ready(grpc_channel *ch, int timeout_ms)
{
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	gpr_timespec deadline = after_ms(timeout_ms);
	grpc_connectivity_state st = grpc_channel_check_connectivity_state(ch, 1);
	int tag;
	while (st != GRPC_CHANNEL_READY && st != GRPC_CHANNEL_SHUTDOWN) {
		grpc_channel_watch_connectivity_state(ch, st, deadline, cq, &tag);
		grpc_event ev =
		    grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (!ev.success) /* the deadline passed */
			break;
		st = grpc_channel_check_connectivity_state(ch, 1);
	}
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	return st == GRPC_CHANNEL_READY ? 0 : -ECONNREFUSED;
}

int ctrd_connect(struct ctrd **out, const char *address, const char *ns, int timeout_ms,
                 struct dimg_err *err)
{
	struct stat st;
	char *target = NULL;
	*out = NULL;
	if (!address)
		address = CTRD_DEFAULT_ADDRESS;
	if (!ns)
		ns = CTRD_DEFAULT_NAMESPACE;
	if (stat(address, &st) < 0)
		return ctrd_fail(err, -errno, "containerd socket %s: %s", address, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return ctrd_fail(err, -ENOTSOCK, "containerd address %s is not a socket", address);
	if (access(address, R_OK | W_OK) < 0) /* else gRPC retries until the deadline */
		return ctrd_fail(err, -errno, "containerd socket %s: %s", address, strerror(errno));
	struct ctrd *c = calloc(1, sizeof(*c));
	if (!c || asprintf(&target, "unix:%s", address) < 0) {
		free(c);
		return ctrd_fail(err, -ENOMEM, "out of memory");
	}
	grpc_init();
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	c->ch = grpc_channel_create(target, creds, NULL);
	grpc_channel_credentials_release(creds);
	free(target);
	c->address = strdup(address);
	c->ns = strdup(ns);
	if (!c->ch || !c->address || !c->ns) {
		ctrd_close(c);
		return ctrd_fail(err, -ENOMEM, "out of memory");
	}
	if (wait_ready(c->ch, timeout_ms) < 0) {
		ctrd_close(c);
		return ctrd_fail(err, -ECONNREFUSED,
		                 "containerd at %s does not answer (waited %d ms): is it running?",
		                 address, timeout_ms);
	}
	*out = c;
	return 0;
}

void ctrd_close(struct ctrd *c)
{
	if (!c)
		return;
	if (c->ch) {
		grpc_channel_destroy(c->ch);
		grpc_shutdown();
	}
	free(c->address);
	free(c->ns);
	free(c->lease);
	free(c);
}

/* Runs one batch and waits for it. */
static int run_batch(struct ctrd_call *k, const grpc_op *ops, size_t n)
{
	if (grpc_call_start_batch(k->call, ops, n, k, NULL) != GRPC_CALL_OK)
		return -EIO;
	grpc_event ev =
	    grpc_completion_queue_pluck(k->cq, k, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	return ev.type == GRPC_OP_COMPLETE && ev.success ? 0 : -EIO;
}

int ctrd_call_start(struct ctrd_call *k, struct ctrd *c, const char *method, const char *what,
                    int timeout_s)
{
	grpc_metadata md[2];
	grpc_op op;
	size_t n = 0;
	memset(k, 0, sizeof(*k));
	k->c = c;
	k->what = what;
	grpc_metadata_array_init(&k->md_in);
	grpc_metadata_array_init(&k->md_trail);
	k->details = grpc_empty_slice();
	k->cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_slice m = grpc_slice_from_static_string(method);
	k->call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, k->cq, m, NULL,
	                                   after_ms((int64_t)timeout_s * 1000), NULL);
	grpc_slice_unref(m);
	if (!k->call)
		return -EIO;
	memset(md, 0, sizeof(md));
	md[n].key = grpc_slice_from_static_string("containerd-namespace");
	md[n++].value = grpc_slice_from_copied_string(c->ns);
	if (c->lease) {
		md[n].key = grpc_slice_from_static_string("containerd-lease");
		md[n++].value = grpc_slice_from_copied_string(c->lease);
	}
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_INITIAL_METADATA;
	op.data.send_initial_metadata.count = n;
	op.data.send_initial_metadata.metadata = md;
	int r = run_batch(k, &op, 1);
	for (size_t i = 0; i < n; i++)
		grpc_slice_unref(md[i].value);
	return r;
}

int ctrd_call_send(struct ctrd_call *k, const ProtobufCMessage *m, int last)
{
	grpc_op ops[2];
	size_t n = 0, len = protobuf_c_message_get_packed_size(m);
	grpc_slice s = grpc_slice_malloc(len);
	protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	memset(ops, 0, sizeof(ops));
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n++].data.send_message.send_message = bb;
	if (last)
		ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	int r = run_batch(k, ops, n);
	grpc_byte_buffer_destroy(bb);
	return r;
}

int ctrd_call_recv(struct ctrd_call *k, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out)
{
	grpc_op ops[2];
	grpc_byte_buffer_reader rd;
	size_t n = 0;
	*out = NULL;
	if (k->recv)
		grpc_byte_buffer_destroy(k->recv);
	k->recv = NULL;
	memset(ops, 0, sizeof(ops));
	if (!k->got_headers) { /* no message reaches a client before the headers */
		ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
		ops[n++].data.recv_initial_metadata.recv_initial_metadata = &k->md_in;
		k->got_headers = 1;
	}
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n++].data.recv_message.recv_message = &k->recv;
	int r = run_batch(k, ops, n);
	if (r < 0 || !k->recv)
		return r;
	if (!grpc_byte_buffer_reader_init(&rd, k->recv))
		return -EIO;
	grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	*out = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	return *out ? 0 : -EBADMSG;
}

int ctrd_call_finish(struct ctrd_call *k, int rc, struct dimg_err *err)
{
	grpc_op op;
	if (!k->have_status) {
		memset(&op, 0, sizeof(op));
		op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
		op.data.recv_status_on_client.trailing_metadata = &k->md_trail;
		op.data.recv_status_on_client.status = &k->status;
		op.data.recv_status_on_client.status_details = &k->details;
		if (run_batch(k, &op, 1) < 0)
			return ctrd_fail(err, rc < 0 ? rc : -EIO, "%s: no status from containerd",
			                 k->what);
		k->have_status = 1;
	}
	int st = ctrd_status_errno(k->status);
	if (st == 0 && rc == -EBADMSG)
		return ctrd_fail(err, rc, "%s: containerd's answer does not parse", k->what);
	if (st == 0 && rc < 0)
		return ctrd_fail(err, rc, "%s: %s", k->what, strerror(-rc));
	if (st == 0)
		return 0;
	size_t dl = GRPC_SLICE_LENGTH(k->details);
	if (!dl)
		return ctrd_fail(err, st, "%s: %s (gRPC status %d)", k->what, strerror(-st),
		                 (int)k->status);
	return ctrd_fail(err, st, "%s: %.*s", k->what, (int)dl,
	                 (const char *)GRPC_SLICE_START_PTR(k->details));
}

void ctrd_call_end(struct ctrd_call *k)
{
	if (k->call && !k->have_status)
		grpc_call_cancel(k->call, NULL);
	if (k->recv)
		grpc_byte_buffer_destroy(k->recv);
	grpc_slice_unref(k->details);
	grpc_metadata_array_destroy(&k->md_in);
	grpc_metadata_array_destroy(&k->md_trail);
	if (k->call)
		grpc_call_unref(k->call);
	if (k->cq) {
		grpc_completion_queue_shutdown(k->cq);
		while (grpc_completion_queue_pluck(k->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME),
		                                   NULL)
		           .type != GRPC_QUEUE_SHUTDOWN)
			;
		grpc_completion_queue_destroy(k->cq);
	}
	memset(k, 0, sizeof(*k));
}

int ctrd_unary(struct ctrd *c, const char *method, const char *what, const ProtobufCMessage *req,
               const ProtobufCMessageDescriptor *d, ProtobufCMessage **resp, struct dimg_err *err)
{
	struct ctrd_call k;
	ProtobufCMessage *m = NULL;
	int r = ctrd_call_start(&k, c, method, what, CTRD_CALL_TIMEOUT_S);
	if (r == 0)
		r = ctrd_call_send(&k, req, 1);
	if (r == 0)
		r = ctrd_call_recv(&k, d, &m);
	r = ctrd_call_finish(&k, r, err);
	ctrd_call_end(&k);
	if (r == 0 && !m)
		r = ctrd_fail(err, -EBADMSG, "%s: containerd sent no answer", what);
	if (r < 0 || !resp) {
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
		m = NULL;
	}
	if (resp)
		*resp = m;
	return r;
}

int ctrd_pb_labels(const ProtobufCMessageDescriptor *d, const struct ctrd_label *l, size_t n,
                   void ***out)
{
	struct kv {
		ProtobufCMessage base;
		char *key;
		char *value;
	};
	*out = NULL;
	if (!n)
		return 0;
	if (d->sizeof_message != sizeof(struct kv))
		return -EINVAL;
	void **v = malloc(n * (sizeof(void *) + sizeof(struct kv)));
	if (!v)
		return -ENOMEM;
	struct kv *e = (struct kv *)(v + n);
	for (size_t i = 0; i < n; i++) {
		protobuf_c_message_init(d, &e[i]);
		e[i].key = (char *)l[i].key;
		e[i].value = (char *)l[i].value;
		v[i] = &e[i];
	}
	*out = v;
	return 0;
}
