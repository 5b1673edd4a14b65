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
    "  --debug            log at debug level\n"
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
	int r = lazyfs_add(fs, name, dimg, &base, NULL, &why);
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
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
	    {"cache", required_argument, NULL, 'c'},   {"cache-max", required_argument, NULL, 'm'},
	    {"threads", required_argument, NULL, 't'}, {"debug", no_argument, NULL, 'd'},
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
		} else {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (argc - optind < 2) {
		fputs(usage, stderr);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {"/var/cache/di3fs/lazyfs", 0, 0, 0};
	int rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc;
	struct snap_log lg = {o.debug ? SNAP_LOG_DEBUG : SNAP_LOG_INFO};
	struct lazyfs_config cfg = {argv[optind], o.cache, o.cache_max, o.threads, &lg};
	/* Blocked before any thread starts, so only sigwait below sees them. */
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
	if (!rc) {
		printf("ready\n");
		fflush(stdout);
		int sig;
		sigwait(&set, &sig);
	}
	struct lazyfs_stats st;
	lazyfs_get_stats(fs, &st);
	lazyfs_stop(fs);
	fprintf(stderr,
	        "di3fs-lazymount: cache %" PRIu64 " bytes in %" PRIu64 " files; %" PRIu64
	        " rebuilds, %" PRIu64 " evictions\n",
	        st.cache_bytes, st.cache_files, st.rebuilds, st.evictions);
	return rc;
}
