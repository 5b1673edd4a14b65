/* Handlers of containerd.services.snapshots.v1.Snapshots: convert between
 * protobuf-c messages and the snap_* calls. Responses live in the call's
 * arena; requests belong to the transport. */
#include "grpc_methods.h"
#include "snap_filter.h"

#include "snapshots.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Containerd__Types__Mount PbMount;
typedef Containerd__Services__Snapshots__V1__Info PbInfo;
typedef Containerd__Services__Snapshots__V1__Info__LabelsEntry PbInfoLabel;
typedef Containerd__Services__Snapshots__V1__PrepareSnapshotRequest PbPrepareReq;
typedef Containerd__Services__Snapshots__V1__PrepareSnapshotResponse PbPrepareResp;
typedef Containerd__Services__Snapshots__V1__ViewSnapshotRequest PbViewReq;
typedef Containerd__Services__Snapshots__V1__ViewSnapshotResponse PbViewResp;
typedef Containerd__Services__Snapshots__V1__MountsRequest PbMountsReq;
typedef Containerd__Services__Snapshots__V1__MountsResponse PbMountsResp;
typedef Containerd__Services__Snapshots__V1__CommitSnapshotRequest PbCommitReq;
typedef Containerd__Services__Snapshots__V1__RemoveSnapshotRequest PbRemoveReq;
typedef Containerd__Services__Snapshots__V1__StatSnapshotRequest PbStatReq;
typedef Containerd__Services__Snapshots__V1__StatSnapshotResponse PbStatResp;
typedef Containerd__Services__Snapshots__V1__UpdateSnapshotRequest PbUpdateReq;
typedef Containerd__Services__Snapshots__V1__UpdateSnapshotResponse PbUpdateResp;
typedef Containerd__Services__Snapshots__V1__ListSnapshotsRequest PbListReq;
typedef Containerd__Services__Snapshots__V1__ListSnapshotsResponse PbListResp;
typedef Containerd__Services__Snapshots__V1__UsageRequest PbUsageReq;
typedef Containerd__Services__Snapshots__V1__UsageResponse PbUsageResp;
typedef Google__Protobuf__Empty PbEmpty;

/* A List response message carries at most this many snapshots, and about
 * this many bytes of strings (gRPC's default message limit is 4 MiB). */
#define LIST_PAGE_MAX   100
#define LIST_PAGE_BYTES (1 << 20)

/* protobuf-c leaves absent strings pointing at "", but never trust it. */
static const char *str(const char *s)
{
	return s ? s : "";
}

/* A string member of a message, found through its field descriptor. */
static const char *msg_string(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	if (!f || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
		return "";
	return str(*(char *const *)((const char *)m + f->offset));
}

/* Copies the map<string,string> field "labels" of msg into out. Requests
 * each have their own generated map entry type, so this goes through the
 * descriptors (a map entry is a message with key = 1, value = 2). */
static int labels_from_msg(struct snap_labels *out, const ProtobufCMessage *msg)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, "labels");

	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label != PROTOBUF_C_LABEL_REPEATED)
		return 0;
	size_t n = *(const size_t *)((const char *)msg + f->quantifier_offset);
	ProtobufCMessage *const *v =
	    *(ProtobufCMessage *const *const *)((const char *)msg + f->offset);
	for (size_t i = 0; i < n; i++) {
		const ProtobufCMessage *e = v[i];
		if (!e)
			continue;
		const char *key =
		    msg_string(e, protobuf_c_message_descriptor_get_field(e->descriptor, 1));
		const char *value =
		    msg_string(e, protobuf_c_message_descriptor_get_field(e->descriptor, 2));
		int r = snap_labels_set(out, key, value);
		if (r < 0)
			return r;
	}
	return 0;
}

static PbMount **mounts_to_pb(struct arena *a, const struct snap_mounts *m)
{
	PbMount **v = arena_calloc(a, m->n, sizeof(*v));

	for (size_t i = 0; v && i < m->n; i++) {
		PbMount *pm = arena_calloc(a, 1, sizeof(*pm));
		if (!pm)
			return NULL;
		containerd__types__mount__init(pm);
		pm->type = arena_strdup(a, m->v[i].type);
		pm->source = arena_strdup(a, m->v[i].source);
		pm->options = arena_calloc(a, m->v[i].n_options, sizeof(char *));
		if (!pm->type || !pm->source || !pm->options)
			return NULL;
		for (size_t j = 0; j < m->v[i].n_options; j++) {
			pm->options[j] = arena_strdup(a, m->v[i].options[j]);
			if (!pm->options[j])
				return NULL;
		}
		pm->n_options = m->v[i].n_options;
		v[i] = pm;
	}
	return v;
}

