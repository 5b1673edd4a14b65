/* ctrd: leases and snapshots through containerd (its metadata layer adds
 * what a call creates to the lease, and forwards to the snapshotter). */
#include "ctrd-internal.h"
#include "google/protobuf/empty.pb-c.h"
#include "leases.pb-c.h"
#include "snapshots.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define LEASES_SVC    "/containerd.services.leases.v1.Leases/"
#define SNAPSHOTS_SVC "/containerd.services.snapshots.v1.Snapshots/"

int ctrd_lease_create(struct ctrd *c, unsigned expire_s, struct dimg_err *err)
{
	Containerd__Services__Leases__V1__CreateRequest req =
	    CONTAINERD__SERVICES__LEASES__V1__CREATE_REQUEST__INIT;
	uint8_t rnd[8];
	char id[64], expire[32];
	ProtobufCMessage *m;
	void **entries = NULL;
	time_t t = time(NULL) + (time_t)expire_s;
	struct tm tm;
	if (c->lease)
		return ctrd_fail(err, -EBUSY, "lease create: lease %s is still held", c->lease);
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return ctrd_fail(err, -EIO, "lease create: no random bytes");
	snprintf(id, sizeof(id), "di3fs-%lld-%02x%02x%02x%02x%02x%02x%02x%02x",
	         (long long)time(NULL), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6],
	         rnd[7]);
	strftime(expire, sizeof(expire), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	const struct ctrd_label l = {"containerd.io/gc.expire", expire};
	int r = ctrd_pb_labels(
	    &containerd__services__leases__v1__create_request__labels_entry__descriptor, &l, 1,
	    &entries);
	if (r < 0)
		return ctrd_fail(err, r, "lease create: out of memory");
	req.id = id;
	req.labels = (void *)entries;
	req.n_labels = 1;
	r = ctrd_unary(c, LEASES_SVC "Create", "lease create", &req.base,
	               &containerd__services__leases__v1__create_response__descriptor, &m, err);
	free(entries);
	if (r < 0)
		return r;
	const Containerd__Services__Leases__V1__CreateResponse *resp = (void *)m;
	c->lease = strdup(resp->lease && resp->lease->id[0] ? resp->lease->id : id);
	protobuf_c_message_free_unpacked(m, NULL);
	return c->lease ? 0 : ctrd_fail(err, -ENOMEM, "lease create: out of memory");
}

int ctrd_lease_delete(struct ctrd *c, struct dimg_err *err)
{
	Containerd__Services__Leases__V1__DeleteRequest req =
	    CONTAINERD__SERVICES__LEASES__V1__DELETE_REQUEST__INIT;
	char what[128];
	char *id = c->lease;
	if (!id)
		return 0;
	c->lease = NULL; /* the Delete call itself runs outside the lease */
	snprintf(what, sizeof(what), "lease delete %s", id);
	req.id = id;
	int r = ctrd_unary(c, LEASES_SVC "Delete", what, &req.base,
	                   &google__protobuf__empty__descriptor, NULL, err);
	free(id);
	return r;
}

/* Stat and Remove: requests of one layout {snapshotter = 1, key = 2}. */
static int snapshot_key_call(struct ctrd *c, const char *method, const char *verb,
                             const ProtobufCMessageDescriptor *req_d,
                             const ProtobufCMessageDescriptor *resp_d, const char *snapshotter,
                             const char *key, struct dimg_err *err)
{
	struct {
		ProtobufCMessage base;
		char *snapshotter;
		char *key;
	} req;
	char what[300];
	if (req_d->sizeof_message != sizeof(req))
		return ctrd_fail(err, -EINVAL, "snapshot %s: unexpected request layout", verb);
	protobuf_c_message_init(req_d, &req);
	snprintf(what, sizeof(what), "snapshot %s %s (%s)", verb, key, snapshotter);
	req.snapshotter = (char *)snapshotter;
	req.key = (char *)key;
	return ctrd_unary(c, method, what, &req.base, resp_d, NULL, err);
}

int ctrd_snapshot_stat(struct ctrd *c, const char *snapshotter, const char *key,
                       struct dimg_err *err)
{
	return snapshot_key_call(
	    c, SNAPSHOTS_SVC "Stat", "stat",
	    &containerd__services__snapshots__v1__stat_snapshot_request__descriptor,
	    &containerd__services__snapshots__v1__stat_snapshot_response__descriptor, snapshotter,
	    key, err);
}

int ctrd_snapshot_prepare(struct ctrd *c, const char *snapshotter, const char *key,
                          const char *parent, const struct ctrd_label *labels, size_t n_labels,
                          struct dimg_err *err)
{
	Containerd__Services__Snapshots__V1__PrepareSnapshotRequest req =
	    CONTAINERD__SERVICES__SNAPSHOTS__V1__PREPARE_SNAPSHOT_REQUEST__INIT;
	void **entries = NULL;
	char what[300];
	snprintf(what, sizeof(what), "snapshot prepare %s (%s)", key, snapshotter);
	int r = ctrd_pb_labels(
	    &containerd__services__snapshots__v1__prepare_snapshot_request__labels_entry__descriptor,
	    labels, n_labels, &entries);
	if (r < 0)
		return ctrd_fail(err, r, "%s: out of memory", what);
	req.snapshotter = (char *)snapshotter;
	req.key = (char *)key;
	req.parent = (char *)(parent ? parent : "");
	req.labels = (void *)entries;
	req.n_labels = n_labels;
	r = ctrd_unary(c, SNAPSHOTS_SVC "Prepare", what, &req.base,
	               &containerd__services__snapshots__v1__prepare_snapshot_response__descriptor,
	               NULL, err);
	free(entries);
	return r;
}

int ctrd_snapshot_commit(struct ctrd *c, const char *snapshotter, const char *name, const char *key,
                         const struct ctrd_label *labels, size_t n_labels, struct dimg_err *err)
{
	Containerd__Services__Snapshots__V1__CommitSnapshotRequest req =
	    CONTAINERD__SERVICES__SNAPSHOTS__V1__COMMIT_SNAPSHOT_REQUEST__INIT;
	void **entries = NULL;
	char what[300];
	snprintf(what, sizeof(what), "snapshot commit %s as %s (%s)", key, name, snapshotter);
	int r = ctrd_pb_labels(
	    &containerd__services__snapshots__v1__commit_snapshot_request__labels_entry__descriptor,
	    labels, n_labels, &entries);
	if (r < 0)
		return ctrd_fail(err, r, "%s: out of memory", what);
	req.snapshotter = (char *)snapshotter;
	req.name = (char *)name;
	req.key = (char *)key;
	req.labels = (void *)entries;
	req.n_labels = n_labels;
	r = ctrd_unary(c, SNAPSHOTS_SVC "Commit", what, &req.base,
	               &google__protobuf__empty__descriptor, NULL, err);
	free(entries);
	return r;
}

int ctrd_snapshot_remove(struct ctrd *c, const char *snapshotter, const char *key,
                         struct dimg_err *err)
{
	return snapshot_key_call(
	    c, SNAPSHOTS_SVC "Remove", "remove",
	    &containerd__services__snapshots__v1__remove_snapshot_request__descriptor,
	    &google__protobuf__empty__descriptor, snapshotter, key, err);
}
