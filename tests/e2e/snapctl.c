/* di3fs-snapctl: a small gRPC C-core client of the snapshotter, for tests and
 * debugging: what ctr cannot do (raw or malformed requests, stalled clients,
 * timing a call while slow ones run), plus stat/list/usage. */
#include "snapshots.pb-c.h"

#include <errno.h>
#include <getopt.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SERVICE "/containerd.services.snapshots.v1.Snapshots/"

typedef Containerd__Services__Snapshots__V1__Info PbInfo;

/* One call: its queue, its ops' buffers, and what came back. */
struct ccall {
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_metadata_array md_in, md_trail;
	grpc_byte_buffer *recv;
	int got_headers;
	grpc_status_code status;
	grpc_slice details;
};

static gpr_timespec deadline(int seconds)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
	                    gpr_time_from_seconds(seconds, GPR_TIMESPAN));
}

static int ccall_open(struct ccall *c, grpc_channel *ch, const char *method)
{
	char path[256];

	memset(c, 0, sizeof(*c));
	snprintf(path, sizeof(path), SERVICE "%s", method);
	c->cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_slice m = grpc_slice_from_copied_string(path);
	c->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq, m, NULL,
	                                   deadline(60), NULL);
	grpc_slice_unref(m);
	grpc_metadata_array_init(&c->md_in);
	grpc_metadata_array_init(&c->md_trail);
	return c->call ? 0 : -EIO;
}

static int ccall_run(struct ccall *c, const grpc_op *ops, size_t n)
{
	if (grpc_call_start_batch(c->call, ops, n, c, NULL) != GRPC_CALL_OK)
		return -EIO;
	grpc_event ev = grpc_completion_queue_pluck(c->cq, c, deadline(120), NULL);
	return ev.type == GRPC_OP_COMPLETE && ev.success ? 0 : -EIO;
}

/* Sends the request (len bytes), or only the headers when req is NULL. */
static int ccall_send(struct ccall *c, const void *req, size_t len)
{
	grpc_op ops[3];
	size_t n = 0;
	grpc_byte_buffer *bb = NULL;

	memset(ops, 0, sizeof(ops));
	ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (req) {
		grpc_slice s = grpc_slice_from_copied_buffer(req, len);
		bb = grpc_raw_byte_buffer_create(&s, 1);
		grpc_slice_unref(s);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = bb;
		ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	}
	int r = ccall_run(c, ops, n);
	if (bb)
		grpc_byte_buffer_destroy(bb);
	return r;
}

/* Receives the next response message into c->recv (NULL at the end). */
static int ccall_recv(struct ccall *c)
{
	grpc_op ops[2];
	size_t n = 0;

	if (c->recv)
		grpc_byte_buffer_destroy(c->recv);
	c->recv = NULL;
	memset(ops, 0, sizeof(ops));
	if (!c->got_headers) { /* a client gets no message without the headers */
		ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
		ops[n++].data.recv_initial_metadata.recv_initial_metadata = &c->md_in;
		c->got_headers = 1;
	}
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n++].data.recv_message.recv_message = &c->recv;
	return ccall_run(c, ops, n);
}

static int ccall_status(struct ccall *c)
{
	grpc_op op;

	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	op.data.recv_status_on_client.trailing_metadata = &c->md_trail;
	op.data.recv_status_on_client.status = &c->status;
	op.data.recv_status_on_client.status_details = &c->details;
	return ccall_run(c, &op, 1);
}

