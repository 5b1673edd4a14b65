/* Writer models (docs/FORMAT.md "Predicted entries"): the tar header bytes
 * a known writer gives an entry of the target tree. Fields follow the
 * ustar layout below; what differs between writers is the magic, the
 * device fields of other entries, how long or non-ASCII names and xattrs
 * travel (GNU ././@LongLink headers, or PAX records in Go's or Python's
 * order and naming) and how a name is cut to its 100-byte field. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dimg/tar.h"
#include "tarmodel.h"

#define TH_NAME_LEN 100u /* the name and linkname fields */

/* ---- fields ---- */

/* Octal, width-1 digits and a NUL. A value that does not fit: GNU writes
 * base-256 (non-negative values), the others a zero. */
static void put_num(uint8_t *f, size_t w, int64_t v, int gnu)
{
	uint64_t u = (uint64_t)v;
	if (v < 0 || (u >> ((w - 1) * 3)) != 0) {
		if (!gnu || v < 0)
			u = 0;
		else {
			for (size_t i = w; i-- > 1; u >>= 8)
				f[i] = (uint8_t)u;
			f[0] = 0x80;
			return;
		}
	}
	f[w - 1] = 0;
	for (size_t i = w - 1; i-- > 0; u >>= 3)
		f[i] = (uint8_t)('0' + (u & 7));
}

static void put_bytes(uint8_t *f, size_t w, const void *s, size_t n)
{
	memcpy(f, s, n < w ? n : w);
}

void tarmodel_checksum(uint8_t *hdr)
{
	unsigned sum = 0;
	memset(hdr + DIMG_TAR_CHKSUM, ' ', 8);
	for (size_t i = 0; i < TARMODEL_BLOCK; i++)
		sum += hdr[i];
	put_num(hdr + DIMG_TAR_CHKSUM, 7, sum, 0);
	hdr[DIMG_TAR_CHKSUM + 7] = ' ';
}

static int is_ascii(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 0x80)
			return 0;
	return 1;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if none:
 * no overlong forms, no surrogates, nothing past U+10FFFF. */
static size_t utf8_len(const uint8_t *s, size_t n)
{
	size_t k;
	uint32_t c;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] < 0xe0)
		k = 2, c = s[0] & 0x1fu;
	else if (s[0] >= 0xe0 && s[0] < 0xf0)
		k = 3, c = s[0] & 0x0fu;
	else if (s[0] >= 0xf0 && s[0] < 0xf5)
		k = 4, c = s[0] & 0x07u;
	else
		return 0;
	if (k > n)
		return 0;
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3fu);
	}
	if (k == 3 && (c < 0x800 || (c >= 0xd800 && c < 0xe000)))
		return 0;
	if (k == 4 && (c < 0x10000 || c > 0x10ffff))
		return 0;
	return k;
}

static int is_utf8(const uint8_t *s, size_t n)
{
	for (size_t i = 0, k; i < n; i += k)
		if (!(k = utf8_len(s + i, n - i)))
			return 0;
	return 1;
}

/* A name into its 100-byte field as the writer cuts it. */
static void put_name(uint8_t *f, const uint8_t *s, size_t n, int writer)
{
	size_t o = 0;
	if (writer == TARMODEL_GNU) {
		put_bytes(f, TH_NAME_LEN, s, n);
		return;
	}
	if (writer == TARMODEL_PYTHON) {
		/* encoded as ASCII, each other character (or undecodable byte) '?' */
		for (size_t i = 0; i < n && o < TH_NAME_LEN; o++) {
			size_t k = utf8_len(s + i, n - i);
			f[o] = k == 1 ? s[i] : '?';
			i += k ? k : 1;
		}
		return;
	}
	/* Go: non-ASCII bytes dropped; a cut that ends in '/' is cut before
	 * the run of slashes it ends in */
	for (size_t i = 0; i < n; i++)
		if (s[i] && s[i] < 0x80 && o++ < TH_NAME_LEN)
			f[o - 1] = s[i];
	if (o > TH_NAME_LEN && f[TH_NAME_LEN - 1] == '/') {
		size_t k = TH_NAME_LEN;
		while (k > 0 && f[k - 1] == '/')
			k--;
		f[k] = 0;
	}
}

