/* gRPC core server: one completion queue polled by a pool of worker threads.
 * Several grpc_server_request_call are always outstanding, so a new call is
 * accepted while others run; each call is a small state machine with at
 * most one batch in flight, which makes it owned by one thread at a time. */
#include "grpc_server.h"
#include "grpc_methods.h"

#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Outstanding request_call slots per worker thread. */
#define RPC_SLOTS_PER_THREAD 2

struct rpc_server {
	grpc_server *server;
	grpc_completion_queue *cq;
	struct snap *sn;
	const struct snap_log *lg;
	pthread_t *threads;
	int n_threads;
	atomic_int stopping;
	int shutdown_tag; /* its address tags the shutdown notification */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int shutdown_done; /* guarded by mu */
};

enum call_state {
	CALL_WAIT_NEW,     /* request_call outstanding */
	CALL_WAIT_REQUEST, /* receiving the request message */
	CALL_STREAMING,    /* a streamed response message in flight */
	CALL_FINISHING,    /* status sent, waiting for the close */
};

struct rpc_call {
	struct rpc_server *srv;
	enum call_state state;
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array md;
	grpc_byte_buffer *recv;
	grpc_byte_buffer *send;
	int cancelled;
	int sent_initial;
	const struct rpc_method *method;
	struct rpc_ctx ctx;
	grpc_status_code status;
	struct timespec started;
};

static void call_free(struct rpc_call *c)
{
	if (c->method && c->method->stream_end)
		c->method->stream_end(&c->ctx);
	arena_reset(&c->ctx.arena);
	if (c->recv)
		grpc_byte_buffer_destroy(c->recv);
	if (c->send)
		grpc_byte_buffer_destroy(c->send);
	grpc_metadata_array_destroy(&c->md);
	grpc_call_details_destroy(&c->details);
	if (c->call)
		grpc_call_unref(c->call);
	free(c);
}

/* Puts one more request_call slot out. */
static void call_arm(struct rpc_server *srv)
{
	struct rpc_call *c = calloc(1, sizeof(*c));

	if (!c) {
		snap_err(srv->lg, "out of memory: one call slot fewer");
		return;
	}
	c->srv = srv;
	c->ctx.sn = srv->sn;
	c->ctx.lg = srv->lg;
	grpc_call_details_init(&c->details);
	grpc_metadata_array_init(&c->md);
	grpc_call_error e = grpc_server_request_call(srv->server, &c->call, &c->details, &c->md,
	                                             srv->cq, srv->cq, c);
	if (e != GRPC_CALL_OK) {
		if (!atomic_load(&srv->stopping))
			snap_err(srv->lg, "grpc_server_request_call: error %d", (int)e);
		call_free(c);
	}
}

static double elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) * 1e3 +
	       (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

/* One line per call: debug when it went well (or the client gave up on
 * it), info when it failed, so failures show without -v. */
static void call_log(const struct rpc_call *c)
{
	const char *name = c->method ? c->method->name : "?";
	const char *why = c->cancelled ? "by the client" : c->ctx.why;
	grpc_status_code code = c->cancelled ? GRPC_STATUS_CANCELLED : c->status;
	int level = code == GRPC_STATUS_OK || c->cancelled ? SNAP_LOG_DEBUG : SNAP_LOG_INFO;

	snap_logf(c->srv->lg, level, "rpc %s%s%s -> %s%s%s%s %.1fms", name,
	          c->ctx.subject[0] ? " " : "", c->ctx.subject, rpc_status_name(code),
	          why ? " (" : "", why ? why : "", why ? ")" : "", elapsed_ms(&c->started));
}

static int call_batch(struct rpc_call *c, const grpc_op *ops, size_t n)
{
	grpc_call_error e = grpc_call_start_batch(c->call, ops, n, c, NULL);

	if (e == GRPC_CALL_OK)
		return 0;
	snap_err(c->srv->lg, "grpc_call_start_batch: error %d", (int)e);
	return -EIO;
}

static void op_initial_metadata(grpc_op *op, struct rpc_call *c)
{
	memset(op, 0, sizeof(*op));
	op->op = GRPC_OP_SEND_INITIAL_METADATA;
	c->sent_initial = 1;
}

/* Ends the call with err's status (and c->send as the last message, if
 * set): one batch, after which the call is freed. */
static void call_finish(struct rpc_call *c, int err)
{
	grpc_op ops[4];
	size_t n = 0;
	char detail[768];

	c->status = rpc_status_from_errno(err);
	if (!c->sent_initial)
		op_initial_metadata(&ops[n++], c);
	if (c->send && err == 0) {
		memset(&ops[n], 0, sizeof(ops[n]));
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = c->send;
	}
	snprintf(detail, sizeof(detail), "%s%s%s", c->ctx.why ? c->ctx.why : strerror(-err),
	         c->ctx.subject[0] ? ": " : "", c->ctx.subject);
	grpc_slice details = grpc_slice_from_copied_string(detail);
	memset(&ops[n], 0, sizeof(ops[n]));
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = c->status;
	ops[n++].data.send_status_from_server.status_details = err ? &details : NULL;
	memset(&ops[n], 0, sizeof(ops[n]));
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
	c->state = CALL_FINISHING;
	int r = call_batch(c, ops, n);
	grpc_slice_unref(details);
	if (r < 0) {
		call_log(c);
		call_free(c);
	}
}

/* Packs msg into c->send. */
static int call_pack(struct rpc_call *c, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	grpc_slice s = grpc_slice_malloc(len);

	if (protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s)) != len) {
		grpc_slice_unref(s);
		return -EIO;
	}
	c->send = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return c->send ? 0 : -ENOMEM;
}

