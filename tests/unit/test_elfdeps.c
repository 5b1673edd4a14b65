/* elfdeps (snapshotter/lazyfs/elfdeps.c): this machine's /bin/ls names
 * its interpreter and libc, the walk finds both on the host's tree; a
 * truncated, bit-flipped or lying ELF gives an error, never a crash (run
 * under ASan in CI); symlink loops and missing seeds end the walk. */
#include "check.h"
#include "elfdeps.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG "/bin/ls"

/* ---- the host's tree as an elfdeps_fs, recording what the walk opened */

struct host {
	char opened[64][PATH_MAX];
	int n;
};

static int host_look(void *ctx, const char *path, char *link, size_t cap)
{
	struct stat st;
	(void)ctx;
	if (lstat(path, &st) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlink(path, link, cap - 1);
		if (n < 0)
			return -errno;
		link[n] = '\0';
		return ELFDEPS_LNK;
	}
	return S_ISDIR(st.st_mode)   ? ELFDEPS_DIR
	       : S_ISREG(st.st_mode) ? ELFDEPS_REG
	                             : ELFDEPS_OTHER;
}

static int host_open(void *ctx, const char *path, int *fd)
{
	(void)ctx;
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	return *fd < 0 ? -errno : 0;
}

static void host_visit(void *ctx, const char *path, int err, const char *why)
{
	struct host *h = ctx;
	(void)why;
	if (err == 0 && h->n < 64)
		snprintf(h->opened[h->n++], PATH_MAX, "%s", path);
}

static int opened(const struct host *h, const char *suffix)
{
	for (int i = 0; i < h->n; i++) {
		size_t a = strlen(h->opened[i]), b = strlen(suffix);
		if (a >= b && strcmp(h->opened[i] + a - b, suffix) == 0)
			return 1;
	}
	return 0;
}

static int walk(struct host *h, const char *seed, unsigned max_files)
{
	struct elfdeps_fs fs = {host_look, host_open, host_visit, h};
	struct elfdeps_limits lim = {max_files, 8};
	const char *seeds[] = {seed};
	memset(h, 0, sizeof(*h));
	return elfdeps_walk(&fs, seeds, 1, &lim);
}

/* ---- helpers */

static uint8_t *slurp(const char *path, size_t *n)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	CHECK(fd >= 0 && fstat(fd, &st) == 0);
	uint8_t *b = malloc((size_t)st.st_size);
	CHECK(b && read(fd, b, (size_t)st.st_size) == st.st_size);
	close(fd);
	*n = (size_t)st.st_size;
	return b;
}

/* Parses n bytes of b as a file: the result code. */
static int parse_bytes(const char *tmp, const uint8_t *b, size_t n, struct elfdeps_info *info,
                       const char **why)
{
	int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, b, n) == (ssize_t)n);
	int r = elfdeps_read(fd, info, why);
	close(fd);
	return r;
}

static void expect_error(const char *tmp, const uint8_t *b, size_t n, int want)
{
	struct elfdeps_info info;
	const char *why = NULL;
	int r = parse_bytes(tmp, b, n, &info, &why);
	if (r != want)
		fprintf(stderr, "got %d (%s), want %d\n", r, why ? why : "-", want);
	CHECK(r == want);
	CHECK(why && why[0]);
}

/* ---- tests */

static void test_real_binary(void)
{
	int fd = open(PROG, O_RDONLY);
	struct elfdeps_info info;
	const char *why;
	CHECK(fd >= 0);
	CHECK_RC(elfdeps_read(fd, &info, &why));
	close(fd);
	CHECK(info.interp && info.interp[0] == '/' && !info.script);
	int libc = 0;
	for (size_t i = 0; i < info.nneeded; i++)
		libc |= strcmp(info.needed[i], "libc.so.6") == 0;
	CHECK(libc);

	char interp[PATH_MAX];
	struct elfdeps_fs fs = {host_look, host_open, NULL, NULL};
	CHECK(elfdeps_resolve(&fs, info.interp, interp, sizeof(interp)) == ELFDEPS_REG);
	struct host h;
	int n = walk(&h, PROG, 64);
	CHECK(n >= 3 && n == h.n);
	CHECK(opened(&h, interp));
	CHECK(opened(&h, "/libc.so.6"));
	elfdeps_info_clear(&info);

	CHECK(walk(&h, PROG, 1) == 1); /* the file cap holds */
	CHECK(walk(&h, "/no/such/program", 64) == 0);
}