/* ---- the entry at hand ---- */

struct tm_view {
	const struct dimg_entry *e, *meta; /* meta: the group leader of a hardlink */
	size_t leader;                     /* group leader index, or SIZE_MAX */
	char type;
	uint64_t size;
	const uint8_t *link; /* symlink target or hardlink name, else NULL */
	size_t llen;
};

static int name_of(const struct tarmodel *m, size_t idx, struct dimg_buf *b)
{
	const struct dimg_entry *e = &m->tree->v[idx];
	b->len = 0;
	if (!e->path[0])
		return m->p.plen ? dimg_buf_append(b, m->p.prefix, m->p.plen)
		                 : dimg_buf_append(b, "./", 2);
	int r = dimg_buf_append(b, m->p.prefix, m->p.plen);
	if (r == 0)
		r = dimg_buf_append(b, e->path, strlen(e->path));
	if (r == 0 && e->type == DIMG_TYPE_DIR)
		r = dimg_buf_append(b, "/", 1);
	return r;
}

static char type_char(uint8_t t)
{
	static const char map[] = {0, '5', '0', '2', '1', '3', '4', '6'};
	return t < sizeof(map) ? map[t] : 0;
}

static int view_of(struct tarmodel *m, size_t idx, struct tm_view *v)
{
	const struct dimg_entry *e = &m->tree->v[idx];
	*v = (struct tm_view){.e = e, .meta = e, .leader = SIZE_MAX, .type = type_char(e->type)};
	if (e->type == DIMG_TYPE_SYMLINK) {
		v->link = (const uint8_t *)e->link;
		v->llen = e->link ? strlen(e->link) : 0;
	}
	if (e->type != DIMG_TYPE_REG && e->type != DIMG_TYPE_HARDLINK)
		return 0;
	ssize_t l = e->type == DIMG_TYPE_REG ? (ssize_t)idx : dimg_tree_index(m->tree, e->link);
	if (l < 0 || m->tree->v[l].type != DIMG_TYPE_REG)
		return -EBADMSG;
	v->leader = (size_t)l;
	v->meta = &m->tree->v[l];
	if (!m->first[l]) {
		v->type = '0';
		v->size = v->meta->size;
		return 0;
	}
	v->type = '1';
	int r = name_of(m, m->first[l] - 1, &m->link);
	v->link = m->link.data;
	v->llen = m->link.len;
	return r;
}

static const uint8_t *owner_name(const struct tarmodel_owner *o, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (o[i].id == id)
			return o[i].name;
	return NULL;
}

static void learn(struct tarmodel_owner *o, size_t *n, uint32_t id, const uint8_t *name)
{
	for (size_t i = 0; i < *n; i++)
		if (o[i].id == id) {
			memcpy(o[i].name, name, 32);
			return;
		}
	if (*n < TARMODEL_OWNERS) {
		o[*n].id = id;
		memcpy(o[(*n)++].name, name, 32);
	}
}

static void put_owner_names(const struct tarmodel *m, uint8_t *h, uint32_t uid, uint32_t gid)
{
	const uint8_t *u = owner_name(m->users, m->nusers, uid);
	const uint8_t *g = owner_name(m->groups, m->ngroups, gid);
	if (u)
		memcpy(h + DIMG_TAR_UNAME, u, 32);
	if (g)
		memcpy(h + DIMG_TAR_GNAME, g, 32);
}

static void put_magic(uint8_t *h, int writer)
{
	memcpy(h + DIMG_TAR_MAGIC, writer == TARMODEL_GNU ? "ustar  " : "ustar\00000", 8);
}

/* ---- extension headers ---- */