static void ccall_close(struct ccall *c)
{
	if (c->recv)
		grpc_byte_buffer_destroy(c->recv);
	grpc_slice_unref(c->details);
	grpc_metadata_array_destroy(&c->md_in);
	grpc_metadata_array_destroy(&c->md_trail);
	if (c->call)
		grpc_call_unref(c->call);
	grpc_completion_queue_shutdown(c->cq);
	while (grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
	           .type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(c->cq);
}

static ProtobufCMessage *ccall_unpack(struct ccall *c, const ProtobufCMessageDescriptor *d)
{
	grpc_byte_buffer_reader rd;

	if (!c->recv || !grpc_byte_buffer_reader_init(&rd, c->recv))
		return NULL;
	grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	ProtobufCMessage *m =
	    protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	return m;
}

static int report_status(struct ccall *c)
{
	if (c->status != GRPC_STATUS_OK) {
		fprintf(stderr, "status %d: %.*s\n", (int)c->status,
		        (int)GRPC_SLICE_LENGTH(c->details),
		        (const char *)GRPC_SLICE_START_PTR(c->details));
		return 1;
	}
	return 0;
}

/* A unary call with a packed request message; *resp gets the response. */
static int unary(grpc_channel *ch, const char *method, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp)
{
	struct ccall c;
	size_t len = protobuf_c_message_get_packed_size(req);
	uint8_t *buf = malloc(len ? len : 1);
	int r = buf ? ccall_open(&c, ch, method) : -ENOMEM;

	if (r < 0) {
		free(buf);
		return 1;
	}
	protobuf_c_message_pack(req, buf);
	r = ccall_send(&c, buf, len);
	if (r == 0)
		r = ccall_recv(&c);
	if (r == 0)
		r = ccall_status(&c);
	free(buf);
	if (r < 0) {
		fprintf(stderr, "di3fs-snapctl: %s: transport failure\n", method);
		ccall_close(&c);
		return 1;
	}
	r = report_status(&c);
	*resp = r == 0 ? ccall_unpack(&c, resp_desc) : NULL;
	ccall_close(&c);
	return r;
}

static void print_info(const PbInfo *i)
{
	static const char *const kinds[] = {"Unknown", "View", "Active", "Committed"};
	int k = i->kind >= 0 && i->kind <= 3 ? (int)i->kind : 0;

	printf("%-9s %s%s%s\n", kinds[k], i->name, i->parent[0] ? " <- " : "", i->parent);
	for (size_t j = 0; j < i->n_labels; j++)
		printf("          label %s=%s\n", i->labels[j]->key, i->labels[j]->value);
}

static int cmd_stat(grpc_channel *ch, const char *key)
{
	Containerd__Services__Snapshots__V1__StatSnapshotRequest req =
	    CONTAINERD__SERVICES__SNAPSHOTS__V1__STAT_SNAPSHOT_REQUEST__INIT;
	ProtobufCMessage *resp;

	req.key = (char *)key;
	int r =
	    unary(ch, "Stat", &req.base,
	          &containerd__services__snapshots__v1__stat_snapshot_response__descriptor, &resp);
	if (r == 0 && resp) {
		const Containerd__Services__Snapshots__V1__StatSnapshotResponse *s = (void *)resp;
		if (s->info)
			print_info(s->info);
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	return r;
}

static int cmd_usage(grpc_channel *ch, const char *key)
{
	Containerd__Services__Snapshots__V1__UsageRequest req =
	    CONTAINERD__SERVICES__SNAPSHOTS__V1__USAGE_REQUEST__INIT;
	ProtobufCMessage *resp;

	req.key = (char *)key;
	int r = unary(ch, "Usage", &req.base,
	              &containerd__services__snapshots__v1__usage_response__descriptor, &resp);
	if (r == 0 && resp) {
		const Containerd__Services__Snapshots__V1__UsageResponse *u = (void *)resp;
		printf("size=%lld inodes=%lld\n", (long long)u->size, (long long)u->inodes);
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	return r;
}

/* List, one streamed message at a time; prints the snapshots and how many
 * messages carried them. filters may be empty. */
static int cmd_list(grpc_channel *ch, char **filters, size_t n_filters)
{
	Containerd__Services__Snapshots__V1__ListSnapshotsRequest req =
	    CONTAINERD__SERVICES__SNAPSHOTS__V1__LIST_SNAPSHOTS_REQUEST__INIT;
	struct ccall c;
	uint8_t buf[4096];
	size_t messages = 0, total = 0;

	req.filters = filters;
	req.n_filters = n_filters;
	if (protobuf_c_message_get_packed_size(&req.base) > sizeof(buf) ||
	    ccall_open(&c, ch, "List") < 0)
		return 1;
	int r = ccall_send(&c, buf, protobuf_c_message_pack(&req.base, buf));
	while (r == 0 && (r = ccall_recv(&c)) == 0 && c.recv) {
		ProtobufCMessage *m = ccall_unpack(
		    &c, &containerd__services__snapshots__v1__list_snapshots_response__descriptor);
		const Containerd__Services__Snapshots__V1__ListSnapshotsResponse *l = (void *)m;
		for (size_t i = 0; l && i < l->n_info; i++)
			print_info(l->info[i]);
		total += l ? l->n_info : 0;
		messages++;
		protobuf_c_message_free_unpacked(m, NULL);
	}
	if (r == 0)
		r = ccall_status(&c);
	int rc = r < 0 ? 1 : report_status(&c);
	ccall_close(&c);
	fprintf(stderr, "%zu snapshots in %zu messages\n", total, messages);
	return rc;
}

static int hex_decode(uint8_t *out, size_t *len, const char *hex)
{
	size_t n = strlen(hex);

	if (n % 2 || n / 2 > *len)
		return -EINVAL;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		out[i] = (uint8_t)v;
	}
	*len = n / 2;
	return 0;
}

/* Sends raw bytes as METHOD's request; prints the status code's number. */
static int cmd_raw(grpc_channel *ch, const char *method, const char *hex)
{
	uint8_t buf[4096];
	size_t len = sizeof(buf);
	struct ccall c;

	if (hex_decode(buf, &len, hex) < 0 || ccall_open(&c, ch, method) < 0)
		return 2;
	int r = ccall_send(&c, buf, len);
	if (r == 0)
		r = ccall_recv(&c);
	if (r == 0)
		r = ccall_status(&c);
	if (r == 0)
		printf("%d %.*s\n", (int)c.status, (int)GRPC_SLICE_LENGTH(c.details),
		       (const char *)GRPC_SLICE_START_PTR(c.details));
	ccall_close(&c);
	return r < 0 ? 1 : 0;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Opens n calls that send headers and never their request, then times a
 * Stat of key: a server that serves calls one at a time never answers. */
static int cmd_stall(grpc_channel *ch, int n, const char *key)
{
	struct ccall *stalled = calloc((size_t)n, sizeof(*stalled));
	int r = stalled ? 0 : 1;

	for (int i = 0; r == 0 && i < n; i++) {
		if (ccall_open(&stalled[i], ch, "Prepare") < 0 ||
		    ccall_send(&stalled[i], NULL, 0) < 0)
			r = 1;
	}
	double t0 = now_ms();
	if (r == 0)
		r = cmd_stat(ch, key);
	fprintf(stderr, "stat with %d stalled calls: %.1f ms\n", n, now_ms() - t0);
	for (int i = 0; stalled && i < n; i++) {
		if (stalled[i].call) {
			grpc_call_cancel(stalled[i].call, NULL);
			ccall_close(&stalled[i]);
		}
	}
	free(stalled);
	return r;
}

/* Starts n Usage(slow_key) calls at once, times a Stat(key) meanwhile, and
 * succeeds if the Stat answered before the last Usage did. */
static int cmd_race(grpc_channel *ch, int n, const char *slow_key, const char *key)
{
	Containerd__Services__Snapshots__V1__UsageRequest req =
	    CONTAINERD__SERVICES__SNAPSHOTS__V1__USAGE_REQUEST__INIT;
	struct ccall *slow = calloc((size_t)n, sizeof(*slow));
	uint8_t buf[4096];
	int r = slow ? 0 : 1;

	req.key = (char *)slow_key;
	size_t len = protobuf_c_message_pack(&req.base, buf);
	double t0 = now_ms();
	for (int i = 0; r == 0 && i < n; i++) {
		if (ccall_open(&slow[i], ch, "Usage") < 0 || ccall_send(&slow[i], buf, len) < 0)
			r = 1;
	}
	if (r == 0)
		r = cmd_stat(ch, key);
	double stat_ms = now_ms() - t0;
	for (int i = 0; slow && i < n; i++) {
		if (r == 0 && (ccall_recv(&slow[i]) < 0 || ccall_status(&slow[i]) < 0 ||
		               report_status(&slow[i])))
			r = 1;
		if (slow[i].call)
			ccall_close(&slow[i]);
	}
	double usage_ms = now_ms() - t0;
	free(slow);
	printf("stat_ms=%.1f usage_ms=%.1f\n", stat_ms, usage_ms);
	return r ? r : stat_ms < usage_ms ? 0 : 1;
}

static int run(grpc_channel *ch, int argc, char **argv)
{
	const char *cmd = argv[0];

	if (strcmp(cmd, "stat") == 0 && argc == 2)
		return cmd_stat(ch, argv[1]);
	if (strcmp(cmd, "usage") == 0 && argc == 2)
		return cmd_usage(ch, argv[1]);
	if (strcmp(cmd, "list") == 0)
		return cmd_list(ch, argv + 1, (size_t)(argc - 1));
	if (strcmp(cmd, "raw") == 0 && argc == 3)
		return cmd_raw(ch, argv[1], argv[2]);
	if (strcmp(cmd, "stall") == 0 && argc == 3)
		return cmd_stall(ch, (int)strtol(argv[1], NULL, 10), argv[2]);
	if (strcmp(cmd, "race") == 0 && argc == 4)
		return cmd_race(ch, (int)strtol(argv[1], NULL, 10), argv[2], argv[3]);
	return 2;
}

static void usage(void)
{
	fprintf(stderr, "Usage: di3fs-snapctl --address SOCK COMMAND\n"
	                "  stat KEY | usage KEY | list [FILTER...]\n"
	                "  raw METHOD HEX          send HEX as METHOD's request, print the status\n"
	                "  stall N KEY             Stat KEY while N calls never send a request\n"
	                "  race N SLOWKEY KEY      Stat KEY while N Usage(SLOWKEY) calls run\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"address", required_argument, NULL, 'a'},
	                                     {NULL, 0, NULL, 0}};
	char target[4200];
	const char *address = "/run/di3fs/snapshotter.sock";
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'a') {
			usage();
			return 2;
		}
		address = optarg;
	}
	if (optind >= argc) {
		usage();
		return 2;
	}
	snprintf(target, sizeof(target), "unix:%s", address);
	grpc_init();
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	grpc_channel *ch = grpc_channel_create(target, creds, NULL);
	grpc_channel_credentials_release(creds);
	int r = run(ch, argc - optind, argv + optind);
	if (r == 2)
		usage();
	grpc_channel_destroy(ch);
	grpc_shutdown();
	return r;
}
