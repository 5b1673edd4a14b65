/* elfdeps: one file's interpreter and libraries (ELF64, little-endian, or
 * a "#!" script), and the walk over them (elfdeps.h). Reads with pread
 * only, each read bounded by the file's size and the caps in elfdeps.h. */
#include "elfdeps.h"

#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The usual library directories, searched after DT_RUNPATH (glibc's
 * multiarch ones, musl's, the old ones); ld.so.cache is not read. */
static const char *const LIB_DIRS[] = {"/lib/x86_64-linux-gnu",
                                       "/usr/lib/x86_64-linux-gnu",
                                       "/lib/aarch64-linux-gnu",
                                       "/usr/lib/aarch64-linux-gnu",
                                       "/lib64",
                                       "/usr/lib64",
                                       "/lib",
                                       "/usr/lib",
                                       "/usr/local/lib"};

/* glibc's dynamic loader opens it before any library (missing: skipped) */
#define LD_SO_CACHE "/etc/ld.so.cache"

struct elf_file {
	int fd;
	uint64_t size;
	const char **why;
};

static int bad(const struct elf_file *f, const char *why)
{
	*f->why = why;
	return -EBADMSG;
}

/* Exactly n bytes at off, inside the file. */
static int read_at(const struct elf_file *f, void *buf, uint64_t n, uint64_t off)
{
	if (off > f->size || n > f->size - off)
		return bad(f, "a header or section points past the end of the file");
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t r = pread(f->fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return bad(f, "the file is shorter than it was");
		p += r;
		off += (uint64_t)r;
		n -= (uint64_t)r;
	}
	return 0;
}

void elfdeps_info_clear(struct elfdeps_info *info)
{
	free(info->interp);
	for (size_t i = 0; i < info->nneeded; i++)
		free(info->needed[i]);
	free(info->needed);
	free(info->runpath);
	free(info->rpath);
	memset(info, 0, sizeof(*info));
}

/* "#!interp [arg]": the interpreter. */
static int read_script(const struct elf_file *f, struct elfdeps_info *out)
{
	char line[256];
	uint64_t n = f->size < sizeof(line) - 1 ? f->size : sizeof(line) - 1;
	int r = read_at(f, line, n, 0);
	if (r < 0)
		return r;
	line[n] = '\0';
	char *p = line + 2;
	p += strspn(p, " \t");
	size_t len = strcspn(p, " \t\r\n");
	if (p[0] != '/')
		return bad(f, "a \"#!\" line without an absolute interpreter");
	if (p[len] == '\0' && n < f->size)
		return bad(f, "a \"#!\" line too long");
	out->interp = strndup(p, len);
	out->script = 1;
	return out->interp ? 0 : -ENOMEM;
}

static int check_ehdr(const struct elf_file *f, const Elf64_Ehdr *eh)
{
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return bad(f, "not a little-endian ELF64 file");
	if (eh->e_phnum > ELFDEPS_MAX_PHDRS)
		return bad(f, "too many program headers");
	if (eh->e_phnum && eh->e_phentsize != sizeof(Elf64_Phdr))
		return bad(f, "program header size is not ELF64's");
	return 0;
}

/* The file offset of virtual address v, through the PT_LOAD segments. */
static int vaddr_off(const Elf64_Phdr *ph, size_t n, uint64_t v, uint64_t *off)
{
	for (size_t i = 0; i < n; i++) {
		if (ph[i].p_type != PT_LOAD || v < ph[i].p_vaddr ||
		    v - ph[i].p_vaddr >= ph[i].p_filesz)
			continue;
		*off = ph[i].p_offset + (v - ph[i].p_vaddr);
		return *off >= ph[i].p_offset ? 0 : -EBADMSG;
	}
	return -EBADMSG;
}