/* A block for a header of type t and data size n named name. */
static int ext_block(struct tarmodel *m, struct dimg_buf *out, const void *name, size_t nlen,
                     char t, size_t n)
{
	int r = dimg_buf_reserve(out, TARMODEL_BLOCK);
	if (r < 0)
		return r;
	uint8_t *h = out->data + out->len;
	int gnu = m->p.writer == TARMODEL_GNU;
	memset(h, 0, TARMODEL_BLOCK);
	put_bytes(h + DIMG_TAR_NAME, TH_NAME_LEN, name, nlen);
	put_num(h + DIMG_TAR_MODE, 8, gnu ? 0644 : 0, gnu);
	put_num(h + DIMG_TAR_UID, 8, 0, gnu);
	put_num(h + DIMG_TAR_GID, 8, 0, gnu);
	put_num(h + DIMG_TAR_SIZE, 12, (int64_t)n, gnu);
	put_num(h + DIMG_TAR_MTIME, 12, 0, gnu);
	h[DIMG_TAR_TYPE] = (uint8_t)t;
	put_magic(h, m->p.writer);
	if (gnu)
		put_owner_names(m, h, 0, 0);
	tarmodel_checksum(h);
	out->len += TARMODEL_BLOCK;
	return 0;
}

/* The data of an extension header, zero-padded to a block. */
static int ext_data(struct dimg_buf *out, const void *p, size_t n, int nul)
{
	static const uint8_t zero[TARMODEL_BLOCK];
	size_t all = n + (size_t)nul;
	int r = dimg_buf_append(out, p, n);
	if (r == 0 && nul)
		r = dimg_buf_append(out, zero, 1);
	if (r == 0 && all % TARMODEL_BLOCK)
		r = dimg_buf_append(out, zero, TARMODEL_BLOCK - all % TARMODEL_BLOCK);
	return r;
}

static int fits(size_t have, size_t add)
{
	return have <= TARMODEL_UNIT_MAX && add <= TARMODEL_UNIT_MAX - have;
}

static int gnu_long(struct tarmodel *m, struct dimg_buf *out, char t, const uint8_t *s, size_t n)
{
	if (!fits(out->len, 2 * TARMODEL_BLOCK + n + 1))
		return -E2BIG;
	int r = ext_block(m, out, "././@LongLink", 13, t, n + 1);
	return r < 0 ? r : ext_data(out, s, n, 1);
}

static int gnu_ext(struct tarmodel *m, const struct tm_view *v, struct dimg_buf *out)
{
	int r = 0;
	if (v->link && v->llen > TH_NAME_LEN)
		r = gnu_long(m, out, 'K', v->link, v->llen);
	if (r == 0 && m->name.len > TH_NAME_LEN)
		r = gnu_long(m, out, 'L', m->name.data, m->name.len);
	return r;
}

static size_t digits(size_t x)
{
	size_t d = 1;
	for (; x >= 10; x /= 10)
		d++;
	return d;
}

/* One PAX record "%d %s%s=%s\n", the length counting its own digits. */
static int pax_rec(struct dimg_buf *b, const char *k1, const char *k2, const void *v, size_t vn)
{
	char num[24];
	size_t len = strlen(k1) + strlen(k2) + vn + 3;
	len += digits(len + digits(len));
	if (!fits(b->len, len))
		return -E2BIG;
	snprintf(num, sizeof(num), "%zu ", len);
	int r = dimg_buf_append(b, num, strlen(num));
	if (r == 0)
		r = dimg_buf_append(b, k1, strlen(k1));
	if (r == 0)
		r = dimg_buf_append(b, k2, strlen(k2));
	if (r == 0)
		r = dimg_buf_append(b, "=", 1);
	if (r == 0)
		r = dimg_buf_append(b, v, vn);
	return r < 0 ? r : dimg_buf_append(b, "\n", 1);
}

static int pax_num(struct dimg_buf *b, const char *k, uint64_t v, uint64_t limit)
{
	char s[24];
	if (v < limit)
		return 0;
	snprintf(s, sizeof(s), "%llu", (unsigned long long)v);
	return pax_rec(b, k, "", s, strlen(s));
}

