/* Where an image layout's files come from: a directory (opened beneath it,
 * never through a symlink) or a tar, listed once and then read member by
 * member, each in one sequential pass. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cas-internal.h"
#include "ocilayout-internal.h"
#include "tree-internal.h"

/* ---- where the layout's files come from: a directory or a tar ---- */

/* Member names: "./" prefixes, empty and "." components dropped; ".."
 * refused, so a name can never leave the layout. */
int oci_norm_name(char **out, const char *raw)
{
	size_t n = raw ? strlen(raw) : 0;
	*out = NULL;
	if (n == 0 || n >= OCI_NAME_MAX || raw[0] == '/')
		return -EBADMSG;
	char *p = malloc(n + 1);
	if (!p)
		return -ENOMEM;
	int k = dimg_path_clean(p, raw);
	if (k <= 0) {
		free(p);
		return -EBADMSG;
	}
	*out = p;
	return 0;
}

void oci_src_close(struct oci_src *s)
{
	if (s->dirfd >= 0)
		close(s->dirfd);
	for (size_t i = 0; i < s->nm; i++) {
		free(s->m[i].name);
		free(s->m[i].link);
	}
	free(s->m);
	memset(s, 0, sizeof(*s));
	s->dirfd = -1;
}

static struct archive *oci_tar_new(const char *path)
{
	struct archive *a = archive_read_new();
	if (!a)
		return NULL;
	archive_read_support_format_tar(a);
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_xz(a);
	if (archive_read_open_filename(a, path, 1u << 16) != ARCHIVE_OK) {
		archive_read_free(a);
		return NULL;
	}
	return a;
}

static int oci_member_cmp(const void *a, const void *b)
{
	return strcmp(((const struct oci_member *)a)->name, ((const struct oci_member *)b)->name);
}

/* Members are sorted once listed: lookups are binary searches. */
static const struct oci_member *oci_member_find(const struct oci_src *s, const char *name)
{
	struct oci_member key = {.name = (char *)name};
	return s->nm ? bsearch(&key, s->m, s->nm, sizeof(*s->m), oci_member_cmp) : NULL;
}

/* A symlink's target is relative to the symlink's directory. */
static int oci_link_target(char **out, const char *name, const char *target, int symlink)
{
	const char *slash = strrchr(name, '/');
	size_t dl = symlink && slash ? (size_t)(slash - name) + 1 : 0;
	size_t tl = strlen(target);
	char *joined = malloc(dl + tl + 1);
	if (!joined)
		return -ENOMEM;
	memcpy(joined, name, dl);
	memcpy(joined + dl, target, tl + 1);
	int r = oci_norm_name(out, joined);
	free(joined);
	return r;
}

static int oci_member_add(struct oci_src *s, struct archive_entry *ae, size_t *cap)
{
	struct oci_member m = {0};
	int type = archive_entry_filetype(ae);
	const char *hl = archive_entry_hardlink(ae);
	if (!hl && type != AE_IFREG && type != AE_IFLNK)
		return 0; /* directories and the like name no content */
	const char *target = hl ? hl : archive_entry_symlink(ae);
	int r = oci_norm_name(&m.name, archive_entry_pathname(ae));
	if (r == 0 && (hl || type == AE_IFLNK))
		r = target ? oci_link_target(&m.link, m.name, target, !hl) : -EBADMSG;
	if (r == 0 && s->nm >= OCI_MEMBERS_MAX)
		r = -EOVERFLOW;
	if (r == 0 && s->nm == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		struct oci_member *v = realloc(s->m, nc * sizeof(*v));
		r = v ? 0 : -ENOMEM;
		if (v) {
			s->m = v;
			*cap = nc;
		}
	}
	if (r < 0) {
		free(m.name);
		free(m.link);
		return r;
	}
	m.symlink = !hl && type == AE_IFLNK;
	m.size = archive_entry_size(ae) > 0 ? (uint64_t)archive_entry_size(ae) : 0;
	s->m[s->nm++] = m;
	return 0;
}

/* Lists the tar's members once (names, sizes, links); contents are read
 * later by name, each in one sequential pass. */
int oci_src_open_tar(struct oci_src *s, const char *path, struct dimg_err *err)
{
	struct archive_entry *ae;
	size_t cap = 0;
	int r = 0;
	s->tar = path;
	struct archive *a = oci_tar_new(path);
	if (!a) {
		dimg_err_set(err, 0, NULL, "cannot read as a tar archive");
		return -EBADMSG;
	}
	for (;;) {
		int ar = archive_read_next_header(a, &ae);
		if (ar == ARCHIVE_EOF)
			break;
		if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
			dimg_err_set(err, 0, NULL, "%s", archive_error_string(a));
			r = -EBADMSG;
			break;
		}
		r = oci_member_add(s, ae, &cap);
		if (r < 0) {
			dimg_err_set(err, 0, NULL, "member '%s': %s", archive_entry_pathname(ae),
			             strerror(-r));
			r = r == -ENOMEM ? r : -EBADMSG;
			break;
		}
	}
	archive_read_free(a);
	if (r == 0 && s->nm)
		qsort(s->m, s->nm, sizeof(*s->m), oci_member_cmp);
	for (size_t i = 1; r == 0 && i < s->nm; i++) {
		if (strcmp(s->m[i - 1].name, s->m[i].name) == 0) {
			/* Which copy would count? Refuse rather than guess. */
			dimg_err_set(err, 0, NULL, "member '%s' appears twice", s->m[i].name);
			r = -EBADMSG;
		}
	}
	return r;
}

