/* libFuzzer target for the snapshotter's ELF reader (snapshotter/lazyfs/
 * elfdeps.c): the input is one file, read through a memfd, then walked as
 * /bin/x in a small tree where every library name in /lib is a symlink
 * back to it (each file is still taken up once). No result is wrong but a
 * crash, a leak or a hang. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "elfdeps.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fz_look(void *ctx, const char *path, char *link, size_t cap)
{
	(void)ctx;
	if (strcmp(path, "/bin") == 0 || strcmp(path, "/lib") == 0)
		return ELFDEPS_DIR;
	if (strcmp(path, "/bin/x") == 0)
		return ELFDEPS_REG;
	if (strncmp(path, "/lib/", 5) == 0) {
		snprintf(link, cap, "../bin/x");
		return ELFDEPS_LNK;
	}
	return -ENOENT;
}

static int fz_open(void *ctx, const char *path, int *fd)
{
	(void)path;
	*fd = dup(*(int *)ctx);
	return *fd < 0 ? -errno : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("elf", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	struct elfdeps_info info;
	const char *why;
	if (elfdeps_read(fd, &info, &why) == 0)
		elfdeps_info_clear(&info);
	struct elfdeps_fs fs = {fz_look, fz_open, NULL, &fd};
	struct elfdeps_limits lim = {16, 4};
	const char *seeds[] = {"/bin/x", "/lib/libc.so.6"};
	(void)elfdeps_walk(&fs, seeds, 2, &lim);
	close(fd);
	return 0;
}