static int pax_xattrs(struct dimg_buf *b, const struct dimg_entry *e)
{
	int r = 0;
	for (uint32_t i = 0; r == 0 && i < e->nxattrs; i++)
		r = pax_rec(b, "SCHILY.xattr.", e->xattrs[i].name, e->xattrs[i].value,
		            e->xattrs[i].value_len);
	return r;
}

#define OCT7  (1ull << 21)
#define OCT11 (1ull << 33)

/* Go: keys sorted (the xattrs' "SCHILY." sorts before the lower-case ones). */
static int go_records(struct tarmodel *m, const struct tm_view *v, struct dimg_buf *b)
{
	const uint8_t *nm = m->name.data;
	size_t nn = m->name.len;
	int r = pax_xattrs(b, v->meta);
	if (r == 0)
		r = pax_num(b, "gid", v->meta->gid, OCT7);
	if (r == 0 && v->link && (v->llen > TH_NAME_LEN || !is_ascii(v->link, v->llen)))
		r = pax_rec(b, "linkpath", "", v->link, v->llen);
	if (r == 0 && (nn > TH_NAME_LEN || !is_ascii(nm, nn)))
		r = pax_rec(b, "path", "", nm, nn);
	if (r == 0)
		r = pax_num(b, "size", v->size, OCT11);
	return r < 0 ? r : pax_num(b, "uid", v->meta->uid, OCT7);
}

/* Python's tarfile: the caller's records first (mtime with nanoseconds,
 * then the xattrs, as tests/tools/mkoci.py gives them), then path and
 * linkpath, then numbers; hdrcharset=BINARY first when a value is not
 * UTF-8. */
static int py_records(struct tarmodel *m, const struct tm_view *v, struct dimg_buf *b)
{
	const struct dimg_entry *x = v->meta;
	const uint8_t *nm = m->name.data;
	size_t nn = m->name.len;
	int path = nn > TH_NAME_LEN || !is_ascii(nm, nn);
	int link = v->link && (v->llen > TH_NAME_LEN || !is_ascii(v->link, v->llen));
	int bin = (path && !is_utf8(nm, nn)) || (link && !is_utf8(v->link, v->llen));
	char t[40];
	int r = 0;
	for (uint32_t i = 0; i < x->nxattrs; i++)
		bin |= !is_utf8(x->xattrs[i].value, x->xattrs[i].value_len);
	if (bin)
		r = pax_rec(b, "hdrcharset", "", "BINARY", 6);
	if (r == 0 && x->mtime_nsec) {
		snprintf(t, sizeof(t), "%lld.%09u", (long long)x->mtime_sec,
		         (unsigned)x->mtime_nsec);
		r = pax_rec(b, "mtime", "", t, strlen(t));
	}
	if (r == 0)
		r = pax_xattrs(b, x);
	if (r == 0 && path)
		r = pax_rec(b, "path", "", nm, nn);
	if (r == 0 && link)
		r = pax_rec(b, "linkpath", "", v->link, v->llen);
	if (r == 0)
		r = pax_num(b, "uid", x->uid, OCT7);
	if (r == 0)
		r = pax_num(b, "gid", x->gid, OCT7);
	return r < 0 ? r : pax_num(b, "size", v->size, OCT11);
}

/* Go's path.Clean of s (n bytes) into b: no empty or "." elements, ".."
 * removing the element before it (or kept when there is none). */
