/* A staged layout as a tar: oci-layout, index.json, manifest.json (docker
 * save), di3fs-excluded.json, then the blobs by digest; fixed headers
 * (ociwrite.h), so that the same image gives the same bytes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout.h"
#include "ociwrite.h"

#define LAYTAR_BUF (256u << 10)

static int laytar_copy_rw(struct ocitar *t, int in, uint64_t off, uint64_t n)
{
	uint8_t *buf = malloc(LAYTAR_BUF);
	int r = buf ? 0 : -ENOMEM;
	while (r == 0 && n) {
		ssize_t k = pread(in, buf, n < LAYTAR_BUF ? (size_t)n : LAYTAR_BUF, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		r = k > 0 ? ocitar_write(t, buf, (size_t)k) : k < 0 ? -errno : -EIO;
		off += k > 0 ? (uint64_t)k : 0;
		n -= k > 0 ? (uint64_t)k : 0;
	}
	free(buf);
	return r;
}

/* n bytes of in from its start into the tar (a kernel copy when it can). */
static int laytar_copy(struct ocitar *t, int in, uint64_t n)
{
	loff_t ioff = 0;
	while (n) {
		ssize_t k = copy_file_range(in, &ioff, t->fd, NULL, (size_t)n, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 &&
		    (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP))
			return laytar_copy_rw(t, in, (uint64_t)ioff, n);
		if (k <= 0)
			return k < 0 ? -errno : -EIO; /* shorter than it was */
		t->off += (uint64_t)k;
		n -= (uint64_t)k;
	}
	return 0;
}

static int laytar_member(struct ocitar *t, int dirfd, const char *path, const char *name)
{
	uint8_t hdr[OCITAR_BLOCK];
	struct stat st;
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	int r = fstat(fd, &st) < 0 ? -errno : 0;
	if (r == 0)
		r = ocitar_header_encode(hdr, name, '0', (uint64_t)st.st_size);
	if (r == 0)
		r = ocitar_write(t, hdr, sizeof(hdr));
	if (r == 0)
		r = laytar_copy(t, fd, (uint64_t)st.st_size);
	if (r == 0)
		r = ocitar_pad(t);
	close(fd);
	return r;
}

static int laytar_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The staged blobs' names (hex digests), sorted. */
static int laytar_blobs(int stagefd, char ***out, size_t *n)
{
	int fd = openat(stagefd, "blobs/sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dp = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	size_t cap = 0;
	int r = dp ? 0 : -errno;
	*out = NULL;
	*n = 0;
	while (r == 0 && (de = readdir(dp)) != NULL) {
		if (strlen(de->d_name) != 64 || strchr(de->d_name, '.'))
			continue;
		if (*n == cap) {
			char **v = realloc(*out, (cap = cap ? cap * 2 : 64) * sizeof(*v));
			if (!v) {
				r = -ENOMEM;
				break;
			}
			*out = v;
		}
		if (!((*out)[*n] = strdup(de->d_name)))
			r = -ENOMEM;
		else
			(*n)++;
	}
	if (dp)
		closedir(dp);
	else if (fd >= 0)
		close(fd);
	if (r == 0 && *n)
		qsort(*out, *n, sizeof(**out), laytar_cmp);
	return r;
}

int laytar_write(int stagefd, int outfd, const struct laydst *d, struct dimg_err *err)
{
	static const char *const meta[] = {"oci-layout", "index.json", "manifest.json",
	                                   LAY_EXCLUDED_JSON};
	struct ocitar t = {.fd = outfd};
	char **blobs = NULL, path[OCI_BLOB_PATH_LEN];
	size_t n = 0;
	int r = 0;
	(void)d;
	for (size_t i = 0; r == 0 && i < sizeof(meta) / sizeof(meta[0]); i++)
		r = laytar_member(&t, stagefd, meta[i], meta[i]);
	if (r == 0 && (r = ocitar_dir(&t, "blobs/")) == 0 &&
	    (r = ocitar_dir(&t, "blobs/sha256/")) == 0)
		r = laytar_blobs(stagefd, &blobs, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		snprintf(path, sizeof(path), "blobs/sha256/%s", blobs[i]);
		r = laytar_member(&t, stagefd, path, path);
	}
	if (r == 0)
		r = ocitar_finish(&t);
	for (size_t i = 0; i < n; i++)
		free(blobs[i]);
	free(blobs);
	return r < 0 ? dimg_err_set(err, r, d->path, "writing the archive") : 0;
}
