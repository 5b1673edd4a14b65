/* di3fs-lazymount: mounts lazyfs with the given delta images in the
 * foreground until SIGINT or SIGTERM (for tests, benchmarks and debugging;
 * the snapshotter embeds the same library). */
#include "lazyfs.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

static const char usage[] =
    "usage: di3fs-lazymount [--cache DIR] [--cache-max BYTES] [--threads N] [--debug]\n"
    "                       MOUNTPOINT NAME=DIMG@BASE [NAME2=DIMG2@BASE2 ...]\n"
    "\n"
    "Mounts a read-only FUSE filesystem at MOUNTPOINT showing each delta image's\n"
    "complete tree at MOUNTPOINT/NAME. BASE is a directory holding the tree the\n"
    "delta applies to, or the NAME of an image given earlier on the command line\n"
    "(a chain). Metadata comes from the delta's index; a changed file is rebuilt\n"
    "on first open into the cache, where later opens (and later runs) find it.\n"
    "The base's identity is not checked (no hashing): pass the right one. Every\n"
    "rebuilt file is SHA-256 verified; a bad one reads as EIO.\n"
    "\n"
    "  --cache DIR        cache directory (default: /var/cache/di3fs/lazyfs)\n"
    "  --cache-max BYTES  evict unused cached files past this size (K/M/G suffix; 0: no limit)\n"
    "  --threads N        FUSE worker threads (default 8)\n"
    "  --holder SOCK      keep the FUSE connection across restarts in an fd holder\n"
    "                     listening on SOCK: a new run with the same images takes\n"
    "                     it over; stopping leaves the mount to the holder\n"
    "  --wait MS          with --holder: how long requests wait for a new run before\n"
    "                     they fail with EIO (default 30000)\n"
    "  --unmount          with --holder: end the holder and the mount, and exit\n"
    "  --debug            log at debug level\n"
    "  --control          also read commands on stdin, one a line, each answered\n"
    "                     by one line (\"ok\", \"error: ...\", or the statistics):\n"
    "                     add NAME=DIMG@BASE | remove NAME | stats |\n"
    "                     prefetch NAME PATH... (queued: \"ok\" at once) |\n"
    "                     opened NAME (the files opened in NAME so far)\n"
    "\n"
    "Prints \"ready\" on stdout once mounted, runs until SIGINT or SIGTERM, then\n"
    "unmounts and prints the cache statistics on stderr. Exit: 0 ok, 1 failed,\n"
    "2 usage, 3 a delta is corrupt or does not fit its base.\n";

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	unsigned shift = 0;
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	if (shift)
		end++;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/* NAME=DIMG@BASE, split in place. */
static int split_spec(char *spec, char **name, char **dimg, char **base)
{
	char *eq = strchr(spec, '='), *at = strrchr(spec, '@');
	if (!eq || !at || at < eq || eq == spec || at == eq + 1 || !at[1])
		return -EINVAL;
	*eq = *at = '\0';
	*name = spec;
	*dimg = eq + 1;
	*base = at + 1;
	return 0;
}

static int add_spec(struct lazyfs *fs, char *arg)
{
	char *name, *dimg, *basestr;
	const char *why = "";
	if (split_spec(arg, &name, &dimg, &basestr) < 0) {
		fprintf(stderr, "di3fs-lazymount: %s: expected NAME=DIMG@BASE\n", arg);
		return 2;
	}
	struct lazyfs_base base = {0};
	base.image = lazyfs_find(fs, basestr);
	if (!base.image)
		base.dir = basestr;
	int r = lazyfs_add(fs, name, 0, dimg, &base, NULL, &why);
	if (r < 0) {
		fprintf(stderr, "di3fs-lazymount: %s (base %s): %s: %s\n", dimg, basestr, why,
		        strerror(-r));
		return r == -EBADMSG ? 3 : 1;
	}
	return 0;
}