static int go_clean(struct dimg_buf *b, const uint8_t *s, size_t n)
{
	int rooted = n && s[0] == '/', r = 0;
	size_t keep = rooted ? 1 : 0, dotdot = keep;
	b->len = 0;
	if (rooted)
		r = dimg_buf_append(b, "/", 1);
	for (size_t i = 0; r == 0 && i < n;) {
		size_t j = i;
		while (j < n && s[j] != '/')
			j++;
		if (j - i == 2 && s[i] == '.' && s[i + 1] == '.') {
			if (b->len > dotdot) {
				b->len--;
				while (b->len > dotdot && b->data[b->len] != '/')
					b->len--;
			} else if (!rooted) {
				r = dimg_buf_append(b, b->len ? "/.." : "..", b->len ? 3 : 2);
				dotdot = b->len;
			}
		} else if (j > i && !(j - i == 1 && s[i] == '.')) {
			if (b->len > keep)
				r = dimg_buf_append(b, "/", 1);
			if (r == 0)
				r = dimg_buf_append(b, s + i, j - i);
		}
		i = j + 1;
	}
	if (r == 0 && b->len == 0)
		r = dimg_buf_append(b, ".", 1);
	return r;
}

/* Go names the header "DIR/PaxHeaders.0/FILE" (path.Split, path.Join). */
static int go_pax_name(struct tarmodel *m, struct dimg_buf *tmp)
{
	const uint8_t *s = m->name.data;
	size_t n = m->name.len, cut = n;
	while (cut > 0 && s[cut - 1] != '/')
		cut--;
	struct dimg_buf j = {0};
	int r = dimg_buf_append(&j, s, cut);
	if (r == 0)
		r = dimg_buf_append(&j, cut ? "/PaxHeaders.0" : "PaxHeaders.0", cut ? 13 : 12);
	if (r == 0 && cut < n && (r = dimg_buf_append(&j, "/", 1)) == 0)
		r = dimg_buf_append(&j, s + cut, n - cut);
	if (r == 0)
		r = go_clean(tmp, j.data, j.len);
	dimg_buf_free(&j);
	if (r < 0)
		return r;
	size_t o = 0;
	for (size_t i = 0; i < tmp->len; i++)
		if (tmp->data[i] && tmp->data[i] < 0x80)
			tmp->data[o++] = tmp->data[i];
	if (o > TH_NAME_LEN)
		o = TH_NAME_LEN;
	while (o > 0 && tmp->data[o - 1] == '/')
		o--;
	tmp->len = o;
	return 0;
}

/* Go writes USTAR when it can (a PAX layer too): a long ASCII name is cut
 * at a '/' into prefix (155) and name (100) when that is all PAX would
 * carry; m->split then says where. */
static int go_split(struct tarmodel *m, const struct tm_view *v)
{
	const uint8_t *s = m->name.data;
	size_t n = m->name.len, len = n, i;
	if (n <= TH_NAME_LEN || !is_ascii(s, n) || v->meta->nxattrs ||
	    (v->link && (v->llen > TH_NAME_LEN || !is_ascii(v->link, v->llen))) ||
	    v->meta->uid >= OCT7 || v->meta->gid >= OCT7 || v->size >= OCT11)
		return 0;
	if (len > 156)
		len = 156;
	else if (s[len - 1] == '/')
		len--;
	for (i = len; i > 0 && s[i - 1] != '/';)
		i--;
	if (i < 2 || n - i > TH_NAME_LEN || n == i || i - 1 > 155)
		return 0;
	m->split = i - 1;
	return 1;
}

static int pax_ext(struct tarmodel *m, const struct tm_view *v, struct dimg_buf *out)
{
	struct dimg_buf *rec = &m->pax, hname = {0};
	rec->len = 0;
	if (m->p.writer == TARMODEL_GO && go_split(m, v))
		return 0;
	int r = m->p.writer == TARMODEL_GO ? go_records(m, v, rec) : py_records(m, v, rec);
	if (r < 0 || rec->len == 0)
		return r;
	if (!fits(out->len, 2 * TARMODEL_BLOCK + rec->len))
		return -E2BIG;
	if (m->p.writer == TARMODEL_GO)
		r = go_pax_name(m, &hname);
	else
		r = dimg_buf_append(&hname, "././@PaxHeader", 14);
	if (r == 0)
		r = ext_block(m, out, hname.data, hname.len, 'x', rec->len);
	if (r == 0)
		r = ext_data(out, rec->data, rec->len, 0);
	dimg_buf_free(&hname);
	return r;
}