static int read_interp(const struct elf_file *f, const Elf64_Phdr *p, struct elfdeps_info *out)
{
	if (p->p_filesz < 2 || p->p_filesz > PATH_MAX)
		return bad(f, "PT_INTERP of a bad size");
	char *s = malloc(p->p_filesz);
	int r = s ? read_at(f, s, p->p_filesz, p->p_offset) : -ENOMEM;
	if (r == 0 && (s[p->p_filesz - 1] != '\0' || strlen(s) == 0))
		r = bad(f, "PT_INTERP is not a string");
	if (r < 0)
		free(s);
	else
		out->interp = s;
	return r;
}

/* The dynamic section's string table and entries it uses. */
struct dyn_view {
	Elf64_Dyn *d;
	size_t n;
	char *str;
	uint64_t strsz;
};

static int read_dyn(const struct elf_file *f, const Elf64_Phdr *p, struct dyn_view *v)
{
	v->n = p->p_filesz / sizeof(Elf64_Dyn);
	if (v->n > ELFDEPS_MAX_DYN)
		return bad(f, "dynamic section too large");
	v->d = malloc(v->n * sizeof(Elf64_Dyn) + 1);
	if (!v->d)
		return -ENOMEM;
	return read_at(f, v->d, v->n * sizeof(Elf64_Dyn), p->p_offset);
}

static int read_strtab(const struct elf_file *f, const Elf64_Phdr *ph, size_t nph,
                       struct dyn_view *v)
{
	uint64_t addr = 0, off;
	int has = 0;
	for (size_t i = 0; i < v->n && v->d[i].d_tag != DT_NULL; i++) {
		if (v->d[i].d_tag == DT_STRTAB)
			addr = v->d[i].d_un.d_ptr, has = 1;
		else if (v->d[i].d_tag == DT_STRSZ)
			v->strsz = v->d[i].d_un.d_val;
	}
	if (!has || v->strsz == 0 || v->strsz > ELFDEPS_MAX_STRTAB)
		return bad(f, "dynamic section without a usable string table");
	if (vaddr_off(ph, nph, addr, &off) < 0)
		return bad(f, "DT_STRTAB outside every loaded segment");
	v->str = malloc(v->strsz + 1);
	if (!v->str)
		return -ENOMEM;
	int r = read_at(f, v->str, v->strsz, off);
	v->str[v->strsz] = '\0'; /* a string running off the table ends here */
	return r;
}

static int dyn_string(const struct elf_file *f, const struct dyn_view *v, uint64_t at, char **out)
{
	if (at >= v->strsz)
		return bad(f, "a dynamic string outside the string table");
	*out = strdup(v->str + at);
	return *out ? 0 : -ENOMEM;
}

static int collect_dyn(const struct elf_file *f, const struct dyn_view *v, struct elfdeps_info *out)
{
	int r = 0;
	out->needed = calloc(ELFDEPS_MAX_NEEDED, sizeof(char *));
	if (!out->needed)
		return -ENOMEM;
	for (size_t i = 0; r == 0 && i < v->n && v->d[i].d_tag != DT_NULL; i++) {
		uint64_t at = v->d[i].d_un.d_val;
		if (v->d[i].d_tag == DT_NEEDED && out->nneeded == ELFDEPS_MAX_NEEDED)
			r = bad(f, "too many DT_NEEDED entries");
		else if (v->d[i].d_tag == DT_NEEDED)
			r = dyn_string(f, v, at, &out->needed[out->nneeded++]);
		else if (v->d[i].d_tag == DT_RUNPATH && !out->runpath)
			r = dyn_string(f, v, at, &out->runpath);
		else if (v->d[i].d_tag == DT_RPATH && !out->rpath)
			r = dyn_string(f, v, at, &out->rpath);
	}
	return r;
}

static int parse_dynamic(const struct elf_file *f, const Elf64_Phdr *ph, size_t nph,
                         const Elf64_Phdr *dyn, struct elfdeps_info *out)
{
	struct dyn_view v = {0};
	int r = read_dyn(f, dyn, &v);
	if (r == 0)
		r = read_strtab(f, ph, nph, &v);
	if (r == 0)
		r = collect_dyn(f, &v, out);
	free(v.d);
	free(v.str);
	return r;
}

