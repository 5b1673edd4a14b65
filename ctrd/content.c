/* ctrd: containerd's content store (Info, Read, Write, Update). */
#include "content.pb-c.h"
#include "ctrd-internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONTENT_SVC "/containerd.services.content.v1.Content/"
#define WRITE_CHUNK (1u << 20) /* bytes per WRITE message (gRPC's limit is 4 MiB) */

typedef Containerd__Services__Content__V1__WriteContentRequest PbWriteReq;
typedef Containerd__Services__Content__V1__WriteContentResponse PbWriteResp;
typedef Containerd__Services__Content__V1__ReadContentResponse PbReadResp;

int ctrd_content_info(struct ctrd *c, const char *digest, int64_t *size, struct dimg_err *err)
{
	Containerd__Services__Content__V1__InfoRequest req =
	    CONTAINERD__SERVICES__CONTENT__V1__INFO_REQUEST__INIT;
	ProtobufCMessage *m;
	char what[128];
	snprintf(what, sizeof(what), "content info %s", digest);
	req.digest = (char *)digest;
	int r = ctrd_unary(c, CONTENT_SVC "Info", what, &req.base,
	                   &containerd__services__content__v1__info_response__descriptor, &m, err);
	if (r < 0)
		return r;
	const Containerd__Services__Content__V1__InfoResponse *resp = (void *)m;
	if (!resp->info) {
		protobuf_c_message_free_unpacked(m, NULL);
		return ctrd_fail(err, -EBADMSG, "%s: containerd sent no info", what);
	}
	*size = resp->info->size;
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

/* Sets labels on an existing blob (paths "labels.<key>": others stay). */
static int content_set_labels(struct ctrd *c, const char *digest, const struct ctrd_label *l,
                              size_t n, struct dimg_err *err)
{
	Containerd__Services__Content__V1__UpdateRequest req =
	    CONTAINERD__SERVICES__CONTENT__V1__UPDATE_REQUEST__INIT;
	Containerd__Services__Content__V1__Info info =
	    CONTAINERD__SERVICES__CONTENT__V1__INFO__INIT;
	Google__Protobuf__FieldMask mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
	char what[128], **paths = calloc(n, sizeof(*paths));
	void **entries = NULL;
	int r =
	    paths
	        ? ctrd_pb_labels(&containerd__services__content__v1__info__labels_entry__descriptor,
	                         l, n, &entries)
	        : -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++)
		if (asprintf(&paths[i], "labels.%s", l[i].key) < 0) {
			paths[i] = NULL;
			r = -ENOMEM;
		}
	snprintf(what, sizeof(what), "content update %s", digest);
	if (r == 0) {
		info.digest = (char *)digest;
		info.labels = (void *)entries;
		info.n_labels = n;
		mask.paths = paths;
		mask.n_paths = n;
		req.info = &info;
		req.update_mask = &mask;
		r = ctrd_unary(c, CONTENT_SVC "Update", what, &req.base,
		               &containerd__services__content__v1__update_response__descriptor,
		               NULL, err);
	} else {
		ctrd_fail(err, r, "%s: out of memory", what);
	}
	for (size_t i = 0; paths && i < n; i++)
		free(paths[i]);
	free(paths);
	free(entries);
	return r;
}

/* Sends one Write message and reads containerd's answer to it (containerd
 * answers every message): its offset into *offset. -EPIPE if the stream
 * ended instead (the final status says why). */
