/* LMDB-backed snapshot metadata store (see store.h): records keyed by
 * containerd's snapshot key, plus an id index and a parent->children index. */
#include "store.h"
#include "store-internal.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORE_SCHEMA   1
#define STORE_MAP_SIZE ((size_t)1 << 30) /* sparse: only used pages take disk */

struct store {
	MDB_env *env;
	MDB_dbi snaps;    /* key -> record (store-internal.h) */
	MDB_dbi ids;      /* 8-byte big-endian id -> key */
	MDB_dbi children; /* parent key -> child keys (sorted duplicates) */
	MDB_dbi meta;     /* "schema" -> u32, "next_id" -> u64, little-endian */
	size_t max_key;
};

struct store_txn {
	struct store *st;
	MDB_txn *txn;
};

/* LMDB returns errno values or its own codes (MDB_*, all negative). */
static int store_errno(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
	case MDB_DBS_FULL:
	case MDB_READERS_FULL:
	case MDB_TXN_FULL:
		return -ENOSPC;
	case MDB_BAD_VALSIZE:
		return -ENAMETOOLONG;
	case MDB_VERSION_MISMATCH:
	case MDB_INVALID:
		return -ENOTSUP;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
		return -EBADMSG;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

static void be64_put(uint8_t out[8], uint64_t v)
{
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t le_get(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void le_put(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int key_val(MDB_val *out, const struct store *st, const char *key)
{
	size_t len = key ? strlen(key) : 0;

	if (len == 0)
		return -EINVAL;
	if (len > st->max_key)
		return -ENAMETOOLONG;
	out->mv_data = (void *)key;
	out->mv_size = len;
	return 0;
}

static int meta_get_u64(uint64_t *out, struct store_txn *t, const char *name, uint64_t dflt)
{
	MDB_val k = {strlen(name), (void *)name}, v;
	int rc = mdb_get(t->txn, t->st->meta, &k, &v);

	if (rc == MDB_NOTFOUND) {
		*out = dflt;
		return 0;
	}
	if (rc != MDB_SUCCESS)
		return store_errno(rc);
	if (v.mv_size != 8)
		return -EBADMSG;
	*out = le_get(v.mv_data, 8);
	return 0;
}

static int meta_put_u64(struct store_txn *t, const char *name, uint64_t value)
{
	uint8_t buf[8];
	MDB_val k = {strlen(name), (void *)name}, v = {sizeof(buf), buf};

	le_put(buf, value, 8);
	return store_errno(mdb_put(t->txn, t->st->meta, &k, &v, 0));
}

#define OPENED_PREFIX "opened:"

static int opened_key(char *buf, size_t cap, const struct store_txn *t, const char *name)
{
	int n = snprintf(buf, cap, OPENED_PREFIX "%s", name);
	return n < 0 || (size_t)n >= cap || (size_t)n > t->st->max_key ? -ENAMETOOLONG : n;
}

int store_opened_get(char **out, struct store_txn *txn, const char *name)
{
	char key[1024];
	int n = opened_key(key, sizeof(key), txn, name);
	MDB_val k = {(size_t)n, key}, v;
	*out = NULL;
	if (n < 0)
		return n;
	int r = store_errno(mdb_get(txn->txn, txn->st->meta, &k, &v));
	if (r == 0 && !(*out = strndup(v.mv_data, v.mv_size)))
		r = -ENOMEM;
	return r;
}

int store_opened_put(struct store_txn *txn, const char *name, const char *paths)
{
	char key[1024];
	int n = opened_key(key, sizeof(key), txn, name);
	MDB_val k = {(size_t)n, key}, v = {strlen(paths), (void *)paths};
	return n < 0 ? n : store_errno(mdb_put(txn->txn, txn->st->meta, &k, &v, 0));
}

/* Opens the named databases and checks (or sets) the schema version. */
static int store_init_dbs(struct store *st)
{
	struct store_txn t = {st, NULL};
	uint64_t schema;
	int rc = mdb_txn_begin(st->env, NULL, 0, &t.txn);

	if (rc == 0)
		rc = mdb_dbi_open(t.txn, "snapshots", MDB_CREATE, &st->snaps);
	if (rc == 0)
		rc = mdb_dbi_open(t.txn, "ids", MDB_CREATE, &st->ids);
	if (rc == 0)
		rc = mdb_dbi_open(t.txn, "children", MDB_CREATE | MDB_DUPSORT, &st->children);
	if (rc == 0)
		rc = mdb_dbi_open(t.txn, "meta", MDB_CREATE, &st->meta);
	int r = store_errno(rc);
	if (r == 0)
		r = meta_get_u64(&schema, &t, "schema", 0);
	if (r == 0 && schema == 0)
		r = meta_put_u64(&t, "schema", STORE_SCHEMA);
	else if (r == 0 && schema != STORE_SCHEMA)
		r = -ENOTSUP;
	if (r < 0) {
		if (t.txn)
			mdb_txn_abort(t.txn);
		return r;
	}
	return store_errno(mdb_txn_commit(t.txn));
}

int store_open(struct store **out, const char *dir)
{
	struct store *st = calloc(1, sizeof(*st));
	int dead, r;

	if (!st)
		return -ENOMEM;
	r = store_errno(mdb_env_create(&st->env));
	if (r < 0) {
		free(st);
		return r;
	}
	r = store_errno(mdb_env_set_maxdbs(st->env, 8));
	if (r == 0)
		r = store_errno(mdb_env_set_mapsize(st->env, STORE_MAP_SIZE));
	if (r == 0)
		r = store_errno(mdb_env_set_maxreaders(st->env, 512)); /* > worker threads */
	/* NOTLS: read transactions move between gRPC worker threads. */
	if (r == 0)
		r = store_errno(mdb_env_open(st->env, dir, MDB_NOTLS, 0600));
	if (r == 0)
		r = store_errno(mdb_reader_check(st->env, &dead)); /* slots of a killed process */
	if (r == 0) {
		st->max_key = (size_t)mdb_env_get_maxkeysize(st->env);
		r = store_init_dbs(st);
	}
	if (r < 0) {
		mdb_env_close(st->env);
		free(st);
		return r;
	}
	*out = st;
	return 0;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	mdb_env_close(st->env);
	free(st);
}

size_t store_max_key(const struct store *st)
{
	return st->max_key;
}

int store_begin(struct store_txn **out, struct store *st, int write)
{
	struct store_txn *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->st = st;
	int r = store_errno(mdb_txn_begin(st->env, NULL, write ? 0 : MDB_RDONLY, &t->txn));
	if (r < 0) {
		free(t);
		return r;
	}
	*out = t;
	return 0;
}

int store_commit(struct store_txn *txn)
{
	int r = store_errno(mdb_txn_commit(txn->txn));

	free(txn);
	return r;
}

void store_abort(struct store_txn *txn)
{
	if (!txn)
		return;
	mdb_txn_abort(txn->txn);
	free(txn);
}

int store_get(struct snap_info *out, struct store_txn *txn, const char *key)
{
	MDB_val k, v;
	int r = key_val(&k, txn->st, key);

	if (r < 0)
		return r;
	r = store_errno(mdb_get(txn->txn, txn->st->snaps, &k, &v));
	if (r < 0)
		return r;
	return store_record_decode(out, key, k.mv_size, v.mv_data, v.mv_size);
}

static int children_put(struct store_txn *txn, const char *parent, const char *child, int add)
{
	MDB_val k, v;
	int r = key_val(&k, txn->st, parent);

	if (r == 0)
		r = key_val(&v, txn->st, child);
	if (r < 0)
		return r;
	if (!add) {
		r = store_errno(mdb_del(txn->txn, txn->st->children, &k, &v));
		return r == -ENOENT ? 0 : r;
	}
	r = store_errno(mdb_put(txn->txn, txn->st->children, &k, &v, MDB_NODUPDATA));
	return r == -EEXIST ? 0 : r;
}

int store_put(struct store_txn *txn, const struct snap_info *info, int create)
{
	MDB_val k, v, idk;
	uint8_t idbuf[8], *rec = NULL;
	size_t len;
	int r = key_val(&k, txn->st, info->name);

	if (r == 0 && info->id == 0)
		r = -EINVAL;
	if (r == 0)
		r = store_record_encode(&rec, &len, info);
	if (r < 0)
		return r;
	v.mv_data = rec;
	v.mv_size = len;
	r = store_errno(mdb_put(txn->txn, txn->st->snaps, &k, &v, create ? MDB_NOOVERWRITE : 0));
	free(rec);
	if (r < 0)
		return r;
	be64_put(idbuf, info->id);
	idk.mv_data = idbuf;
	idk.mv_size = sizeof(idbuf);
	r = store_errno(mdb_put(txn->txn, txn->st->ids, &idk, &k, 0));
	if (r == 0 && info->parent && info->parent[0])
		r = children_put(txn, info->parent, info->name, 1);
	return r;
}

int store_del(struct store_txn *txn, const char *key)
{
	struct snap_info info;
	MDB_val k, idk;
	uint8_t idbuf[8];
	int r = store_get(&info, txn, key);

	if (r < 0)
		return r;
	r = key_val(&k, txn->st, key);
	if (r == 0)
		r = store_errno(mdb_del(txn->txn, txn->st->snaps, &k, NULL));
	if (r == 0) {
		be64_put(idbuf, info.id);
		idk.mv_data = idbuf;
		idk.mv_size = sizeof(idbuf);
		r = store_errno(mdb_del(txn->txn, txn->st->ids, &idk, NULL));
		if (r == -ENOENT)
			r = 0;
	}
	if (r == 0 && info.parent[0])
		r = children_put(txn, info.parent, key, 0);
	snap_info_clear(&info);
	return r;
}

int store_has_children(struct store_txn *txn, const char *key)
{
	MDB_val k, v;
	int r = key_val(&k, txn->st, key);

	if (r < 0)
		return r;
	r = store_errno(mdb_get(txn->txn, txn->st->children, &k, &v));
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

int store_id_exists(struct store_txn *txn, uint64_t id)
{
	uint8_t idbuf[8];
	MDB_val k = {sizeof(idbuf), idbuf}, v;

	be64_put(idbuf, id);
	int r = store_errno(mdb_get(txn->txn, txn->st->ids, &k, &v));
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

int store_peek_id(uint64_t *out, struct store_txn *txn)
{
	return meta_get_u64(out, txn, "next_id", 1);
}

int store_alloc_id(uint64_t *out, struct store_txn *txn)
{
	uint64_t id;
	int r = store_peek_id(&id, txn);

	if (r == 0 && (id == 0 || id == UINT64_MAX))
		r = -EOVERFLOW;
	if (r == 0)
		r = meta_put_u64(txn, "next_id", id + 1);
	if (r == 0)
		*out = id;
	return r;
}

/* Positions cur on the first key after `after` (or the first key). */
static int scan_first(MDB_cursor *cur, const struct store *st, const char *after, MDB_val *k,
                      MDB_val *v)
{
	if (!after || !after[0])
		return mdb_cursor_get(cur, k, v, MDB_FIRST);
	int r = key_val(k, st, after);
	if (r < 0)
		return MDB_NOTFOUND; /* no stored key equals an invalid one */
	size_t len = k->mv_size;
	int rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
	if (rc == 0 && k->mv_size == len && memcmp(k->mv_data, after, len) == 0)
		rc = mdb_cursor_get(cur, k, v, MDB_NEXT);
	return rc;
}

int store_scan(struct store_txn *txn, const char *after, store_visit_fn fn, void *ctx)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int r = store_errno(mdb_cursor_open(txn->txn, txn->st->snaps, &cur));

	if (r < 0)
		return r;
	int rc = scan_first(cur, txn->st, after, &k, &v);
	while (rc == 0) {
		struct snap_info info;
		r = store_record_decode(&info, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
		if (r < 0)
			break;
		r = fn(ctx, &info);
		snap_info_clear(&info);
		if (r != 0)
			break;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (r == 0 && rc != MDB_NOTFOUND)
		r = store_errno(rc);
	return r < 0 ? r : 0;
}