static int read_elf(const struct elf_file *f, struct elfdeps_info *out)
{
	Elf64_Ehdr eh;
	int r = read_at(f, &eh, sizeof(eh), 0);
	if (r == 0)
		r = check_ehdr(f, &eh);
	if (r < 0)
		return r;
	Elf64_Phdr *ph = calloc(eh.e_phnum + 1u, sizeof(*ph));
	if (!ph)
		return -ENOMEM;
	r = read_at(f, ph, (uint64_t)eh.e_phnum * sizeof(*ph), eh.e_phoff);
	const Elf64_Phdr *dyn = NULL;
	for (size_t i = 0; r == 0 && i < eh.e_phnum; i++) {
		if (ph[i].p_type == PT_INTERP && !out->interp)
			r = read_interp(f, &ph[i], out);
		else if (ph[i].p_type == PT_DYNAMIC && !dyn)
			dyn = &ph[i];
	}
	if (r == 0 && dyn)
		r = parse_dynamic(f, ph, eh.e_phnum, dyn, out);
	free(ph);
	return r;
}

int elfdeps_read(int fd, struct elfdeps_info *out, const char **why)
{
	const char *dummy;
	struct stat st;
	struct elf_file f = {fd, 0, why ? why : &dummy};
	uint8_t magic[4];
	memset(out, 0, sizeof(*out));
	*f.why = NULL;
	if (fstat(fd, &st) < 0)
		return -errno;
	f.size = (uint64_t)st.st_size;
	if (f.size < sizeof(magic) || read_at(&f, magic, sizeof(magic), 0) < 0) {
		*f.why = "too short for an ELF file or a script";
		return -ENOEXEC;
	}
	int r;
	if (magic[0] == '#' && magic[1] == '!')
		r = read_script(&f, out);
	else if (memcmp(magic, ELFMAG, SELFMAG) == 0)
		r = read_elf(&f, out);
	else {
		*f.why = "neither an ELF file nor a script";
		return -ENOEXEC;
	}
	if (r < 0)
		elfdeps_info_clear(out);
	return r;
}

/* ---------------------------------------------------------------- paths */

/* Drops the last component of done[*len]. */
static void path_up(char *done, size_t *len)
{
	while (*len && done[*len - 1] != '/')
		(*len)--;
	if (*len)
		(*len)--;
	done[*len] = '\0';
}

/* todo becomes link + "/" + rest (rest may point into todo). */
static int splice_link(char *todo, size_t cap, const char *link, const char *rest)
{
	char next[PATH_MAX];
	int n = snprintf(next, sizeof(next), "%s/%s", link, rest);
	if (n < 0 || (size_t)n >= sizeof(next) || (size_t)n >= cap)
		return -ENAMETOOLONG;
	memcpy(todo, next, (size_t)n + 1);
	return 0;
}

int elfdeps_resolve(const struct elfdeps_fs *fs, const char *path, char *out, size_t cap)
{
	char todo[PATH_MAX], done[PATH_MAX], link[PATH_MAX];
	size_t dlen = 0, hops = 0;
	int type = ELFDEPS_DIR;
	if (path[0] != '/' || strlen(path) >= sizeof(todo))
		return -EINVAL;
	memcpy(todo, path, strlen(path) + 1);
	done[0] = '\0';
	for (char *p = todo + strspn(todo, "/"); *p; p += strspn(p, "/")) {
		size_t n = strcspn(p, "/");
		if (type != ELFDEPS_DIR)
			return -ENOTDIR;
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
			if (n == 2)
				path_up(done, &dlen);
			p += n;
			continue;
		}
		if (dlen + 1 + n >= sizeof(done))
			return -ENAMETOOLONG;
		done[dlen] = '/';
		memcpy(done + dlen + 1, p, n);
		done[dlen + 1 + n] = '\0';
		p += n;
		if ((type = fs->look(fs->ctx, done, link, sizeof(link))) < 0)
			return type;
		if (type != ELFDEPS_LNK) {
			dlen += 1 + n;
			continue;
		}
		if (++hops > ELFDEPS_MAX_HOPS)
			return -ELOOP;
		int r = splice_link(todo, sizeof(todo), link, p);
		if (r < 0)
			return r;
		dlen = link[0] == '/' ? 0 : dlen;
		done[dlen] = '\0';
		type = ELFDEPS_DIR;
		p = todo;
	}
	if ((dlen ? dlen : 1) >= cap)
		return -ENAMETOOLONG;
	memcpy(out, dlen ? done : "/", (dlen ? dlen : 1) + 1);
	return type;
}

