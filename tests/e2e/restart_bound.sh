#!/bin/bash
# End-to-end: the snapshotter down for longer than restart_wait (the
# default, 30 s). A container reading the delta image in a loop waits, then
# gets EIO (never ENOTCONN, never a hang) and keeps running; a container
# stuck in a read meanwhile can be killed; once a daemon is back, the
# running containers read again and new ones start. Then the fd holder is
# killed too: the next daemon mounts anew (old containers lose the mount,
# as documented) and new containers work.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/restart.inc"

WAIT_S=30 # restart_wait's default: the config in lib.sh does not set it

step "build v1 and v2 (an 8 MiB file, a capability, 20 changed files) and the delta"
build_images 20
step "start the snapshotter and containerd; import v1 through di3fs, load the delta"
start_snapshotter
start_containerd
load_images

step "a container reads the large file in a loop, two more wait for their turn"
run_loop bigread "$BIGREAD"
run_loop stuck 'while [ ! -e /ctl/read-now ]; do sleep 0.2; done
sha256sum /opt/big.bin; echo "read $(date +%s%N)"'
run_loop later 'while [ ! -e /ctl/go ]; do sleep 0.2; done
want=$(cat /ctl/big.sha); got=$(dd if=/opt/big.bin iflag=direct bs=64k status=none | sha256sum | cut -c1-64)
if [ "$got" = "$want" ]; then echo "ok $(date +%s%N)"; else echo "BAD $(date +%s%N) $got"; fi'
wait_oks bigread 2 120
wait_for 60 sh -c "$C tasks ls | grep -q 'stuck .*RUNNING'" || fail "container stuck did not start"

step "kill -9 and no daemon for longer than restart_wait ($WAIT_S s)"
DOWN_NS=$(now_ns)
stop_snapshotter KILL
sleep 8
# a read issued now waits; its container is killed while it waits (a
# buffered read: an O_DIRECT one is sent as background requests, which the
# kernel waits out uninterruptibly, until the daemon or the bound)
touch "$CTL/read-now"
sleep 2
t0=$(date +%s)
$C tasks kill -s SIGKILL stuck >/dev/null 2>&1 || true
# its task ends (ctr run itself then waits for the snapshotter to remove
# the container's snapshot)
wait_for 15 sh -c "! $C tasks ls | grep -q '^stuck '" ||
	fail "a container waiting for a read could not be killed"
echo "   the waiting container was killed in $(($(date +%s) - t0)) s"
grep -q '^read' "$CTL/stuck.log" && fail "a read completed without a daemon: $(cat "$CTL/stuck.log")"
# the reading container's first error, seen from here (past the bound
# every file access fails, the shell's own `date` too)
until grep -q 'Input/output error' "$CTL/bigread.log"; do
	[ $(($(now_ns) - DOWN_NS)) -lt $(((WAIT_S + 10) * 1000000000)) ] ||
		fail "no read failed $((WAIT_S + 10)) s after the kill: $(tail -n 3 "$CTL/bigread.log")"
	sleep 0.2
done
after=$(awk -v n="$(now_ns)" -v d="$DOWN_NS" 'BEGIN { printf "%.1f", (n - d) / 1e9 }')
echo "   reads failed from ${after}s after the kill"
awk -v a="$after" -v w="$WAIT_S" 'BEGIN { exit !(a >= w - 1 && a <= w + 5) }' ||
	fail "reads failed ${after}s after the kill, not about ${WAIT_S}s"
grep -qi 'not connected' "$CTL/bigread.log" && fail "reads got ENOTCONN"
lines=$(wc -l <"$CTL/bigread.log")
sleep 3
[ "$(wc -l <"$CTL/bigread.log")" -gt "$lines" ] || fail "the reading container hangs"
[ "$(oks bigread $((DOWN_NS + 1000000000)))" -eq 0 ] || fail "a read succeeded without a daemon"

step "the daemon is back: the running containers read again, new ones start"
start_snapshotter
UP_NS=$(now_ns)
wait_for 30 $C snapshots --snapshotter di3fs ls || fail "containerd did not reconnect"
wait_oks bigread 2 60 "$UP_NS"
touch "$CTL/go"
wait_oks later 1 60
got=$($C run --rm --snapshotter=di3fs "$IMG" new1 sha256sum /opt/big.bin | cut -c1-64)
expect_eq "a new container's read" "$(cat "$CTL/big.sha")" "$got"
grep -q 'no more EIO' "$WORK/snap.log" || fail "the holder did not stop failing requests"
touch "$CTL/stop"
wait $LOOP_PIDS
expect_eq "the reading container's exit status" 0 "$(cat "$CTL/bigread.rc")"
expect_eq "the waiting container's exit status" 0 "$(cat "$CTL/later.rc")"

step "the fd holder dies with the daemon: the next daemon mounts anew"
stop_snapshotter KILL
stop_fuse_holder
start_snapshotter
wait_for 30 $C snapshots --snapshotter di3fs ls || fail "containerd did not reconnect"
grep -q 'detached 1 stale mount' "$WORK/snap.log" || fail "the dead mount was not detached"
got=$($C run --rm --snapshotter=di3fs "$IMG" new2 sha256sum /opt/big.bin | cut -c1-64)
expect_eq "a new container's read on the new mount" "$(cat "$CTL/big.sha")" "$got"
if grep -E ' error ' "$WORK/snap.log"; then
	fail "the snapshotter logged errors"
fi
echo "PASS"