/* Follows member links to a regular member. */
int oci_member_resolve(const struct oci_src *s, const char *name, const struct oci_member **out)
{
	const struct oci_member *m = oci_member_find(s, name);
	for (int hops = 0; m && m->link; hops++) {
		if (hops == OCI_LINK_HOPS)
			return -ELOOP;
		m = oci_member_find(s, m->link);
	}
	*out = m;
	return m ? 0 : -ENOENT;
}

/* ---- streams over one file of the layout ---- */

void oci_stream_close(struct oci_stream *st)
{
	if (!st)
		return;
	if (st->fd >= 0)
		close(st->fd);
	archive_read_free(st->a);
	free(st->buf);
	free(st);
}

static int oci_stream_open_dir(struct oci_stream *st, const struct oci_src *s, const char *name)
{
	struct stat sb;
	int r = dimg_openat_beneath(s->dirfd, name, O_RDONLY | O_NONBLOCK, &st->fd);
	if (r < 0)
		return r;
	if (fstat(st->fd, &sb) < 0)
		return -errno;
	if (!S_ISREG(sb.st_mode))
		return -EBADMSG;
	st->size = (uint64_t)sb.st_size;
	st->buf = malloc(OCI_READ_BUF);
	return st->buf ? 0 : -ENOMEM;
}

static int oci_stream_open_tar(struct oci_stream *st, const struct oci_src *s, const char *name)
{
	const struct oci_member *m;
	struct archive_entry *ae;
	int r = oci_member_resolve(s, name, &m);
	if (r < 0)
		return r;
	st->a = oci_tar_new(s->tar);
	if (!st->a)
		return -EIO;
	for (;;) {
		int ar = archive_read_next_header(st->a, &ae);
		if (ar == ARCHIVE_EOF)
			return -ENOENT; /* the archive changed since it was listed */
		if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN)
			return -EBADMSG;
		char *n;
		if (oci_norm_name(&n, archive_entry_pathname(ae)) < 0)
			continue;
		int hit = strcmp(n, m->name) == 0 && archive_entry_filetype(ae) == AE_IFREG &&
		          !archive_entry_hardlink(ae);
		free(n);
		if (hit && archive_entry_sparse_count(ae) > 0)
			return -ENOTSUP;
		if (hit) {
			st->size = m->size;
			return 0;
		}
	}
}

int oci_stream_open(struct oci_stream **out, const struct oci_src *s, const char *name)
{
	struct oci_stream *st = calloc(1, sizeof(*st));
	*out = NULL;
	if (!st)
		return -ENOMEM;
	st->fd = -1;
	int r = s->dirfd >= 0 ? oci_stream_open_dir(st, s, name) : oci_stream_open_tar(st, s, name);
	if (r < 0) {
		oci_stream_close(st);
		return r;
	}
	*out = st;
	return 0;
}

/* struct dimg_layer_src.read */
int oci_stream_read(void *ctx, const void **buf, size_t *len)
{
	struct oci_stream *st = ctx;
	*len = 0;
	if (st->a) {
		la_int64_t off;
		int ar = archive_read_data_block(st->a, buf, len, &off);
		if (ar == ARCHIVE_EOF) {
			*len = 0;
			return 0;
		}
		if (ar != ARCHIVE_OK || off != (la_int64_t)st->off)
			return -EIO;
		st->off += *len;
		return 0;
	}
	for (;;) {
		ssize_t n = read(st->fd, st->buf, OCI_READ_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		*buf = st->buf;
		*len = (size_t)n;
		st->off += (uint64_t)n;
		return 0;
	}
}

/* Reads a whole (small) file of the layout: -ENOENT if absent,
 * -EFBIG past max. */
int oci_read_all(const struct oci_src *s, const char *name, size_t max, uint8_t **out,
                 size_t *outlen)
{
	struct oci_stream *st;
	uint8_t *buf = NULL;
	size_t len = 0;
	*out = NULL;
	int r = oci_stream_open(&st, s, name);
	if (r < 0)
		return r;
	if (st->size > max)
		r = -EFBIG;
	if (r == 0)
		buf = malloc(st->size + 1);
	if (r == 0 && !buf)
		r = -ENOMEM;
	while (r == 0) {
		const void *p;
		size_t n;
		r = oci_stream_read(st, &p, &n);
		if (r < 0 || n == 0)
			break;
		if (n > st->size - len) {
			r = -EBADMSG; /* longer than it said */
			break;
		}
		memcpy(buf + len, p, n);
		len += n;
	}
	oci_stream_close(st);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
}
