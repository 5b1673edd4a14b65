/* di3fs-snapshotter: the containerd proxy snapshotter daemon. Reads its
 * settings, takes its locks, reconciles its state and serves until a signal. */
#include "config.h"
#include "fsutil.h"
#include "grpc_server.h"
#include "lazyfs.h"
#include "lockfile.h"
#include "log.h"
#include "sdnotify.h"
#include "snap.h"

#include <errno.h>
#include <getopt.h>
#include <grpc/grpc.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_USAGE 2

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: di3fs-snapshotter [OPTIONS]\n"
	        "containerd proxy snapshotter serving containerd.services.snapshots.v1.\n\n"
	        "  --root DIR          state directory (default " SNAP_DEFAULT_ROOT ")\n"
	        "  --address PATH      unix socket to serve on (default " SNAP_DEFAULT_ADDRESS ")\n"
	        "  --config FILE       read settings (key = value lines) from FILE first\n"
	        "  --threads N         calls served at once (default %d)\n"
	        "  --log-level LEVEL   error, warn, info (default) or debug\n"
	        "  -v, --verbose       same as --log-level debug: one line per RPC\n"
	        "  --unmount           do not serve: unmount the FUSE filesystem and the\n"
	        "                      base views a stopped daemon left for the next one,\n"
	        "                      end its fd holder, and exit (for uninstalling)\n"
	        "  -h, --help          this help\n\n"
	        "Config file keys: root, address, threads, log_level, and for delta\n"
	        "images (cdimg load): delta_images (yes/no, default yes: needs /dev/fuse),\n"
	        "containerd_address (where delta blobs are fetched from, default\n"
	        "" SNAP_DEFAULT_CONTAINERD "), cache_max (rebuilt-file cache limit,\n"
	        "bytes with K/M/G/T suffix, default 0 = no limit), restart_wait (seconds\n"
	        "reads of running containers wait for a restarted daemon before they fail\n"
	        "with EIO, default %d; 0 = the FUSE mount ends with the daemon),\n"
	        "prefetch (yes/no, default yes: rebuild a loaded delta image's start\n"
	        "files in the background).\n"
	        "Command-line options override the file.\n",
	        SNAP_DEFAULT_THREADS, SNAP_DEFAULT_RESTART_WAIT);
}

struct cli_setting {
	const char *name;
	const char *value;
};

