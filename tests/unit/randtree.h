/* Random directory trees for test_walk_write: each built on disk through
 * syscalls and described independently as the tree the walker must find.
 * Included by that one test only (its static helpers come with it). */
#ifndef DI3FS_TEST_RANDTREE_H
#define DI3FS_TEST_RANDTREE_H

/* ---- random trees ---- */

/* One created name; hardlinks point at the REG they were linked from. */
struct bent {
	struct dimg_entry e;
	size_t group; /* REG/HARDLINK: index of the original REG */
};

struct builder {
	const struct env *env;
	char root[PATH_MAX];
	unsigned long long rng;
	struct bent *v;
	size_t n, cap;
};

static unsigned rnd(struct builder *b, unsigned n)
{
	return (unsigned)(test_rand(&b->rng) % n);
}

static void full_path(const struct builder *b, const char *rel, char out[PATH_MAX])
{
	pjoin(out, b->root, rel);
}

static size_t push(struct builder *b, const char *parent, const char *name, uint8_t type)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		b->v = realloc(b->v, b->cap * sizeof(*b->v));
		CHECK(b->v);
	}
	struct bent *be = &b->v[b->n];
	memset(be, 0, sizeof(*be));
	char rel[PATH_MAX];
	if (parent[0])
		pjoin(rel, parent, name);
	else
		pjoin(rel, name, "");
	be->e.path = strdup(rel);
	CHECK(be->e.path);
	be->e.type = type;
	be->group = b->n;
	return b->n++;
}

static const int64_t mtimes[] = {
    -2147483647LL, -86400LL * 365 * 30, -1, 0, 1, 1234567890, 1700000000, 4102444800LL,
};

static void random_meta(struct builder *b, struct dimg_entry *e)
{
	static const uint32_t ids[] = {0, 1, 2, 100, 1000, 65534, 65536, 1000000, 2000000000};
	e->mode = rnd(b, 010000);
	if (!b->env->priv) /* what an unprivileged walk must be able to read */
		e->mode |= e->type == DIMG_TYPE_DIR ? 0500 : 0400;
	if (e->type == DIMG_TYPE_SYMLINK)
		e->mode = 0777;
	e->uid = b->env->priv ? ids[rnd(b, 9)] : getuid();
	e->gid = b->env->priv ? ids[rnd(b, 9)] : getgid();
	e->mtime_sec = mtimes[rnd(b, sizeof(mtimes) / sizeof(mtimes[0]))] + (int64_t)rnd(b, 1000);
	e->mtime_nsec = rnd(b, 4) ? rnd(b, 1000000000) : 0;
}

static void fill_random(struct builder *b, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)test_rand(&b->rng);
}

/* A v2 file capability (struct vfs_cap_data): magic|flags, then
 * permitted/inheritable for the low and high 32 capabilities. */
static void cap_value(struct builder *b, uint8_t out[20])
{
	uint32_t w[5] = {0x02000000u | (rnd(b, 2) ? 1u : 0u), 1u << CAP_NET_BIND_SERVICE,
	                 rnd(b, 2) ? 1u << CAP_CHOWN : 0, 0, 0};
	for (int i = 0; i < 5; i++)
		for (int k = 0; k < 4; k++)
			out[4 * i + k] = (uint8_t)(w[i] >> (8 * k));
}

static void add_xattr(struct dimg_entry *e, const char *name, const uint8_t *v, uint32_t len)
{
	e->xattrs = realloc(e->xattrs, (e->nxattrs + 1) * sizeof(*e->xattrs));
	CHECK(e->xattrs);
	struct dimg_xattr *x = &e->xattrs[e->nxattrs++];
	x->name = strdup(name);
	x->value = malloc(len ? len : 1);
	CHECK(x->name && x->value);
	memcpy(x->value, v, len);
	x->value_len = len;
}

static int cmp_xattr(const void *a, const void *b)
{
	return strcmp(((const struct dimg_xattr *)a)->name, ((const struct dimg_xattr *)b)->name);
}

/* user.* only where the kernel allows it (files, directories); trusted.*
 * anywhere, as root; security.capability on files, as root. */