/* ---------------------------------------------------------------- walk */

#define WALK_QUEUE_MAX 8192

struct walk_item {
	char *path;
	unsigned depth;
};

struct walk {
	const struct elfdeps_fs *fs;
	const struct elfdeps_limits *lim;
	struct walk_item *q;
	size_t head, n, cap;
	char **seen; /* canonical paths taken up */
	size_t nseen;
	unsigned opened;
};

static void note(const struct walk *w, const char *path, int err, const char *why)
{
	if (w->fs->visit)
		w->fs->visit(w->fs->ctx, path, err, why);
}

static int push(struct walk *w, const char *path, unsigned depth)
{
	if (w->n == WALK_QUEUE_MAX)
		return -ENOSPC;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct walk_item *q = realloc(w->q, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		w->q = q;
		w->cap = cap;
	}
	if (!(w->q[w->n].path = strdup(path)))
		return -ENOMEM;
	w->q[w->n++].depth = depth;
	return 0;
}

static int seen_add(struct walk *w, const char *canon)
{
	for (size_t i = 0; i < w->nseen; i++)
		if (strcmp(w->seen[i], canon) == 0)
			return 1;
	char **s = realloc(w->seen, (w->nseen + 1) * sizeof(*s));
	if (!s)
		return -ENOMEM;
	w->seen = s;
	if (!(s[w->nseen] = strdup(canon)))
		return -ENOMEM;
	w->nseen++;
	return 0;
}

/* dir with a leading $ORIGIN or ${ORIGIN} replaced by origin; other
 * dynamic string tokens ($LIB, $PLATFORM) are not expanded: 0 skips it. */
static int expand_dir(char *out, size_t cap, const char *dir, const char *origin)
{
	const char *rest = NULL;
	if (strncmp(dir, "$ORIGIN", 7) == 0)
		rest = dir + 7;
	else if (strncmp(dir, "${ORIGIN}", 9) == 0)
		rest = dir + 9;
	int n = rest ? snprintf(out, cap, "%s%s", origin, rest) : snprintf(out, cap, "%s", dir);
	return n > 0 && (size_t)n < cap && out[0] == '/' && !strchr(out, '$');
}

/* Looks for name in dir (a path list entry); pushes it when found. */
static int try_dir(struct walk *w, const char *dir, size_t dlen, const char *name,
                   const char *origin, unsigned depth)
{
	char d[PATH_MAX], cand[PATH_MAX], canon[PATH_MAX];
	if (dlen == 0 || dlen >= sizeof(d))
		return 0;
	memcpy(d, dir, dlen);
	d[dlen] = '\0';
	if (!expand_dir(cand, sizeof(cand), d, origin))
		return 0;
	size_t n = strlen(cand);
	if (n + 1 + strlen(name) >= sizeof(cand))
		return 0;
	cand[n] = '/';
	memcpy(cand + n + 1, name, strlen(name) + 1);
	if (elfdeps_resolve(w->fs, cand, canon, sizeof(canon)) != ELFDEPS_REG)
		return 0;
	return push(w, canon, depth) < 0 ? -ENOMEM : 1;
}

