# Shared setup for the end-to-end tests (sourced, not run by ctest): a
# di3fs-snapshotter and a private containerd in a temp dir, a namespace of
# the test's own, and a trap that stops what was started, by PID.
set -eu
SRC=${DI3FS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
SNAPSHOTTER=${SNAPSHOTTER:-$SRC/build/snapshotter/di3fs-snapshotter}
SNAPCTL=${SNAPCTL:-$(dirname "$SNAPSHOTTER")/../tests/e2e/di3fs-snapctl}

# Outside CI a machine may lack what these tests need; in CI (CI set, as
# .ci/run has it) a missing piece is a failure, never a silent skip.
skip() {
	if [ -n "${CI:-}" ]; then
		echo "FAIL (CI): $*" >&2
		exit 1
	fi
	echo "SKIP: $*"
	exit 77
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || skip "needs root (containerd, runc, mounts)"
for tool in containerd ctr runc python3 timeout; do
	command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed (install/deps.sh)"
done
[ -x "$SNAPSHOTTER" ] || fail "no snapshotter binary at $SNAPSHOTTER"
[ -x "$SNAPCTL" ] || fail "no di3fs-snapctl binary at $SNAPCTL"

WORK=$(mktemp -d /tmp/di3fs-e2e.XXXXXX)
NS=di3fs-e2e-$$-$RANDOM
SOCK=$WORK/snap.sock
ROOT=$WORK/root
CTD=$WORK/containerd
CSOCK=$CTD/containerd.sock
SNAP_PID=
CTD_PID=
C="timeout 180 ctr -a $CSOCK -n $NS"

# wait_for SECONDS CMD...: retries CMD every 0.1 s until it succeeds.
wait_for() {
	local deadline=$(($(date +%s) + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

write_snap_config() {
	cat >"$WORK/snap.conf" <<CONF
# di3fs-snapshotter settings for $NS
root = $ROOT
address = "$SOCK"
threads = 4
log_level = debug
containerd_address = "$CSOCK"
CONF
}

start_snapshotter() {
	[ -f "$WORK/snap.conf" ] || write_snap_config
	"$SNAPSHOTTER" --config "$WORK/snap.conf" 2>>"$WORK/snap.log" &
	SNAP_PID=$!
	# an RPC, not the socket file: after kill -9 a stale one is still there
	wait_for 20 "$SNAPCTL" --address "$SOCK" list || fail "snapshotter not serving on $SOCK"
}

# Stops the snapshotter: with SIGTERM it must exit 0 (sanitizer builds also
# check for leaks there); kill9 simulates a crash.
stop_snapshotter() {
	local sig=${1:-TERM} rc=0
	[ -n "$SNAP_PID" ] || return 0
	kill -"$sig" "$SNAP_PID"
	wait "$SNAP_PID" || rc=$?
	SNAP_PID=
	if [ "$sig" = TERM ] && [ "$rc" -ne 0 ]; then
		fail "snapshotter exited $rc on SIGTERM"
	fi
}

# The FUSE fd holder the snapshotter started (it outlives the daemon on
# purpose, keeping the mount for the next one): killed by its pid, which
# ends the FUSE connection.
stop_fuse_holder() {
	local pid
	pid=$(cat "$ROOT/fuse.sock.pid" 2>/dev/null) || return 0
	kill -9 "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
}

start_containerd() {
	mkdir -p "$CTD"
	[ -f "$CTD/config.toml" ] || write_containerd_config
	containerd --config "$CTD/config.toml" >>"$CTD/containerd.log" 2>&1 &
	CTD_PID=$!
	wait_for 30 ctr -a "$CSOCK" version || fail "containerd did not start"
}

# The private containerd's config (start_containerd writes it unless the
# test did): own root, state and sockets, CRI off, di3fs as a proxy plugin.
write_containerd_config() {
	mkdir -p "$CTD"
	cat >"$CTD/config.toml" <<CONF
version = 2
root = "$CTD/root"
state = "$CTD/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$CSOCK"

[ttrpc]
  address = "$CSOCK.ttrpc"

[proxy_plugins.di3fs]
  type = "snapshot"
  address = "$SOCK"
CONF
}

# Deletes whatever containers of our namespace are left, then containerd.
stop_containerd() {
	[ -n "$CTD_PID" ] || return 0
	local c
	for c in $(ctr -a "$CSOCK" -n "$NS" containers ls -q 2>/dev/null); do
		timeout 30 ctr -a "$CSOCK" -n "$NS" tasks kill -s SIGKILL "$c" >/dev/null 2>&1
		timeout 30 ctr -a "$CSOCK" -n "$NS" tasks rm -f "$c" >/dev/null 2>&1
		timeout 30 ctr -a "$CSOCK" -n "$NS" containers rm "$c" >/dev/null 2>&1
	done
	kill "$CTD_PID" 2>/dev/null
	wait "$CTD_PID" 2>/dev/null
	CTD_PID=
}

e2e_cleanup() {
	local rc=$?
	set +e
	stop_containerd
	# shims of our namespace that outlived containerd: their pids are on record
	local f
	for f in "$CTD"/state/io.containerd.runtime.v2.task/"$NS"/*/shim.pid; do
		[ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
	done
	[ -n "$SNAP_PID" ] && kill -9 "$SNAP_PID" 2>/dev/null && wait "$SNAP_PID" 2>/dev/null
	stop_fuse_holder
	awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r m; do umount -l "$m"; done
	rm -rf "/run/containerd/runc/$NS"
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		echo "--- snapshotter log (tail)" >&2
		tail -n 40 "$WORK/snap.log" >&2
		echo "--- containerd log (tail)" >&2
		tail -n 20 "$CTD/containerd.log" >&2
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap e2e_cleanup EXIT
trap 'exit 130' INT TERM

# expect_eq WHAT WANT GOT
expect_eq() {
	[ "$2" = "$3" ] || fail "$1: expected [$2], got [$3]"
}

# Number of snapshots di3fs reports to containerd in our namespace.
count_snapshots() {
	$C snapshots --snapshotter di3fs ls | tail -n +2 | grep -c . || true
}