static void random_xattrs(struct builder *b, struct dimg_entry *e)
{
	uint8_t val[1200];
	bool user_ok = e->type == DIMG_TYPE_DIR || e->type == DIMG_TYPE_REG;
	unsigned nuser = user_ok ? rnd(b, 4) : 0;
	for (unsigned i = 0; i < nuser; i++) {
		char name[32];
		snprintf(name, sizeof(name), "user.k%u%c", i, "az. "[rnd(b, 4)]);
		uint32_t len = rnd(b, 10) ? rnd(b, 48) : 1000;
		fill_random(b, val, len);
		add_xattr(e, name, val, len);
	}
	if (b->env->priv && rnd(b, 5) == 0)
		add_xattr(e, "trusted.t", (const uint8_t *)"v\0w", 3);
	bool has_cap = false;
	for (uint32_t i = 0; i < e->nxattrs; i++)
		has_cap |= !strcmp(e->xattrs[i].name, "security.capability");
	if (b->env->priv && e->type == DIMG_TYPE_REG && !has_cap && rnd(b, 4) == 0) {
		cap_value(b, val);
		add_xattr(e, "security.capability", val, 20);
	}
	if (e->nxattrs)
		qsort(e->xattrs, e->nxattrs, sizeof(*e->xattrs), cmp_xattr);
}

static size_t add_dir(struct builder *b, const char *parent, const char *name)
{
	size_t i = push(b, parent, name, DIMG_TYPE_DIR);
	char p[PATH_MAX];
	full_path(b, b->v[i].e.path, p);
	CHECK_RC(mkdir(p, 0700));
	return i;
}

static size_t add_reg(struct builder *b, const char *parent, const char *name, size_t size)
{
	size_t i = push(b, parent, name, DIMG_TYPE_REG);
	char p[PATH_MAX];
	full_path(b, b->v[i].e.path, p);
	uint8_t *data = malloc(size ? size : 1);
	CHECK(data);
	fill_random(b, data, size);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK_RC(fd);
	CHECK(write(fd, data, size) == (ssize_t)size);
	CHECK_RC(close(fd));
	CHECK_RC(dimg_sha256_buf(data, size, b->v[i].e.sha256));
	b->v[i].e.size = size;
	free(data);
	return i;
}

static size_t add_symlink(struct builder *b, const char *parent, const char *name,
                          const char *target)
{
	size_t i = push(b, parent, name, DIMG_TYPE_SYMLINK);
	char p[PATH_MAX];
	full_path(b, b->v[i].e.path, p);
	CHECK_RC(symlink(target, p));
	b->v[i].e.link = strdup(target);
	CHECK(b->v[i].e.link);
	b->v[i].e.size = strlen(target);
	return i;
}

static size_t add_hardlink(struct builder *b, const char *parent, const char *name, size_t orig)
{
	size_t i = push(b, parent, name, DIMG_TYPE_HARDLINK);
	char p[PATH_MAX], o[PATH_MAX];
	full_path(b, b->v[i].e.path, p);
	full_path(b, b->v[orig].e.path, o);
	CHECK_RC(link(o, p));
	b->v[i].group = orig;
	return i;
}

static size_t add_node(struct builder *b, const char *parent, const char *name, uint8_t type,
                       uint32_t maj, uint32_t min)
{
	size_t i = push(b, parent, name, type);
	char p[PATH_MAX];
	full_path(b, b->v[i].e.path, p);
	mode_t fmt = type == DIMG_TYPE_CHR ? S_IFCHR : type == DIMG_TYPE_BLK ? S_IFBLK : S_IFIFO;
	CHECK_RC(mknod(p, fmt | 0600, type == DIMG_TYPE_FIFO ? 0 : makedev(maj, min)));
	if (type != DIMG_TYPE_FIFO) {
		b->v[i].e.rdev_major = maj;
		b->v[i].e.rdev_minor = min;
	}
	return i;
}

static void random_name(struct builder *b, char *out, size_t cap)
{
	static const char *const parts[] = {"a", "b", "-", ".",        "_",
	                                    "z", "0", " ", "\xc3\xa9", "A"};
	do {
		size_t n = 0;
		for (unsigned k = 0, len = 1 + rnd(b, 6); k < len; k++) {
			const char *part = parts[rnd(b, 10)];
			CHECK(n + strlen(part) < cap);
			memcpy(out + n, part, strlen(part));
			n += strlen(part);
		}
		out[n] = '\0';
	} while (!strcmp(out, ".") || !strcmp(out, ".."));
}