/* ---- the main header ---- */

static int main_block(struct tarmodel *m, const struct tm_view *v, struct dimg_buf *out)
{
	const struct dimg_entry *x = v->meta;
	int gnu = m->p.writer == TARMODEL_GNU, r = dimg_buf_reserve(out, TARMODEL_BLOCK);
	if (r < 0)
		return r;
	uint8_t *h = out->data + out->len;
	memset(h, 0, TARMODEL_BLOCK);
	if (m->split) {
		put_bytes(h + DIMG_TAR_PREFIX, 155, m->name.data, m->split);
		put_bytes(h + DIMG_TAR_NAME, TH_NAME_LEN, m->name.data + m->split + 1,
		          m->name.len - m->split - 1);
	} else {
		put_name(h + DIMG_TAR_NAME, m->name.data, m->name.len, m->p.writer);
	}
	put_num(h + DIMG_TAR_MODE, 8, x->mode & 07777, gnu);
	put_num(h + DIMG_TAR_UID, 8, x->uid, gnu);
	put_num(h + DIMG_TAR_GID, 8, x->gid, gnu);
	put_num(h + DIMG_TAR_SIZE, 12, (int64_t)v->size, gnu);
	put_num(h + DIMG_TAR_MTIME, 12, x->mtime_sec, gnu);
	h[DIMG_TAR_TYPE] = (uint8_t)v->type;
	if (v->link)
		put_name(h + DIMG_TAR_LINKNAME, v->link, v->llen, m->p.writer);
	put_magic(h, m->p.writer);
	put_owner_names(m, h, x->uid, x->gid);
	if (v->type == '3' || v->type == '4') {
		put_num(h + DIMG_TAR_DEVMAJOR, 8, x->rdev_major, gnu);
		put_num(h + DIMG_TAR_DEVMINOR, 8, x->rdev_minor, gnu);
	} else if (m->p.writer == TARMODEL_GO) {
		put_num(h + DIMG_TAR_DEVMAJOR, 8, 0, 0);
		put_num(h + DIMG_TAR_DEVMINOR, 8, 0, 0);
	}
	tarmodel_checksum(h);
	out->len += TARMODEL_BLOCK;
	return 0;
}

int tarmodel_predict(struct tarmodel *m, size_t idx, struct dimg_buf *out, struct tarmodel_pred *pr)
{
	struct tm_view v;
	int r = view_of(m, idx, &v);
	m->split = 0;
	if (r == 0)
		r = name_of(m, idx, &m->name);
	if (r < 0)
		return r;
	if (m->p.writer == TARMODEL_GNU)
		r = gnu_ext(m, &v, out);
	else
		r = pax_ext(m, &v, out);
	if (r == 0 && !fits(out->len, TARMODEL_BLOCK))
		r = -E2BIG;
	if (r == 0)
		r = main_block(m, &v, out);
	*pr = (struct tarmodel_pred){
	    .has_content = v.type == '0' && v.size > 0, .size = v.size, .sha256 = v.meta->sha256};
	return r;
}

/* ---- state ---- */

static size_t position_of(const struct tarmodel *m, size_t idx)
{
	return m->p.order == TARMODEL_ORDER_DEPTH ? m->dfs->pos[idx] : idx;
}

void tarmodel_commit(struct tarmodel *m, size_t idx, const uint8_t *hdr)
{
	const struct dimg_entry *e = &m->tree->v[idx], *meta = e;
	m->next = position_of(m, idx) + 1;
	if (e->type == DIMG_TYPE_REG || e->type == DIMG_TYPE_HARDLINK) {
		ssize_t l =
		    e->type == DIMG_TYPE_REG ? (ssize_t)idx : dimg_tree_index(m->tree, e->link);
		if (l < 0 || m->tree->v[l].type != DIMG_TYPE_REG)
			return; /* never predicted: view_of refuses it */
		meta = &m->tree->v[l];
		if (!m->first[l])
			m->first[l] = (uint32_t)idx + 1;
	}
	learn(m->users, &m->nusers, meta->uid, hdr + DIMG_TAR_UNAME);
	learn(m->groups, &m->ngroups, meta->gid, hdr + DIMG_TAR_GNAME);
}

