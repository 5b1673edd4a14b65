/* A file's bytes in memory for the codecs and hashes that need them whole.
 *
 * Why not always mmap: a read fault on a hole of a tmpfs file allocates a
 * page in that tmpfs (a page cache page the file never had); when the tmpfs
 * is full the fault is a SIGBUS that no caller can turn into an error, and
 * when it is not, a 10 GiB sparse file fills it with 10 GiB of zeros.
 * read() of a hole allocates nothing. So a file with holes is copied, run
 * by run, into an anonymous mapping whose untouched pages stay the shared
 * zero page; a file without holes is mapped as before (no copy, no
 * allocation on fault). Preallocating the content store instead
 * (fallocate) would give ENOSPC at write time, but would cost the full
 * size of every sparse file and still leave sparse input trees mapped. */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dimg/fileio.h"

/* 1 if [0, size) of fd has a hole, 0 if not (or when the file system
 * cannot tell, which SEEK_HOLE then reports as one hole at the end). */
static int has_holes(int fd, off_t size)
{
	off_t h = lseek(fd, 0, SEEK_HOLE);
	return h >= 0 && h < size;
}

static int pread_all(int fd, uint8_t *dst, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t k = pread(fd, dst, n, off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -ESTALE; /* shrank while read */
		dst += k;
		n -= (size_t)k;
		off += k;
	}
	return 0;
}

/* Reads every data run of fd below size into dst (zero-filled already). */
static int copy_runs(int fd, uint8_t *dst, off_t size)
{
	for (off_t pos = 0; pos < size;) {
		off_t data = lseek(fd, pos, SEEK_DATA);
		if (data < 0)
			return errno == ENXIO ? 0 : -errno; /* ENXIO: only holes left */
		if (data >= size)
			return 0;
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if (hole > size)
			hole = size;
		int r = pread_all(fd, dst + data, (size_t)(hole - data), data);
		if (r < 0)
			return r;
		pos = hole;
	}
	return 0;
}

static int copy_file(int fd, off_t size, void **out)
{
	void *m = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return -errno;
	int r = copy_runs(fd, m, size);
	if (r == 0 && mprotect(m, (size_t)size, PROT_READ) < 0)
		r = -errno;
	if (r < 0) {
		munmap(m, (size_t)size);
		return r;
	}
	*out = m;
	return 0;
}

int dimg_file_load(int fd, const uint8_t **p, size_t *len)
{
	struct stat st;
	void *m = NULL;
	*p = NULL;
	*len = 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (st.st_size == 0)
		return 0;
	if ((uint64_t)st.st_size > SIZE_MAX)
		return -EFBIG;
	if (has_holes(fd, st.st_size)) {
		int r = copy_file(fd, st.st_size, &m);
		if (r < 0)
			return r;
	} else {
		m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED)
			return -errno;
	}
	*p = m;
	*len = (size_t)st.st_size;
	return 0;
}

void dimg_file_unload(const uint8_t *p, size_t len)
{
	if (p)
		munmap((void *)p, len);
}