static const char *random_dir(struct builder *b)
{
	for (;;) {
		const struct bent *be = &b->v[rnd(b, (unsigned)b->n)];
		if (be->e.type == DIMG_TYPE_DIR)
			return be->e.path;
	}
}

static size_t random_reg(struct builder *b)
{
	for (;;) {
		size_t i = rnd(b, (unsigned)b->n);
		if (b->v[i].e.type == DIMG_TYPE_REG)
			return i;
	}
}

static void add_random(struct builder *b)
{
	static const char *const targets[] = {"a",        "../a/b", "/etc/passwd", "/nonexistent/x",
	                                      "dangling", "./.",    "..",          " sp ace"};
	char parent[PATH_MAX], name[64], p[PATH_MAX], rel[PATH_MAX];
	pjoin(parent, random_dir(b), "");
	do {
		random_name(b, name, sizeof(name));
		pjoin(rel, parent, name);
		full_path(b, parent[0] ? rel : name, p);
	} while (exists(p));
	unsigned kind = rnd(b, b->env->priv ? 100 : 88);
	if (kind < 20)
		add_dir(b, parent, name);
	else if (kind < 55)
		add_reg(b, parent, name, rnd(b, 5) ? rnd(b, 3000) : rnd(b, 70000));
	else if (kind < 67)
		add_symlink(b, parent, name, targets[rnd(b, 8)]);
	else if (kind < 80)
		add_hardlink(b, parent, name, random_reg(b));
	else if (kind < 88)
		add_node(b, parent, name, DIMG_TYPE_FIFO, 0, 0);
	else
		add_node(b, parent, name, kind < 94 ? DIMG_TYPE_CHR : DIMG_TYPE_BLK,
		         1 + rnd(b, 4000), rnd(b, 1u << 20));
}

/* Entries every tree has, whatever the seed, so each feature is covered. */
static void add_fixed(struct builder *b)
{
	char longt[3001];
	memset(longt, 'x', 3000);
	longt[3000] = '\0';
	add_dir(b, "", "d1");
	add_dir(b, "d1", "sub");
	add_dir(b, "", "d1-x"); /* sorts between "d1" and "d1/..." */
	add_dir(b, "", "empty");
	size_t big = add_reg(b, "d1", "big", (3u << 20) / 2 + 7); /* several hash chunks */
	add_reg(b, "", "empty-file", 0);
	size_t suid = add_reg(b, "d1/sub", "suid", 100);
	b->v[suid].e.mode = 04755;
	size_t sgid = add_reg(b, "", "sgid", 10);
	b->v[sgid].e.mode = 02711;
	size_t sticky = add_dir(b, "d1", "sticky");
	b->v[sticky].e.mode = 01777;
	/* Group across directories whose later links sort before the first. */
	size_t orig = add_reg(b, "d1/sub", "orig", 5000);
	add_hardlink(b, "", "0-link", orig);
	add_hardlink(b, "d1-x", "link2", orig);
	add_symlink(b, "d1", "rel", "../sgid");
	add_symlink(b, "d1", "abs", "/etc/passwd");
	add_symlink(b, "", "dangling", "does/not/exist");
	add_symlink(b, "", "long", longt);
	add_node(b, "d1", "fifo", DIMG_TYPE_FIFO, 0, 0);
	if (b->env->priv) {
		add_node(b, "d1", "null", DIMG_TYPE_CHR, 1, 3);
		add_node(b, "", "blk", DIMG_TYPE_BLK, 259, (1u << 20) - 1);
		uint8_t cap[20];
		cap_value(b, cap);
		add_xattr(&b->v[suid].e, "security.capability", cap, 20);
	}
	size_t neg = add_reg(b, "", "pre1970", 1);
	b->v[big].e.mtime_sec = -1;
	b->v[big].e.mtime_nsec = 999999999;
	(void)neg;
}