/* Parses argv: settings to apply after the config file, in order. */
static int parse_args(struct cli_setting *set, int max, int *n_set, const char **config,
                      int *unmount, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"root", required_argument, NULL, 'r'},
	    {"address", required_argument, NULL, 'a'},
	    {"config", required_argument, NULL, 'c'},
	    {"threads", required_argument, NULL, 't'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"unmount", no_argument, NULL, 'u'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	*n_set = 0;
	while ((opt = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		const char *name = NULL, *value = optarg;
		switch (opt) {
		case 'r':
			name = "root";
			break;
		case 'a':
			name = "address";
			break;
		case 't':
			name = "threads";
			break;
		case 'l':
			name = "log_level";
			break;
		case 'v':
			name = "log_level";
			value = "debug";
			break;
		case 'c':
			*config = optarg;
			continue;
		case 'u':
			*unmount = 1;
			continue;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
		if (*n_set == max)
			return -E2BIG;
		set[*n_set].name = name;
		set[(*n_set)++].value = value;
	}
	return optind == argc ? 0 : -EINVAL;
}

static int load_settings(struct snap_config *cfg, int *unmount, int argc, char **argv)
{
	struct cli_setting set[16];
	const char *config = NULL, *why = NULL;
	int n_set, line;

	snap_config_defaults(cfg);
	if (parse_args(set, (int)(sizeof(set) / sizeof(set[0])), &n_set, &config, unmount, argc,
	               argv) < 0) {
		usage(stderr);
		return -EINVAL;
	}
	int r = config ? snap_config_load(cfg, config, &line) : 0;
	if (r < 0) {
		if (line)
			fprintf(stderr, "di3fs-snapshotter: %s:%d: %s\n", config, line,
			        r == -ENOENT ? "unknown setting" : "bad line");
		else
			fprintf(stderr, "di3fs-snapshotter: %s: %s\n", config, strerror(-r));
		return r;
	}
	for (int i = 0; i < n_set; i++) {
		if (snap_config_set(cfg, set[i].name, set[i].value) < 0) {
			fprintf(stderr, "di3fs-snapshotter: bad value for %s: %s\n", set[i].name,
			        set[i].value);
			return -EINVAL;
		}
	}
	r = snap_config_check(cfg, &why);
	if (r < 0)
		fprintf(stderr, "di3fs-snapshotter: %s\n", why);
	return r;
}

/* Locks <root>/lock and <address>.lock: one daemon per state dir and per
 * socket, since gRPC would unlink a live socket when binding. */
static int take_locks(int fds[2], const struct snap_config *cfg, const struct snap_log *lg)
{
	char path[2][4096], sockdir[4096];
	int r = fsutil_pathf(path[0], sizeof(path[0]), "%s/lock", cfg->root);

	if (r == 0)
		r = fsutil_pathf(path[1], sizeof(path[1]), "%s.lock", cfg->address);
	if (r == 0)
		r = fsutil_pathf(sockdir, sizeof(sockdir), "%s", cfg->address);
	if (r == 0)
		r = fsutil_mkdir_p(cfg->root, 0700);
	if (r == 0)
		r = fsutil_mkdir_p(dirname(sockdir), 0711);
	for (int i = 0; r == 0 && i < 2; i++) {
		r = lockfile_acquire(&fds[i], path[i]);
		if (r == -EBUSY)
			snap_err(lg, "%s is locked: another di3fs-snapshotter is running", path[i]);
		else if (r < 0)
			snap_err(lg, "lock %s: %s", path[i], strerror(-r));
	}
	if (r < 0 && r != -EBUSY)
		snap_err(lg, "cannot prepare %s and %s: %s", cfg->root, cfg->address, strerror(-r));
	return r;
}

/* Blocks the stop signals in every thread (the gRPC threads inherit the
 * mask), so that main alone receives them through sigwait. */
static void block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int serve(const struct snap_config *cfg, const struct snap_log *lg, sigset_t *signals)
{
	struct snap *sn = NULL;
	struct rpc_server *srv = NULL;
	const char *why = NULL;
	struct snap_options opt = {
	    .lazy = cfg->delta_images,
	    .containerd_address = cfg->containerd_address,
	    .cache_max = cfg->cache_max,
	    .restart_wait_ms = cfg->restart_wait * 1000,
	    .no_prefetch = !cfg->prefetch,
	};
	int sig, r;

	/* first of all, so that running containers wait least: the FUSE
	 * connection a previous daemon left (gRPC starts after it, and delta
	 * blobs are only fetched from containerd in calls) */
	r = snap_open_opts(&sn, cfg->root, lg, &opt, &why);
	if (r < 0) {
		snap_err(lg, "cannot open %s: %s", cfg->root, why ? why : strerror(-r));
		return r;
	}
	grpc_init();
	r = rpc_server_start(&srv, cfg->address, cfg->threads, sn, lg);
	if (r == 0) {
		snap_info(lg, "serving on unix:%s with %d threads", cfg->address, cfg->threads);
		/* ready (Type=notify): the socket accepts calls, delta images are mounted */
		int nr = sdnotify_send("READY=1", NULL, 0);
		if (nr < 0)
			snap_warn(lg, "cannot notify $NOTIFY_SOCKET: %s", strerror(-nr));
		sigwait(signals, &sig);
		snap_info(lg, "signal %d: stopping", sig);
		sdnotify_send("STOPPING=1", NULL, 0);
		rpc_server_stop(srv);
		unlink(cfg->address); /* ours: we hold its lock */
	} else {
		snap_err(lg, "cannot serve on %s: %s", cfg->address, strerror(-r));
	}
	snap_close(sn);
	grpc_shutdown();
	return r;
}

int main(int argc, char **argv)
{
	struct snap_config cfg;
	struct snap_log lg = {SNAP_LOG_INFO};
	sigset_t signals;
	int locks[2] = {-1, -1}, unmount = 0;
	int r = lazyfs_holder_dispatch(argc, argv); /* we may be started as the fd holder */

	if (r >= 0)
		return r;
	if (load_settings(&cfg, &unmount, argc, argv) < 0)
		return EXIT_USAGE;
	lg.level = cfg.log_level;
	block_signals(&signals);
	if (take_locks(locks, &cfg, &lg) < 0)
		return 1;
	if (unmount)
		r = snap_unmount(cfg.root, &lg);
	else
		r = serve(&cfg, &lg, &signals);
	for (int i = 0; i < 2; i++) {
		if (locks[i] >= 0)
			close(locks[i]);
	}
	return r < 0 ? 1 : 0;
}
