/* Tar headers read one by one (ustar, pax 'x' records, GNU 'L'/'K'
 * long names), never the data: a member index with data offsets. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dimg/tar.h"
#include "tarindex.h"

/* What pax or GNU headers say about the next member. */
struct xtar_next {
	char *path, *link;
	uint64_t size;
	int has_size;
};

struct xtar_scan {
	struct xtar *t;
	size_t cap;
	xtar_pread_fn rd;
	void *ctx;
	uint64_t total, off;
	struct xtar_next nx;
};

void xtar_free(struct xtar *t)
{
	for (size_t i = 0; t && i < t->n; i++) {
		free(t->m[i].name);
		free(t->m[i].link);
	}
	if (t) {
		free(t->m);
		t->m = NULL;
		t->n = 0;
	}
}

static void xtar_next_clear(struct xtar_next *nx)
{
	free(nx->path);
	free(nx->link);
	memset(nx, 0, sizeof(*nx));
}

int xtar_norm(char *s)
{
	char *w = s, *r = s;
	if (s[0] == '/')
		return -EBADMSG;
	while (*r) {
		size_t len = strcspn(r, "/");
		if (len == 2 && r[0] == '.' && r[1] == '.')
			return -EBADMSG;
		if (len && !(len == 1 && r[0] == '.')) {
			if (w != s)
				*w++ = '/';
			memmove(w, r, len);
			w += len;
		}
		r += len + (r[len] == '/');
	}
	*w = '\0';
	return w == s ? -EBADMSG : 0;
}

static int xtar_zero(const uint8_t *h)
{
	for (size_t i = 0; i < XTAR_BLOCK; i++)
		if (h[i])
			return 0;
	return 1;
}

/* Reads a pax or GNU header's data (at most max bytes) NUL-terminated. */
static int xtar_read_data(struct xtar_scan *s, uint64_t size, size_t max, char **out)
{
	*out = NULL;
	if (size > max)
		return -EBADMSG;
	char *p = malloc((size_t)size + 1);
	if (!p)
		return -ENOMEM;
	int r = size ? s->rd(s->ctx, p, (size_t)size, s->off + XTAR_BLOCK) : 0;
	if (r < 0) {
		free(p);
		return r == -EIO ? -EBADMSG : r;
	}
	p[size] = '\0';
	*out = p;
	return 0;
}

static int xtar_set_str(char **dst, const char *v, size_t n)
{
	if (memchr(v, '\0', n) || n >= XTAR_NAME_MAX)
		return -EBADMSG;
	free(*dst);
	*dst = strndup(v, n);
	return *dst ? 0 : -ENOMEM;
}

/* One "LEN KEY=VALUE\n" record at p (n bytes left); *used its length. */
static int xtar_pax_record(struct xtar_next *nx, const char *p, size_t n, size_t *used)
{
	char *end;
	if (!(p[0] >= '1' && p[0] <= '9'))
		return -EBADMSG;
	unsigned long long len = strtoull(p, &end, 10);
	if (end == p || *end != ' ' || len > n || len < (size_t)(end - p) + 3 || p[len - 1] != '\n')
		return -EBADMSG;
	const char *key = end + 1, *eq = memchr(key, '=', (size_t)(p + len - 1 - key));
	if (!eq)
		return -EBADMSG;
	size_t kl = (size_t)(eq - key), vl = (size_t)(p + len - 1 - (eq + 1));
	*used = (size_t)len;
	if (kl == 4 && memcmp(key, "path", 4) == 0)
		return xtar_set_str(&nx->path, eq + 1, vl);
	if (kl == 8 && memcmp(key, "linkpath", 8) == 0)
		return xtar_set_str(&nx->link, eq + 1, vl);
	if (kl == 4 && memcmp(key, "size", 4) == 0) {
		char num[24];
		if (vl == 0 || vl >= sizeof(num))
			return -EBADMSG;
		memcpy(num, eq + 1, vl);
		num[vl] = '\0';
		nx->size = strtoull(num, &end, 10);
		nx->has_size = 1;
		return *end || num[0] == '-' ? -EBADMSG : 0;
	}
	if (kl >= 13 && memcmp(key, "GNU.sparse.", 11) == 0)
		return -ENOTSUP;
	return 0;
}

static int xtar_pax(struct xtar_scan *s, uint64_t size)
{
	char *p;
	int r = xtar_read_data(s, size, XTAR_PAX_MAX, &p);
	for (size_t off = 0, used; r == 0 && off < size; off += used)
		r = xtar_pax_record(&s->nx, p + off, (size_t)size - off, &used);
	free(p);
	return r;
}

static int xtar_gnu_long(struct xtar_scan *s, uint64_t size, char **dst)
{
	char *p;
	int r = xtar_read_data(s, size, XTAR_NAME_MAX, &p);
	if (r == 0)
		r = xtar_set_str(dst, p, strlen(p));
	free(p);
	return r;
}