static void apply_meta(const struct builder *b, const struct dimg_entry *e)
{
	char p[PATH_MAX];
	full_path(b, e->path, p);
	if (b->env->priv)
		CHECK_RC(lchown(p, e->uid, e->gid));
	for (uint32_t i = 0; i < e->nxattrs; i++)
		CHECK_RC(
		    lsetxattr(p, e->xattrs[i].name, e->xattrs[i].value, e->xattrs[i].value_len, 0));
	if (e->type != DIMG_TYPE_SYMLINK)
		CHECK_RC(chmod(p, e->mode));
	struct timespec ts[2] = {{e->mtime_sec, e->mtime_nsec}, {e->mtime_sec, e->mtime_nsec}};
	CHECK_RC(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW));
}

/* Metadata goes on last, children before parents, as a directory's mtime
 * moves whenever something is created in it. */
static void finish_meta(struct builder *b)
{
	for (size_t i = 0; i < b->n; i++) {
		struct dimg_entry *e = &b->v[i].e;
		if (e->type == DIMG_TYPE_HARDLINK)
			continue;
		int64_t ms = e->mtime_sec;
		uint32_t mode = e->mode, mns = e->mtime_nsec;
		random_meta(b, e);
		if (mode) /* fixed entries chose their mode */
			e->mode = mode;
		if (ms) {
			e->mtime_sec = ms;
			e->mtime_nsec = mns;
		}
		random_xattrs(b, e);
	}
	for (size_t i = b->n; i-- > 0;)
		if (b->v[i].e.type != DIMG_TYPE_HARDLINK)
			apply_meta(b, &b->v[i].e);
}

/* The tree the walk must produce: hardlink groups get the lowest path in
 * strcmp order as leader, which takes over the metadata of the group. */
static struct dimg_tree *expected_tree(const struct builder *b)
{
	struct dimg_tree *t;
	CHECK_RC(dimg_tree_new(&t));
	for (size_t i = 0; i < b->n; i++)
		CHECK_RC(dimg_tree_append(t, &b->v[i].e));
	CHECK_RC(dimg_tree_sort(t));
	for (size_t g = 0; g < b->n; g++) {
		if (b->v[g].e.type != DIMG_TYPE_REG)
			continue;
		const char *leader = b->v[g].e.path;
		size_t members = 0;
		for (size_t i = 0; i < b->n; i++) {
			if (b->v[i].group != g)
				continue;
			members++;
			if (strcmp(b->v[i].e.path, leader) < 0)
				leader = b->v[i].e.path;
		}
		for (size_t i = 0; i < b->n && members > 1; i++) {
			if (b->v[i].group != g)
				continue;
			struct dimg_entry *te = &t->v[dimg_tree_index(t, b->v[i].e.path)];
			dimg_entry_clear(te);
			if (b->v[i].e.path == leader) {
				CHECK_RC(dimg_entry_copy(te, &b->v[g].e));
				free(te->path);
			} else {
				te->type = DIMG_TYPE_HARDLINK;
				te->link = strdup(leader);
			}
			te->path = strdup(b->v[i].e.path);
			CHECK(te->path);
		}
	}
	return t;
}

/* A socket (skipped by the walk) and a link from outside the tree (nlink 2
 * but a single path inside: a plain REG). */
static void add_unlisted(struct builder *b, unsigned seed)
{
	char p[PATH_MAX], o[PATH_MAX], name[64];
	full_path(b, "sock", p);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	CHECK(strlen(p) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, p, strlen(p) + 1);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_RC(s);
	CHECK_RC(bind(s, (struct sockaddr *)&sa, sizeof(sa)));
	close(s);
	size_t i = add_reg(b, "", "outside-linked", 33);
	full_path(b, b->v[i].e.path, p);
	snprintf(name, sizeof(name), "outside-%u", seed);
	pjoin(o, b->env->base, name);
	CHECK_RC(link(p, o));
}

static struct dimg_tree *build_tree(const struct env *env, unsigned seed, const char *dir)
{
	struct builder b = {.env = env, .rng = 0x9e3779b97f4a7c15ULL * (seed + 1)};
	pjoin(b.root, env->base, dir);
	CHECK_RC(mkdir(b.root, 0700));
	push(&b, "", "", DIMG_TYPE_DIR);
	add_fixed(&b);
	for (int i = 0; i < NRANDOM; i++)
		add_random(&b);
	add_unlisted(&b, seed);
	finish_meta(&b);
	struct dimg_tree *t = expected_tree(&b);
	for (size_t i = 0; i < b.n; i++)
		dimg_entry_clear(&b.v[i].e);
	free(b.v);
	return t;
}

#endif