struct opts {
	const char *cache;
	uint64_t cache_max;
	unsigned threads;
	int debug;
	int control;
	const char *holder;
	unsigned wait_ms;
	int unmount;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
	    {"cache", required_argument, NULL, 'c'},   {"cache-max", required_argument, NULL, 'm'},
	    {"threads", required_argument, NULL, 't'}, {"debug", no_argument, NULL, 'd'},
	    {"control", no_argument, NULL, 'C'},       {"holder", required_argument, NULL, 'H'},
	    {"wait", required_argument, NULL, 'w'},    {"unmount", no_argument, NULL, 'u'},
	    {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
	uint64_t v;
	for (int c; (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1;) {
		if (c == 'h') {
			fputs(usage, stdout);
			exit(0);
		} else if (c == 'c') {
			o->cache = optarg;
		} else if (c == 'm' && parse_size(optarg, &o->cache_max) == 0) {
			continue;
		} else if (c == 't' && parse_size(optarg, &v) == 0 && v > 0 && v <= 256) {
			o->threads = (unsigned)v;
		} else if (c == 'd') {
			o->debug = 1;
		} else if (c == 'C') {
			o->control = 1;
		} else if (c == 'H') {
			o->holder = optarg;
		} else if (c == 'w' && parse_size(optarg, &v) == 0 && v <= UINT32_MAX) {
			o->wait_ms = (unsigned)v;
		} else if (c == 'u') {
			o->unmount = 1;
		} else {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (argc - optind < (o->unmount ? 1 : 2) || (o->unmount && !o->holder)) {
		fputs(usage, stderr);
		return 2;
	}
	return 0;
}

static void print_stats(struct lazyfs *fs, FILE *f)
{
	struct lazyfs_stats st;
	lazyfs_get_stats(fs, &st);
	/* before the cache line: --control answers "stats" with the last line */
	fprintf(f, "di3fs-lazymount: prefetch %" PRIu64 " files, %" PRIu64 " bytes\n",
	        st.prefetched, st.prefetch_bytes);
	fprintf(f,
	        "di3fs-lazymount: cache %" PRIu64 " bytes in %" PRIu64 " files; %" PRIu64
	        " rebuilds, %" PRIu64 " evictions\n",
	        st.cache_bytes, st.cache_files, st.rebuilds, st.evictions);
	fflush(f);
}

/* "NAME PATH..." (split in place at spaces): queues a prefetch. */
static int prefetch_cmd(struct lazyfs *fs, char *args)
{
	const char *seeds[64];
	size_t n = 0;
	char *name = args, *p = strchr(args, ' ');
	while (p && n < 64) {
		*p++ = '\0';
		seeds[n++] = p;
		p = strchr(p, ' ');
	}
	return n ? lazyfs_prefetch(fs, name, seeds, n) : -EINVAL;
}

/* The files opened in image name, on one line, space-separated. */
static void opened_cmd(struct lazyfs *fs, const char *name)
{
	char *list = lazyfs_opened(fs, name);
	for (char *p = list; p && (p = strchr(p, '\n'));)
		*p = p[1] ? ' ' : '\0';
	printf("%s\n", list ? list : "none");
	fflush(stdout);
	free(list);
}

static void run_command(struct lazyfs *fs, char *line)
{
	int r = -EINVAL;
	if (strcmp(line, "stats") == 0) {
		print_stats(fs, stdout);
		return;
	}
	if (strncmp(line, "opened ", 7) == 0) {
		opened_cmd(fs, line + 7);
		return;
	}
	if (strncmp(line, "prefetch ", 9) == 0)
		r = prefetch_cmd(fs, line + 9);
	else if (strncmp(line, "remove ", 7) == 0)
		r = lazyfs_remove(fs, line + 7);
	else if (strncmp(line, "add ", 4) == 0)
		r = add_spec(fs, line + 4) ? -EINVAL : 0;
	if (r < 0)
		printf("error: %s\n", strerror(-r));
	else
		printf("ok\n");
	fflush(stdout);
}

/* Commands on stdin, whole lines only (read(2), so poll sees every byte). */
static int read_commands(struct lazyfs *fs, char *buf, size_t cap, size_t *len)
{
	ssize_t n = read(STDIN_FILENO, buf + *len, cap - *len - 1);
	if (n <= 0)
		return -1;
	*len += (size_t)n;
	buf[*len] = '\0';
	char *p = buf, *nl;
	while ((nl = strchr(p, '\n')) != NULL) {
		*nl = '\0';
		run_command(fs, p);
		p = nl + 1;
	}
	*len -= (size_t)(p - buf);
	memmove(buf, p, *len);
	if (*len == cap - 1)
		*len = 0; /* a line too long: dropped */
	return 0;
}

/* Until SIGINT or SIGTERM, answering commands when asked to. */
static void serve(struct lazyfs *fs, const sigset_t *set, int control)
{
	char buf[8192];
	size_t len = 0;
	int sfd = signalfd(-1, set, SFD_CLOEXEC);
	struct pollfd p[2] = {{sfd, POLLIN, 0}, {control ? STDIN_FILENO : -1, POLLIN, 0}};
	if (sfd < 0) {
		int sig;
		sigwait(set, &sig);
		return;
	}
	for (;;) {
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (p[1].revents && read_commands(fs, buf, sizeof(buf), &len) < 0)
			p[1].fd = -1;
	}
	close(sfd);
}

int main(int argc, char **argv)
{
	int rc = lazyfs_holder_dispatch(argc, argv);
	if (rc >= 0)
		return rc;
	struct opts o = {"/var/cache/di3fs/lazyfs", 0, 0, 0, 0, NULL, 30000, 0};
	rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc;
	struct snap_log lg = {o.debug ? SNAP_LOG_DEBUG : SNAP_LOG_INFO};
	if (o.unmount)
		return lazyfs_unmount(o.holder, argv[optind], &lg) < 0;
	struct lazyfs_config cfg = {.mountpoint = argv[optind],
	                            .cache_dir = o.cache,
	                            .cache_max = o.cache_max,
	                            .threads = o.threads,
	                            .lg = &lg,
	                            .holder = o.holder,
	                            .wait_ms = o.wait_ms};
	/* Blocked before any thread starts, so only serve() sees them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	struct lazyfs *fs;
	const char *why = "";
	int r = lazyfs_start(&fs, &cfg, &why);
	if (r < 0) {
		fprintf(stderr, "di3fs-lazymount: %s: %s: %s\n", cfg.mountpoint, why, strerror(-r));
		return 1;
	}
	for (int i = optind + 1; i < argc && !rc; i++)
		rc = add_spec(fs, argv[i]);
	lazyfs_restored(fs);
	if (!rc) {
		printf("ready\n");
		fflush(stdout);
		serve(fs, &set, o.control);
	}
	print_stats(fs, stderr);
	lazyfs_stop(fs);
	return rc;
}