static void test_truncated(const char *tmp, const uint8_t *b, size_t n)
{
	struct elfdeps_info info;
	const char *why;
	expect_error(tmp, b, 100, -EBADMSG); /* part of the header */
	for (size_t len = 0; len < n; len += len < 8192 ? 61 : n / 97) {
		int r = parse_bytes(tmp, b, len, &info, &why);
		CHECK(r == 0 || r == -ENOEXEC || r == -EBADMSG);
		if (r == 0)
			elfdeps_info_clear(&info);
	}
}

static void test_lies(const char *tmp, const uint8_t *orig, size_t n)
{
	uint8_t *b = malloc(n);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)b;
	memcpy(b, orig, n);
	eh->e_phnum = 0xffff;
	expect_error(tmp, b, n, -EBADMSG);
	memcpy(b, orig, n);
	eh->e_phoff = UINT64_MAX - 8;
	expect_error(tmp, b, n, -EBADMSG);
	memcpy(b, orig, n);
	eh->e_ident[EI_CLASS] = ELFCLASS32;
	expect_error(tmp, b, n, -EBADMSG);
	memcpy(b, orig, n);
	Elf64_Phdr *ph = (Elf64_Phdr *)(b + eh->e_phoff);
	for (int i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_INTERP)
			ph[i].p_offset = n - 1; /* runs past the end */
	expect_error(tmp, b, n, -EBADMSG);
	free(b);
}

/* Random bytes over the headers: any result but a crash. */
static void test_flips(const char *tmp, const uint8_t *orig, size_t n)
{
	unsigned long long seed = 0x5eedf00dULL;
	uint8_t *b = malloc(n);
	struct elfdeps_info info;
	const char *why;
	for (int round = 0; round < 300; round++) {
		memcpy(b, orig, n);
		for (int k = 0; k < 8; k++)
			b[4 + test_rand(&seed) % (n < 1024 ? n - 4 : 1020)] =
			    (uint8_t)test_rand(&seed);
		int r = parse_bytes(tmp, b, n, &info, &why);
		CHECK(r == 0 || r == -ENOEXEC || r == -EBADMSG);
		if (r == 0)
			elfdeps_info_clear(&info);
	}
	free(b);
}

static void test_scripts_and_loops(const char *dir)
{
	char p[PATH_MAX], q[PATH_MAX];
	struct host h;
	snprintf(p, sizeof(p), "%s/loop", dir);
	CHECK(symlink("loop", p) == 0);
	CHECK(walk(&h, p, 64) == 0); /* ELOOP, skipped */
	snprintf(p, sizeof(p), "%s/script", dir);
	FILE *f = fopen(p, "w");
	CHECK(f && fputs("#!" PROG " -l\necho\n", f) >= 0 && fclose(f) == 0);
	CHECK(walk(&h, p, 64) >= 4); /* the script, ls, its interpreter, libc */
	CHECK(opened(&h, "/libc.so.6"));
	snprintf(q, sizeof(q), "%s/bad", dir);
	f = fopen(q, "w");
	CHECK(f && fputs("#!no-slash\n", f) >= 0 && fclose(f) == 0);
	CHECK(walk(&h, q, 64) == 1);
	unlink(p);
	unlink(q);
	snprintf(p, sizeof(p), "%s/loop", dir);
	unlink(p);
}

int main(void)
{
	char dir[] = "/tmp/di3fs-elfdeps-XXXXXX", tmp[PATH_MAX];
	size_t n;
	CHECK(mkdtemp(dir));
	snprintf(tmp, sizeof(tmp), "%s/elf", dir);
	uint8_t *b = slurp(PROG, &n);
	test_real_binary();
	test_truncated(tmp, b, n);
	test_lies(tmp, b, n);
	test_flips(tmp, b, n);
	test_scripts_and_loops(dir);
	unlink(tmp);
	rmdir(dir);
	free(b);
	printf("elfdeps: ok\n");
	return 0;
}