/* The member's name from its header: ustar's prefix/name or the name. */
static int xtar_header_name(const uint8_t *h, char **out)
{
	char name[101], prefix[156];
	memcpy(name, h, 100);
	name[100] = '\0';
	prefix[0] = '\0';
	if (memcmp(h + DIMG_TAR_MAGIC, "ustar\0", 6) == 0) {
		memcpy(prefix, h + DIMG_TAR_PREFIX, 155);
		prefix[155] = '\0';
	}
	if (asprintf(out, "%s%s%s", prefix, prefix[0] ? "/" : "", name) < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int xtar_grow(struct xtar_scan *s)
{
	if (s->t->n >= XTAR_MEMBERS_MAX)
		return -EOVERFLOW;
	if (s->t->n < s->cap)
		return 0;
	size_t nc = s->cap ? s->cap * 2 : 64;
	struct xtar_member *v = realloc(s->t->m, nc * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->t->m = v;
	s->cap = nc;
	return 0;
}

/* A symlink's target is relative to its directory, a hardlink's (and an
 * absolute one's) to the archive's root. */
static int xtar_link_target(char **out, const char *name, const char *target, int symlink)
{
	const char *slash = strrchr(name, '/');
	int dl = symlink && slash && target[0] != '/' ? (int)(slash - name) + 1 : 0;
	target += strspn(target, "/");
	if (asprintf(out, "%.*s%s", dl, name, target) < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return xtar_norm(*out);
}

static int xtar_add(struct xtar_scan *s, const uint8_t *h, uint64_t size)
{
	char type = (char)h[DIMG_TAR_TYPE], lk[101];
	struct xtar_member m = {.off = s->off + XTAR_BLOCK, .size = size};
	int link = type == '1' || type == '2';
	int r = 0;
	if (s->nx.path)
		m.name = strdup(s->nx.path);
	else
		r = xtar_header_name(h, &m.name);
	if (r == 0 && !m.name)
		r = -ENOMEM;
	if (r == 0 && (r = xtar_norm(m.name)) == 0 && link) {
		memcpy(lk, h + DIMG_TAR_LINKNAME, 100);
		lk[100] = '\0';
		r = xtar_link_target(&m.link, m.name, s->nx.link ? s->nx.link : lk, type == '2');
		m.size = 0;
	}
	if (r == 0)
		r = xtar_grow(s);
	if (r < 0) {
		free(m.name);
		free(m.link);
		return r;
	}
	s->t->m[s->t->n++] = m;
	return 0;
}

/* One header at s->off; 1 at the end of the archive. */
static int xtar_step(struct xtar_scan *s)
{
	uint8_t h[XTAR_BLOCK];
	uint64_t size;
	if (s->off == s->total)
		return 1; /* no end blocks: tolerated */
	int r = s->rd(s->ctx, h, sizeof(h), s->off);
	if (r < 0)
		return r == -EIO ? -EBADMSG : r;
	if (xtar_zero(h))
		return 1;
	if (!dimg_tar_checksum_ok(h) || dimg_tar_num(h + DIMG_TAR_SIZE, 12, &size) < 0)
		return -EBADMSG;
	char type = (char)h[DIMG_TAR_TYPE];
	if (s->nx.has_size && type != 'x' && type != 'g' && type != 'L' && type != 'K')
		size = s->nx.size;
	uint64_t pad = (size + XTAR_BLOCK - 1) / XTAR_BLOCK * XTAR_BLOCK;
	if (size > s->total || pad > s->total - s->off - XTAR_BLOCK)
		return -EBADMSG;
	if (type == 'x')
		r = xtar_pax(s, size);
	else if (type == 'L')
		r = xtar_gnu_long(s, size, &s->nx.path);
	else if (type == 'K')
		r = xtar_gnu_long(s, size, &s->nx.link);
	else if (type == 'S')
		r = -ENOTSUP;
	else if (type == '0' || type == '\0' || type == '7' || type == '1' || type == '2')
		r = xtar_add(s, h, size);
	if (type != 'x' && type != 'L' && type != 'K' && type != 'g')
		xtar_next_clear(&s->nx);
	s->off += XTAR_BLOCK + pad;
	return r;
}

static int xtar_cmp(const void *a, const void *b)
{
	return strcmp(((const struct xtar_member *)a)->name, ((const struct xtar_member *)b)->name);
}

int xtar_index(struct xtar *t, xtar_pread_fn rd, void *ctx, uint64_t total, struct dimg_err *err)
{
	struct xtar_scan s = {.t = t, .rd = rd, .ctx = ctx, .total = total};
	int r = 0;
	memset(t, 0, sizeof(*t));
	while (r == 0)
		r = xtar_step(&s);
	xtar_next_clear(&s.nx);
	if (r == 1 && t->n)
		qsort(t->m, t->n, sizeof(*t->m), xtar_cmp);
	for (size_t i = 1; r == 1 && i < t->n; i++)
		if (strcmp(t->m[i - 1].name, t->m[i].name) == 0)
			r = dimg_err_set(err, -EBADMSG, t->m[i].name,
			                 "a member that appears twice");
	if (r == 1)
		return 0;
	if (r < 0 && r != -EBADMSG && r != -ENOTSUP && r != -EOVERFLOW)
		dimg_err_set(err, r, NULL, NULL);
	else
		dimg_err_set(err, r, NULL, "a tar header at offset %llu",
		             (unsigned long long)s.off);
	xtar_free(t);
	return r;
}

static int xtar_fd_pread(void *ctx, void *buf, size_t n, uint64_t off)
{
	int fd = *(int *)ctx;
	uint8_t *p = buf;
	while (n) {
		ssize_t k = pread(fd, p, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

int xtar_index_fd(struct xtar *t, int fd, struct dimg_err *err)
{
	struct stat st;
	memset(t, 0, sizeof(*t));
	if (fstat(fd, &st) < 0)
		return dimg_err_set(err, -errno, NULL, NULL);
	return xtar_index(t, xtar_fd_pread, &fd, (uint64_t)st.st_size, err);
}

static const struct xtar_member *xtar_lookup(const struct xtar *t, const char *name)
{
	struct xtar_member key = {.name = (char *)name};
	return t->n ? bsearch(&key, t->m, t->n, sizeof(*t->m), xtar_cmp) : NULL;
}

const struct xtar_member *xtar_find(const struct xtar *t, const char *name)
{
	const struct xtar_member *m = xtar_lookup(t, name);
	for (int hops = 0; m && m->link; hops++)
		m = hops < XTAR_LINK_HOPS ? xtar_lookup(t, m->link) : NULL;
	return m;
}