/* Tries each directory of a ':' list; 1 once found. */
static int try_list(struct walk *w, const char *list, const char *name, const char *origin,
                    unsigned depth)
{
	int r = 0;
	for (const char *p = list; p && r == 0; p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL)
		r = try_dir(w, p, strcspn(p, ":"), name, origin, depth);
	return r;
}

static int find_lib(struct walk *w, const struct elfdeps_info *info, const char *name,
                    const char *origin, unsigned depth)
{
	if (strchr(name, '/'))
		return name[0] == '/' ? push(w, name, depth) : 0;
	int r = info->runpath ? 0 : try_list(w, info->rpath, name, origin, depth);
	if (r == 0)
		r = try_list(w, info->runpath, name, origin, depth);
	for (size_t i = 0; r == 0 && i < sizeof(LIB_DIRS) / sizeof(*LIB_DIRS); i++)
		r = try_dir(w, LIB_DIRS[i], strlen(LIB_DIRS[i]), name, origin, depth);
	if (r == 0)
		note(w, name, -ENOENT, "library not found in the image");
	return r < 0 ? r : 0;
}

/* Queues what the file at canon (open as fd) needs. */
static int follow(struct walk *w, const char *canon, int fd, unsigned depth)
{
	struct elfdeps_info info;
	const char *why = NULL;
	int r = elfdeps_read(fd, &info, &why);
	if (r == -ENOEXEC)
		return 0; /* a data file */
	if (r < 0) {
		note(w, canon, r, why);
		return r == -ENOMEM ? r : 0;
	}
	char origin[PATH_MAX];
	size_t olen = (size_t)(strrchr(canon, '/') - canon);
	memcpy(origin, canon, olen);
	origin[olen] = '\0';
	if (info.interp && info.interp[0] == '/')
		r = push(w, info.interp, depth + 1);
	if (r == 0 && info.interp && !info.script) /* the loader reads it first */
		r = push(w, LD_SO_CACHE, depth + 1);
	for (size_t i = 0; r == 0 && i < info.nneeded; i++)
		r = find_lib(w, &info, info.needed[i], origin, depth + 1);
	elfdeps_info_clear(&info);
	return r == -ENOSPC ? 0 : r;
}

/* Takes up one queued path. */
static int step(struct walk *w, const struct walk_item *it)
{
	char canon[PATH_MAX];
	int fd, r = elfdeps_resolve(w->fs, it->path, canon, sizeof(canon));
	if (r != ELFDEPS_REG) {
		note(w, it->path, r < 0 ? r : -EINVAL, r < 0 ? NULL : "not a regular file");
		return 0;
	}
	if ((r = seen_add(w, canon)) != 0)
		return r < 0 ? r : 0;
	if ((r = w->fs->open(w->fs->ctx, canon, &fd)) < 0) {
		note(w, canon, r, NULL);
		return r == -ECANCELED ? r : 0;
	}
	w->opened++;
	note(w, canon, 0, NULL);
	if (it->depth < w->lim->max_depth)
		r = follow(w, canon, fd, it->depth);
	close(fd);
	return r;
}

int elfdeps_walk(const struct elfdeps_fs *fs, const char *const *seeds, size_t nseeds,
                 const struct elfdeps_limits *lim)
{
	struct walk w = {.fs = fs, .lim = lim};
	int r = 0;
	for (size_t i = 0; r == 0 && i < nseeds; i++)
		r = seeds[i][0] == '/' ? push(&w, seeds[i], 0) : 0;
	r = r == -ENOSPC ? 0 : r;
	while (r == 0 && w.head < w.n && w.opened < lim->max_files) {
		struct walk_item it = w.q[w.head++]; /* step may move the queue */
		r = step(&w, &it);
	}
	for (size_t i = 0; i < w.n; i++)
		free(w.q[i].path);
	for (size_t i = 0; i < w.nseen; i++)
		free(w.seen[i]);
	free(w.q);
	free(w.seen);
	return r < 0 ? r : (int)w.opened;
}
