#!/bin/bash
# End-to-end: restarts of the snapshotter do not disturb running
# containers. Five containers read a delta image in loops (a large file
# with O_DIRECT, directories never listed before, changed files never read
# before, a file capability at each exec, a large file through a handle
# kept open) while the daemon is killed with SIGKILL and started again,
# started as a copy of its binary (an upgrade), stopped with SIGTERM and
# started again, and killed and left down for 5 s. Every step of every
# container must succeed (no ENOTCONN, no EIO, no wrong byte), each must
# go on after each restart, and new containers must start.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/restart.inc"

LOOPS="bigread lister fresh caps held"

step "build v1 and v2 (an 8 MiB file, a capability, 150 changed files) and the delta"
build_images 150
step "start the snapshotter and containerd; import v1 through di3fs, load the delta"
start_snapshotter
start_containerd
load_images

step "five containers read the delta image in loops"
run_loop bigread "$BIGREAD"
run_loop lister "$LISTER"
run_loop fresh "$FRESH"
run_loop caps "$CAPS"
run_loop held "$HELD"
for n in bigread lister fresh caps; do
	wait_oks "$n" 2 120
done
cached0=$(find "$ROOT/cache/sha256" -type f | wc -l)

# new_container N: a container started now reads what it should.
new_container() {
	local got
	got=$($C run --rm --snapshotter=di3fs "$IMG" "new$1" sh -c \
		'sha256sum /opt/big.bin | cut -c1-64; ls /usr/local/bin')
	expect_eq "new container $1" "$(cat "$CTL/big.sha")
capcat" "$got"
}

# after_restart N: each loop goes on (two more steps) and a new container
# starts; records the restart.
RESTARTS=
after_restart() {
	RESTARTS="$RESTARTS $DOWN_NS:$UP_NS"
	local n
	for n in bigread lister fresh caps; do
		wait_oks "$n" 2 60 "$UP_NS"
	done
	new_container "$1"
}

step "kill -9, then the same binary again"
restart_with KILL
after_restart 1

step "kill -9, then a copy of the binary (an upgrade)"
mkdir -p "$WORK/bin"
cp "$SNAPSHOTTER" "$WORK/bin/di3fs-snapshotter"
restart_with KILL "$WORK/bin/di3fs-snapshotter"
after_restart 2

step "SIGTERM (a restart by a service manager), then the copy again"
expect_eq "base views before the stop (v1 has two layers)" 1 "$(base_views)"
DOWN_NS=$(now_ns)
stop_snapshotter TERM
expect_eq "base views left mounted by SIGTERM" 0 "$(base_views)"
SNAPSHOTTER=$WORK/bin/di3fs-snapshotter start_snapshotter
UP_NS=$(now_ns)
wait_for 30 $C snapshots --snapshotter di3fs ls || fail "containerd did not reconnect"
after_restart 3
expect_eq "base views after the restart" 1 "$(base_views)"

# big_read_in_flight: a dd of the bigread loop runs now (the loop took its
# start time before it). Its PIDs from containerd: other runs' containers
# run the same command. The last check reads /proc with builtins only, so
# the caller's kill follows it within microseconds.
big_read_in_flight() {
	local p a b
	for p in $($C tasks ps bigread | awk 'NR > 1 { print $1 }'); do
		{ IFS= read -r -d '' a && IFS= read -r -d '' b; } 2>/dev/null <"/proc/$p/cmdline" || continue
		[ "$a $b" = "dd if=/opt/big.bin" ] && return 0
	done
	return 1
}

step "kill -9 and no daemon for 5 s: reads wait, then complete"
# The kill must find a read of the large file in flight, else none may
# span the outage (the loop may be starting a process then): wait for one,
# and take the time with no process start in between.
deadline=$((SECONDS + 30))
until big_read_in_flight; do
	[ $SECONDS -lt $deadline ] || fail "no read of the large file in flight in 30 s"
done
DOWN_NS=${EPOCHREALTIME/./}000
stop_snapshotter KILL
sleep 5
start_snapshotter
UP_NS=$(now_ns)
wait_for 30 $C snapshots --snapshotter di3fs ls || fail "containerd did not reconnect"
after_restart 4
OUT_DOWN=$DOWN_NS

step "stop the loops: every step of every container succeeded"
wait_oks held 1 120 "$UP_NS"
stop_loops $LOOPS
for n in $LOOPS; do
	echo "   $n: $(oks "$n") steps"
done
# a read of the large file that began before the 5 s outage and ended after it
spans=$(awk -v d="$OUT_DOWN" '$1 == "ok" && $3 + 0 < d + 0 && $2 + 0 > d + 5e9 {
	printf "%.1f\n", ($2 - $3) / 1e9 }' "$CTL/bigread.log")
[ -n "$spans" ] || fail "no read of the large file spanned the 5 s outage"
echo "   the large file's read across the outage took ${spans}s"
awk -v s="$spans" 'BEGIN { exit !(s >= 4.5) }' || fail "a read across the outage took only ${spans}s"
# the handle kept open: a pass spanning a restart, read by the next daemon
held_spans=0
for r in $RESTARTS; do
	n=$(awk -v d="${r%:*}" '$1 == "ok" && $3 + 0 < d + 0 && $2 + 0 > d + 0' "$CTL/held.log" | wc -l)
	held_spans=$((held_spans + n))
done
[ "$held_spans" -ge 1 ] || fail "no pass through the kept handle spanned a restart"
grep -q "reopened .* for a previous daemon's handle" "$WORK/snap.log" ||
	fail "no daemon served a handle a previous one had opened"
# changed files first read after a restart were rebuilt by the daemon of the moment
cached=$(find "$ROOT/cache/sha256" -type f | wc -l)
[ "$cached" -gt "$cached0" ] || fail "no file rebuilt after the first restart ($cached0 -> $cached)"
for r in $RESTARTS; do
	[ "$(oks fresh "${r#*:}")" -ge 1 ] || fail "no changed file read after the restart at ${r#*:}"
done
expect_eq "takeovers of the FUSE connection" 4 \
	"$(grep -c 'took over the FUSE connection' "$WORK/snap.log")"
new_container 5
if grep -E ' (error|warn) ' "$WORK/snap.log"; then
	fail "the snapshotter logged errors or warnings"
fi
echo "PASS"