static int write_step(struct ctrd_call *k, const PbWriteReq *req, int last, int64_t *offset)
{
	ProtobufCMessage *m;
	int r = ctrd_call_send(k, &req->base, last);
	if (r == 0)
		r = ctrd_call_recv(
		    k, &containerd__services__content__v1__write_content_response__descriptor, &m);
	if (r < 0)
		return r;
	if (!m)
		return -EPIPE;
	*offset = ((const PbWriteResp *)m)->offset;
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

/* Fills p with exactly n bytes of src: -EBADMSG when it ends sooner. */
static int write_fill(ctrd_read_fn src, void *ctx, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = src(ctx, p, n);
		if (k <= 0)
			return k < 0 ? (int)k : -EBADMSG;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* After the last byte the source must be at its end (that is where a
 * checking source says whether the bytes were right). */
static int write_end(ctrd_read_fn src, void *ctx)
{
	uint8_t extra;
	ssize_t k = src(ctx, &extra, 1);
	return k < 0 ? (int)k : k ? -EBADMSG : 0;
}

/* WRITE messages from offset 0 (a write at 0 also discards whatever an
 * interrupted earlier write under the same ref left). */
static int write_chunks(struct ctrd_call *k, PbWriteReq *req, size_t n, ctrd_read_fn src,
                        void *sctx, ctrd_progress_fn progress, void *pctx, struct dimg_err *err)
{
	int64_t got;
	size_t off = 0;
	uint8_t *buf = malloc(n < WRITE_CHUNK ? (n ? n : 1) : WRITE_CHUNK);
	int r = buf ? 0 : -ENOMEM;
	req->action = CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__WRITE;
	while (r == 0 && off < n) {
		size_t len = n - off < WRITE_CHUNK ? n - off : WRITE_CHUNK;
		if ((r = write_fill(src, sctx, buf, len)) < 0)
			break;
		req->offset = (int64_t)off;
		req->data.data = buf;
		req->data.len = len;
		if ((r = write_step(k, req, 0, &got)) < 0)
			break;
		off += len;
		if (got != (int64_t)off) /* -EPROTO: err says it, the call is of no use */
			r = ctrd_fail(err, -EPROTO,
			              "%s: containerd is at offset %lld, we sent %zu bytes",
			              k->what, (long long)got, off);
		else if (progress)
			progress(pctx, k->what, off, n);
	}
	if (r == 0)
		r = write_end(src, sctx);
	free(buf);
	req->data.data = NULL;
	req->data.len = 0;
	return r;
}

static int content_write_stream(struct ctrd *c, const char *digest, size_t n, ctrd_read_fn src,
                                void *sctx, const struct ctrd_label *labels, size_t n_labels,
                                ctrd_progress_fn progress, void *pctx, const char *what,
                                struct dimg_err *err)
{
	PbWriteReq req = CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_REQUEST__INIT;
	struct ctrd_call k;
	void **entries = NULL;
	char ref[128];
	int64_t got;
	ProtobufCMessage *m = NULL;
	snprintf(ref, sizeof(ref), "di3fs-%s", digest);
	req.ref = ref;
	req.total = (int64_t)n;
	req.expected = (char *)digest;
	int r = ctrd_pb_labels(
	    &containerd__services__content__v1__write_content_request__labels_entry__descriptor,
	    labels, n_labels, &entries);
	if (r < 0)
		return ctrd_fail(err, r, "%s: out of memory", what);
	r = ctrd_call_start(&k, c, CONTENT_SVC "Write", what, CTRD_STREAM_TIMEOUT_S);
	if (r == 0) /* STAT first: an existing blob ends the stream with ALREADY_EXISTS */
		r = write_step(&k, &req, 0, &got);
	if (r == 0)
		r = write_chunks(&k, &req, n, src, sctx, progress, pctx, err);
	if (r == 0) {
		req.action = CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__COMMIT;
		req.offset = (int64_t)n;
		req.labels = (void *)entries;
		req.n_labels = n_labels;
		r = write_step(&k, &req, 1, &got);
	}
	if (r == 0)
		r = ctrd_call_recv(
		    &k, &containerd__services__content__v1__write_content_response__descriptor, &m);
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	if (r == -EPROTO)
		r = -EIO;
	else if (r == -EBADMSG || r == -ECANCELED) /* the source refused: containerd has no say */
		ctrd_fail(err, r, "%s: %s", what, strerror(-r));
	else
		r = ctrd_call_finish(&k, r == -EPIPE ? -EIO : r, err);
	ctrd_call_end(&k); /* cancels the call when it did not finish */
	free(entries);
	return r;
}

/* Success for a blob already there, with the labels asked for set on it. */
static int content_write_done(struct ctrd *c, const char *digest, int r,
                              const struct ctrd_label *labels, size_t n_labels,
                              struct dimg_err *err)
{
	if (r != -EEXIST)
		return r;
	/* Already there: success, but the labels asked for must be on it. */
	dimg_err_clear(err);
	return n_labels ? content_set_labels(c, digest, labels, n_labels, err) : 0;
}

int ctrd_content_write_from(struct ctrd *c, const char *digest, uint64_t size, ctrd_read_fn src,
                            void *ctx, const struct ctrd_label *labels, size_t n_labels,
                            struct dimg_err *err)
{
	char what[128];
	snprintf(what, sizeof(what), "content write %s", digest);
	int r = content_write_stream(c, digest, (size_t)size, src, ctx, labels, n_labels, NULL,
	                             NULL, what, err);
	return content_write_done(c, digest, r, labels, n_labels, err);
}

struct mem_src {
	const uint8_t *p;
	size_t n, off;
};

static ssize_t mem_read(void *ctx, void *p, size_t n)
{
	struct mem_src *m = ctx;
	size_t k = m->n - m->off < n ? m->n - m->off : n;
	memcpy(p, m->p + m->off, k);
	m->off += k;
	return (ssize_t)k;
}

int ctrd_content_write_progress(struct ctrd *c, const char *digest, const void *p, size_t n,
                                const struct ctrd_label *labels, size_t n_labels,
                                ctrd_progress_fn progress, void *pctx, struct dimg_err *err)
{
	struct mem_src m = {p, n, 0};
	char what[128];
	snprintf(what, sizeof(what), "content write %s", digest);
	int r = content_write_stream(c, digest, n, mem_read, &m, labels, n_labels, progress, pctx,
	                             what, err);
	return content_write_done(c, digest, r, labels, n_labels, err);
}

int ctrd_content_write(struct ctrd *c, const char *digest, const void *p, size_t n,
                       const struct ctrd_label *labels, size_t n_labels, struct dimg_err *err)
{
	return ctrd_content_write_progress(c, digest, p, n, labels, n_labels, NULL, NULL, err);
}

/* Passes each streamed chunk to sink, checking they arrive in order. */
static int read_chunks(struct ctrd_call *k, int64_t off, ctrd_sink_fn sink, void *ctx, int *sink_rc)
{
	for (;;) {
		ProtobufCMessage *m;
		int r = ctrd_call_recv(
		    k, &containerd__services__content__v1__read_content_response__descriptor, &m);
		if (r < 0 || !m)
			return r;
		const PbReadResp *resp = (const void *)m;
		if (resp->offset != off) {
			protobuf_c_message_free_unpacked(m, NULL);
			return -EBADMSG;
		}
		off += (int64_t)resp->data.len;
		*sink_rc = resp->data.len ? sink(ctx, resp->data.data, resp->data.len) : 0;
		protobuf_c_message_free_unpacked(m, NULL);
		if (*sink_rc < 0)
			return *sink_rc;
	}
}

int ctrd_content_read(struct ctrd *c, const char *digest, ctrd_sink_fn sink, void *ctx,
                      struct dimg_err *err)
{
	return ctrd_content_read_at(c, digest, 0, sink, ctx, err);
}

int ctrd_content_read_at(struct ctrd *c, const char *digest, int64_t offset, ctrd_sink_fn sink,
                         void *ctx, struct dimg_err *err)
{
	Containerd__Services__Content__V1__ReadContentRequest req =
	    CONTAINERD__SERVICES__CONTENT__V1__READ_CONTENT_REQUEST__INIT;
	struct ctrd_call k;
	char what[128];
	int sink_rc = 0;
	snprintf(what, sizeof(what), "content read %s", digest);
	req.digest = (char *)digest;
	req.offset = offset;
	int r = ctrd_call_start(&k, c, CONTENT_SVC "Read", what, CTRD_STREAM_TIMEOUT_S);
	if (r == 0)
		r = ctrd_call_send(&k, &req.base, 1);
	if (r == 0)
		r = read_chunks(&k, offset, sink, ctx, &sink_rc);
	if (sink_rc < 0) { /* the reader stopped: do not wait for the rest */
		grpc_call_cancel(k.call, NULL);
		ctrd_call_end(&k);
		return ctrd_fail(err, sink_rc, "%s: %s", what, strerror(-sink_rc));
	}
	if (r == -EBADMSG)
		grpc_call_cancel(k.call, NULL);
	r = ctrd_call_finish(&k, r, err);
	ctrd_call_end(&k);
	return r;
}

struct grow_buf {
	uint8_t *p;
	size_t n, cap, max;
};

static int grow_sink(void *ctx, const void *p, size_t n)
{
	struct grow_buf *b = ctx;
	if (n > b->max - b->n)
		return -EFBIG;
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->n + n)
			cap *= 2;
		uint8_t *q = realloc(b->p, cap);
		if (!q)
			return -ENOMEM;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
	return 0;
}

int ctrd_content_get(struct ctrd *c, const char *digest, size_t max, uint8_t **out, size_t *n,
                     struct dimg_err *err)
{
	struct grow_buf b = {.max = max};
	int r = ctrd_content_read(c, digest, grow_sink, &b, err);
	if (r == -EFBIG)
		ctrd_fail(err, r, "content %s is larger than %zu bytes", digest, max);
	if (r < 0) {
		free(b.p);
		return r;
	}
	if (!b.p && !(b.p = malloc(1)))
		return ctrd_fail(err, -ENOMEM, "out of memory");
	*out = b.p;
	*n = b.n;
	return 0;
}