static Google__Protobuf__Timestamp *time_to_pb(struct arena *a, const struct timespec *ts)
{
	Google__Protobuf__Timestamp *t = arena_calloc(a, 1, sizeof(*t));

	if (t) {
		google__protobuf__timestamp__init(t);
		t->seconds = (int64_t)ts->tv_sec;
		t->nanos = (int32_t)ts->tv_nsec;
	}
	return t;
}

static int labels_to_pb(PbInfo *pi, struct arena *a, const struct snap_labels *l)
{
	pi->labels = arena_calloc(a, l->n, sizeof(*pi->labels));
	if (!pi->labels)
		return -ENOMEM;
	for (size_t i = 0; i < l->n; i++) {
		PbInfoLabel *e = arena_calloc(a, 1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		containerd__services__snapshots__v1__info__labels_entry__init(e);
		e->key = arena_strdup(a, l->v[i].key);
		e->value = arena_strdup(a, l->v[i].value);
		if (!e->key || !e->value)
			return -ENOMEM;
		pi->labels[i] = e;
	}
	pi->n_labels = l->n;
	return 0;
}

static PbInfo *info_to_pb(struct arena *a, const struct snap_info *info)
{
	PbInfo *pi = arena_calloc(a, 1, sizeof(*pi));

	if (!pi)
		return NULL;
	containerd__services__snapshots__v1__info__init(pi);
	pi->name = arena_strdup(a, info->name);
	pi->parent = arena_strdup(a, info->parent);
	pi->kind = (Containerd__Services__Snapshots__V1__Kind)info->kind;
	pi->created_at = time_to_pb(a, &info->created);
	pi->updated_at = time_to_pb(a, &info->updated);
	if (!pi->name || !pi->parent || !pi->created_at || !pi->updated_at ||
	    labels_to_pb(pi, a, &info->labels) < 0)
		return NULL;
	return pi;
}

static int info_from_pb(struct snap_info *out, const PbInfo *pi)
{
	memset(out, 0, sizeof(*out));
	out->name = strdup(str(pi->name));
	out->parent = strdup(str(pi->parent));
	out->kind = (enum snap_kind)pi->kind;
	if (!out->name || !out->parent)
		return -ENOMEM;
	return labels_from_msg(&out->labels, &pi->base);
}

static void subject_key(struct rpc_ctx *ctx, const char *key, const char *parent)
{
	if (parent && parent[0])
		snprintf(ctx->subject, sizeof(ctx->subject), "key=\"%s\" parent=\"%s\"", key,
		         parent);
	else
		snprintf(ctx->subject, sizeof(ctx->subject), "key=\"%s\"", key);
}

/* Prepare and View: the same call with another kind. */
static int prepare_common(PbMount ***mounts, size_t *n_mounts, struct rpc_ctx *ctx,
                          enum snap_kind kind, const char *key, const char *parent,
                          const struct snap_labels *labels)
{
	struct snap_mounts m;

	subject_key(ctx, key, parent);
	int r = snap_prepare(&m, ctx->sn, kind, key, parent, labels, &ctx->why);
	if (r < 0)
		return r;
	*mounts = mounts_to_pb(&ctx->arena, &m);
	*n_mounts = m.n;
	snap_mounts_clear(&m);
	return *mounts ? 0 : -ENOMEM;
}

static int rpc_prepare(ProtobufCMessage **resp, struct rpc_ctx *ctx, const ProtobufCMessage *msg)
{
	const PbPrepareReq *req = (const PbPrepareReq *)msg;
	struct snap_labels labels = {0};
	PbPrepareResp *out = arena_calloc(&ctx->arena, 1, sizeof(*out));
	int r = out ? labels_from_msg(&labels, msg) : -ENOMEM;

	if (r == 0) {
		containerd__services__snapshots__v1__prepare_snapshot_response__init(out);
		r = prepare_common(&out->mounts, &out->n_mounts, ctx, SNAP_KIND_ACTIVE,
		                   str(req->key), str(req->parent), &labels);
	}
	snap_labels_clear(&labels);
	if (r == 0)
		*resp = &out->base;
	return r;
}

static int rpc_view(ProtobufCMessage **resp, struct rpc_ctx *ctx, const ProtobufCMessage *msg)
{
	const PbViewReq *req = (const PbViewReq *)msg;
	struct snap_labels labels = {0};
	PbViewResp *out = arena_calloc(&ctx->arena, 1, sizeof(*out));
	int r = out ? labels_from_msg(&labels, msg) : -ENOMEM;

	if (r == 0) {
		containerd__services__snapshots__v1__view_snapshot_response__init(out);
		r = prepare_common(&out->mounts, &out->n_mounts, ctx, SNAP_KIND_VIEW, str(req->key),
		                   str(req->parent), &labels);
	}
	snap_labels_clear(&labels);
	if (r == 0)
		*resp = &out->base;
	return r;
}

static int rpc_mounts(ProtobufCMessage **resp, struct rpc_ctx *ctx, const ProtobufCMessage *msg)
{
	const PbMountsReq *req = (const PbMountsReq *)msg;
	PbMountsResp *out = arena_calloc(&ctx->arena, 1, sizeof(*out));
	struct snap_mounts m;

	subject_key(ctx, str(req->key), NULL);
	if (!out)
		return -ENOMEM;
	containerd__services__snapshots__v1__mounts_response__init(out);
	int r = snap_mounts(&m, ctx->sn, str(req->key), &ctx->why);
	if (r < 0)
		return r;
	out->mounts = mounts_to_pb(&ctx->arena, &m);
	out->n_mounts = m.n;
	snap_mounts_clear(&m);
	*resp = &out->base;
	return out->mounts ? 0 : -ENOMEM;
}

static int empty_response(ProtobufCMessage **resp, struct rpc_ctx *ctx)
{
	PbEmpty *out = arena_calloc(&ctx->arena, 1, sizeof(*out));

	if (!out)
		return -ENOMEM;
	google__protobuf__empty__init(out);
	*resp = &out->base;
	return 0;
}

static int rpc_commit(ProtobufCMessage **resp, struct rpc_ctx *ctx, const ProtobufCMessage *msg)
{
	const PbCommitReq *req = (const PbCommitReq *)msg;
	struct snap_labels labels = {0};

	snprintf(ctx->subject, sizeof(ctx->subject), "key=\"%s\" name=\"%s\"", str(req->key),
	         str(req->name));
	int r = labels_from_msg(&labels, msg);
	if (r == 0)
		r = snap_commit(ctx->sn, str(req->name), str(req->key), &labels, &ctx->why);
	snap_labels_clear(&labels);
	return r < 0 ? r : empty_response(resp, ctx);
}

static int rpc_remove(ProtobufCMessage **resp, struct rpc_ctx *ctx, const ProtobufCMessage *msg)
{
	const PbRemoveReq *req = (const PbRemoveReq *)msg;

	subject_key(ctx, str(req->key), NULL);
	int r = snap_remove(ctx->sn, str(req->key), &ctx->why);
	return r < 0 ? r : empty_response(resp, ctx);
}

static int rpc_stat(ProtobufCMessage **resp, struct rpc_ctx *ctx, const ProtobufCMessage *msg)
{
	const PbStatReq *req = (const PbStatReq *)msg;
	PbStatResp *out = arena_calloc(&ctx->arena, 1, sizeof(*out));
	struct snap_info info;

	subject_key(ctx, str(req->key), NULL);
	if (!out)
		return -ENOMEM;
	containerd__services__snapshots__v1__stat_snapshot_response__init(out);
	int r = snap_stat(&info, ctx->sn, str(req->key), &ctx->why);
	if (r < 0)
		return r;
	out->info = info_to_pb(&ctx->arena, &info);
	snap_info_clear(&info);
	*resp = &out->base;
	return out->info ? 0 : -ENOMEM;
}

static int rpc_update(ProtobufCMessage **resp, struct rpc_ctx *ctx, const ProtobufCMessage *msg)
{
	const PbUpdateReq *req = (const PbUpdateReq *)msg;
	PbUpdateResp *out = arena_calloc(&ctx->arena, 1, sizeof(*out));
	struct snap_info in, info;
	size_t n_paths = req->update_mask ? req->update_mask->n_paths : 0;
	const char *const *paths =
	    req->update_mask ? (const char *const *)req->update_mask->paths : NULL;

	if (!out)
		return -ENOMEM;
	if (!req->info) {
		ctx->why = "update without snapshot info";
		return -EINVAL;
	}
	subject_key(ctx, str(req->info->name), NULL);
	containerd__services__snapshots__v1__update_snapshot_response__init(out);
	int r = info_from_pb(&in, req->info);
	if (r == 0)
		r = snap_update(&info, ctx->sn, &in, paths, n_paths, &ctx->why);
	snap_info_clear(&in);
	if (r < 0)
		return r;
	out->info = info_to_pb(&ctx->arena, &info);
	snap_info_clear(&info);
	*resp = &out->base;
	return out->info ? 0 : -ENOMEM;
}

static int rpc_usage(ProtobufCMessage **resp, struct rpc_ctx *ctx, const ProtobufCMessage *msg)
{
	const PbUsageReq *req = (const PbUsageReq *)msg;
	PbUsageResp *out = arena_calloc(&ctx->arena, 1, sizeof(*out));
	struct snap_usage u;

	subject_key(ctx, str(req->key), NULL);
	if (!out)
		return -ENOMEM;
	containerd__services__snapshots__v1__usage_response__init(out);
	int r = snap_usage(&u, ctx->sn, str(req->key), &ctx->why);
	if (r < 0)
		return r;
	out->size = u.size;
	out->inodes = u.inodes;
	*resp = &out->base;
	return 0;
}

static int rpc_cleanup(ProtobufCMessage **resp, struct rpc_ctx *ctx, const ProtobufCMessage *msg)
{
	int r = snap_cleanup(ctx->sn, &ctx->why);

	return r < 0 ? r : empty_response(resp, ctx);
}

struct list_stream {
	struct snap_filter *filter;
	char *cursor; /* last key sent */
	int done;
};

static int rpc_list_start(struct rpc_ctx *ctx, const ProtobufCMessage *msg)
{
	const PbListReq *req = (const PbListReq *)msg;
	struct list_stream *ls = calloc(1, sizeof(*ls));

	snprintf(ctx->subject, sizeof(ctx->subject), "filters=%zu", req->n_filters);
	if (!ls)
		return -ENOMEM;
	ctx->stream = ls;
	return snap_filter_parse(&ls->filter, (const char *const *)req->filters, req->n_filters,
	                         &ctx->why);
}

static int list_page_to_pb(PbListResp *out, struct arena *a, const struct snap_info *page, size_t n)
{
	containerd__services__snapshots__v1__list_snapshots_response__init(out);
	out->info = arena_calloc(a, n, sizeof(*out->info));
	if (!out->info)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		out->info[i] = info_to_pb(a, &page[i]);
		if (!out->info[i])
			return -ENOMEM;
	}
	out->n_info = n;
	return 0;
}