int tarmodel_locate(const struct tarmodel *m, int64_t skip, size_t *idx)
{
	uint64_t back = skip < 0 ? (uint64_t)(-(skip + 1)) + 1 : 0;
	uint64_t ahead = skip < 0 ? 0 : (uint64_t)skip;
	if (back > m->next)
		return -EBADMSG;
	uint64_t base = m->next - back;
	if (base >= m->tree->n || ahead >= m->tree->n - base)
		return -EBADMSG;
	size_t pos = (size_t)(base + ahead);
	*idx = m->p.order == TARMODEL_ORDER_DEPTH ? m->dfs->idx[pos] : pos;
	return 0;
}

int64_t tarmodel_skip_to(const struct tarmodel *m, size_t idx)
{
	return (int64_t)position_of(m, idx) - (int64_t)m->next;
}

int tarmodel_init(struct tarmodel *m, const struct dimg_tree *t, const struct tarmodel_dfs *dfs)
{
	memset(m, 0, sizeof(*m));
	m->tree = t;
	m->dfs = dfs;
	if (t->n > UINT32_MAX - 1)
		return -EOVERFLOW;
	m->first = calloc(t->n ? t->n : 1, sizeof(*m->first));
	return m->first ? 0 : -ENOMEM;
}

void tarmodel_free(struct tarmodel *m)
{
	if (!m)
		return;
	free(m->first);
	dimg_buf_free(&m->pax);
	dimg_buf_free(&m->name);
	dimg_buf_free(&m->link);
	m->first = NULL;
}

int tarmodel_params_check(const struct tarmodel *m, const struct tarmodel_params *p)
{
	if (p->writer < TARMODEL_GNU || p->writer > TARMODEL_PYTHON ||
	    p->order > TARMODEL_ORDER_DEPTH || p->plen > TARMODEL_PREFIX_MAX)
		return -EBADMSG;
	if (p->order == TARMODEL_ORDER_DEPTH && !m->dfs)
		return -EBADMSG;
	return 0;
}

void tarmodel_reset(struct tarmodel *m, const struct tarmodel_params *p)
{
	m->p = *p;
	m->next = 0;
	m->nusers = m->ngroups = 0;
	memset(m->first, 0, (m->tree->n ? m->tree->n : 1) * sizeof(*m->first));
}

/* ---- depth-first order ---- */

static int rank(uint8_t c)
{
	return c == 0 ? 0 : c == '/' ? 1 : c + 1;
}

static int dfs_cmp(const void *a, const void *b)
{
	const uint8_t *x = (const uint8_t *)(*(const struct dimg_entry *const *)a)->path;
	const uint8_t *y = (const uint8_t *)(*(const struct dimg_entry *const *)b)->path;
	while (*x && *x == *y)
		x++, y++;
	return rank(*x) - rank(*y);
}

int tarmodel_dfs_build(struct tarmodel_dfs *d, const struct dimg_tree *t)
{
	size_t n = t->n ? t->n : 1;
	const struct dimg_entry **v = malloc(n * sizeof(*v));
	d->pos = malloc(n * sizeof(*d->pos));
	d->idx = malloc(n * sizeof(*d->idx));
	if (!v || !d->pos || !d->idx) {
		free(v);
		tarmodel_dfs_free(d);
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->n; i++)
		v[i] = &t->v[i];
	qsort(v, t->n, sizeof(*v), dfs_cmp);
	for (size_t p = 0; p < t->n; p++) {
		d->idx[p] = (size_t)(v[p] - t->v);
		d->pos[d->idx[p]] = p;
	}
	free(v);
	return 0;
}

void tarmodel_dfs_free(struct tarmodel_dfs *d)
{
	free(d->pos);
	free(d->idx);
	d->pos = d->idx = NULL;
}