/* Decodes the received request; -EBADMSG when it is not the message,
 * -EINVAL when a string in it holds a NUL byte (c->ctx.why says which). */
static int call_decode(ProtobufCMessage **out, struct rpc_call *c)
{
	grpc_byte_buffer_reader reader;

	c->ctx.why = "malformed request message";
	if (!grpc_byte_buffer_reader_init(&reader, c->recv))
		return -EBADMSG;
	grpc_slice s = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	int r =
	    rpc_check_strings(c->method->request, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
	*out = r < 0 ? NULL
	             : protobuf_c_message_unpack(c->method->request, NULL, GRPC_SLICE_LENGTH(s),
	                                         GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	grpc_byte_buffer_destroy(c->recv);
	c->recv = NULL;
	if (r == -EINVAL)
		c->ctx.why = "a string field holds a NUL byte";
	return r < 0 ? r : *out ? 0 : -EBADMSG;
}

/* Sends the next streamed message, or the final status when none is left. */
static void call_stream_step(struct rpc_call *c)
{
	ProtobufCMessage *resp = NULL;
	grpc_op ops[2];
	size_t n = 0;
	int r = c->method->stream_next(&resp, &c->ctx);

	if (r > 0)
		r = call_pack(c, resp);
	arena_reset(&c->ctx.arena);
	if (r <= 0) {
		call_finish(c, r);
		return;
	}
	if (!c->sent_initial)
		op_initial_metadata(&ops[n++], c);
	memset(&ops[n], 0, sizeof(ops[n]));
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n++].data.send_message.send_message = c->send;
	c->state = CALL_STREAMING;
	if (call_batch(c, ops, n) < 0) {
		call_log(c);
		call_free(c);
	}
}

static void call_handle_request(struct rpc_call *c)
{
	ProtobufCMessage *req = NULL, *resp = NULL;
	int r = call_decode(&req, c);

	if (r < 0) {
		call_finish(c, r);
		return;
	}
	c->ctx.why = NULL;
	if (c->method->unary) {
		r = c->method->unary(&resp, &c->ctx, req);
		if (r == 0)
			r = call_pack(c, resp);
		protobuf_c_message_free_unpacked(req, NULL);
		arena_reset(&c->ctx.arena);
		call_finish(c, r);
		return;
	}
	r = c->method->stream_start(&c->ctx, req);
	protobuf_c_message_free_unpacked(req, NULL);
	if (r < 0)
		call_finish(c, r);
	else
		call_stream_step(c);
}

static void call_accept(struct rpc_call *c)
{
	grpc_op op;

	clock_gettime(CLOCK_MONOTONIC, &c->started);
	c->method = rpc_method_find((const char *)GRPC_SLICE_START_PTR(c->details.method),
	                            GRPC_SLICE_LENGTH(c->details.method));
	if (!c->method) {
		snprintf(c->ctx.subject, sizeof(c->ctx.subject), "method=\"%.*s\"",
		         (int)GRPC_SLICE_LENGTH(c->details.method),
		         (const char *)GRPC_SLICE_START_PTR(c->details.method));
		c->ctx.why = "unknown method";
		call_finish(c, -ENOSYS);
		return;
	}
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &c->recv;
	c->state = CALL_WAIT_REQUEST;
	if (call_batch(c, &op, 1) < 0)
		call_free(c);
}

/* Moves a call on when its batch (or its arrival) completes. */
static void call_advance(struct rpc_call *c, int ok)
{
	switch (c->state) {
	case CALL_WAIT_NEW:
		if (!ok) { /* the server is shutting down */
			call_free(c);
			return;
		}
		if (!atomic_load(&c->srv->stopping))
			call_arm(c->srv);
		call_accept(c);
		return;
	case CALL_WAIT_REQUEST:
		if (!ok || !c->recv) {
			c->ctx.why = ok ? "no request message" : "request not received";
			call_finish(c, ok ? -EINVAL : -ECANCELED);
		} else {
			call_handle_request(c);
		}
		return;
	case CALL_STREAMING:
		grpc_byte_buffer_destroy(c->send);
		c->send = NULL;
		if (!ok) {
			c->ctx.why = "client went away";
			call_finish(c, -ECANCELED);
		} else {
			call_stream_step(c);
		}
		return;
	case CALL_FINISHING:
		call_log(c);
		call_free(c);
		return;
	}
}

/* Takes one event off the queue and acts on it: 0 when it was a call's,
 * 1 for the shutdown notification, -1 once the queue is shut down. */
static int rpc_poll(struct rpc_server *srv)
{
	grpc_event ev =
	    grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

	if (ev.type == GRPC_QUEUE_SHUTDOWN)
		return -1;
	if (ev.type != GRPC_OP_COMPLETE)
		return 0;
	if (ev.tag == &srv->shutdown_tag) {
		pthread_mutex_lock(&srv->mu);
		srv->shutdown_done = 1;
		pthread_cond_broadcast(&srv->cv);
		pthread_mutex_unlock(&srv->mu);
		return 1;
	}
	call_advance(ev.tag, ev.success);
	return 0;
}

static void *rpc_worker(void *arg)
{
	struct rpc_server *srv = arg;

	while (rpc_poll(srv) >= 0)
		;
	return NULL;
}

static int server_bind(struct rpc_server *srv, const char *address)
{
	char uri[4096 + 8];
	grpc_server_credentials *creds = grpc_insecure_server_credentials_create();

	snprintf(uri, sizeof(uri), "unix:%s", address);
	int port = grpc_server_add_http2_port(srv->server, uri, creds);
	grpc_server_credentials_release(creds);
	if (port == 0) {
		snap_err(srv->lg, "cannot listen on %s", uri);
		return -EADDRNOTAVAIL;
	}
	return 0;
}

static int server_start_threads(struct rpc_server *srv, int threads)
{
	srv->threads = calloc((size_t)threads, sizeof(*srv->threads));
	if (!srv->threads)
		return -ENOMEM;
	for (int i = 0; i < threads; i++) {
		int e = pthread_create(&srv->threads[i], NULL, rpc_worker, srv);
		if (e != 0)
			return -e;
		srv->n_threads++;
	}
	return 0;
}

int rpc_server_start(struct rpc_server **out, const char *address, int threads, struct snap *sn,
                     const struct snap_log *lg)
{
	struct rpc_server *srv = calloc(1, sizeof(*srv));

	if (!srv)
		return -ENOMEM;
	srv->sn = sn;
	srv->lg = lg;
	pthread_mutex_init(&srv->mu, NULL);
	pthread_cond_init(&srv->cv, NULL);
	srv->server = grpc_server_create(NULL, NULL);
	srv->cq = grpc_completion_queue_create_for_next(NULL);
	grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
	int r = server_bind(srv, address);
	if (r == 0) {
		grpc_server_start(srv->server);
		if (chmod(address, 0660) < 0)
			snap_warn(lg, "chmod %s: %s", address, strerror(errno));
		for (int i = 0; i < threads * RPC_SLOTS_PER_THREAD; i++)
			call_arm(srv);
		r = server_start_threads(srv, threads);
	}
	if (r < 0) {
		rpc_server_stop(srv);
		return r;
	}
	*out = srv;
	return 0;
}

void rpc_server_stop(struct rpc_server *srv)
{
	if (!srv)
		return;
	atomic_store(&srv->stopping, 1);
	grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
	grpc_server_cancel_all_calls(srv->server);
	if (srv->n_threads == 0) { /* no worker started: finish the calls here */
		while (rpc_poll(srv) == 0)
			;
	}
	pthread_mutex_lock(&srv->mu);
	while (!srv->shutdown_done)
		pthread_cond_wait(&srv->cv, &srv->mu);
	pthread_mutex_unlock(&srv->mu);
	/* every call has ended: nothing can queue new work any more */
	grpc_completion_queue_shutdown(srv->cq);
	for (int i = 0; i < srv->n_threads; i++)
		pthread_join(srv->threads[i], NULL);
	if (srv->n_threads == 0) {
		while (rpc_poll(srv) >= 0)
			;
	}
	grpc_server_destroy(srv->server);
	grpc_completion_queue_destroy(srv->cq);
	pthread_mutex_destroy(&srv->mu);
	pthread_cond_destroy(&srv->cv);
	free(srv->threads);
	free(srv);
}