static int rpc_list_next(ProtobufCMessage **resp, struct rpc_ctx *ctx)
{
	struct list_stream *ls = ctx->stream;
	struct snap_info *page;
	size_t n;

	if (ls->done)
		return 0;
	int r = snap_list_page(&page, &n, &ls->cursor, ctx->sn, ls->filter, LIST_PAGE_MAX,
	                       LIST_PAGE_BYTES);
	if (r < 0)
		return r;
	if (n == 0) {
		ls->done = 1;
		snap_list_free(page, n);
		return 0;
	}
	PbListResp *out = arena_calloc(&ctx->arena, 1, sizeof(*out));
	r = out ? list_page_to_pb(out, &ctx->arena, page, n) : -ENOMEM;
	snap_list_free(page, n);
	if (r < 0)
		return r;
	*resp = &out->base;
	return 1;
}

static void rpc_list_end(struct rpc_ctx *ctx)
{
	struct list_stream *ls = ctx->stream;

	if (!ls)
		return;
	snap_filter_free(ls->filter);
	free(ls->cursor);
	free(ls);
	ctx->stream = NULL;
}

#define SNAPSHOTS_REQ(name) &containerd__services__snapshots__v1__##name##__descriptor

static const struct rpc_method rpc_methods[] = {
    {"Prepare", SNAPSHOTS_REQ(prepare_snapshot_request), rpc_prepare, NULL, NULL, NULL},
    {"View", SNAPSHOTS_REQ(view_snapshot_request), rpc_view, NULL, NULL, NULL},
    {"Mounts", SNAPSHOTS_REQ(mounts_request), rpc_mounts, NULL, NULL, NULL},
    {"Commit", SNAPSHOTS_REQ(commit_snapshot_request), rpc_commit, NULL, NULL, NULL},
    {"Remove", SNAPSHOTS_REQ(remove_snapshot_request), rpc_remove, NULL, NULL, NULL},
    {"Stat", SNAPSHOTS_REQ(stat_snapshot_request), rpc_stat, NULL, NULL, NULL},
    {"Update", SNAPSHOTS_REQ(update_snapshot_request), rpc_update, NULL, NULL, NULL},
    {"List", SNAPSHOTS_REQ(list_snapshots_request), NULL, rpc_list_start, rpc_list_next,
     rpc_list_end},
    {"Usage", SNAPSHOTS_REQ(usage_request), rpc_usage, NULL, NULL, NULL},
    {"Cleanup", SNAPSHOTS_REQ(cleanup_request), rpc_cleanup, NULL, NULL, NULL},
};

const struct rpc_method *rpc_method_find(const char *path, size_t len)
{
	size_t plen = strlen(RPC_SERVICE);

	if (len <= plen || memcmp(path, RPC_SERVICE, plen) != 0)
		return NULL;
	for (size_t i = 0; i < sizeof(rpc_methods) / sizeof(rpc_methods[0]); i++) {
		const char *name = rpc_methods[i].name;
		if (strlen(name) == len - plen && memcmp(path + plen, name, len - plen) == 0)
			return &rpc_methods[i];
	}
	return NULL;
}
