#!/bin/bash
# End-to-end: a private containerd imports a real two-layer image into
# di3fs-snapshotter and runs containers from it with runc: layer contents and
# whiteouts, writes landing in the container's upper dir, Usage, labels,
# protocol errors, concurrency, kill -9 and restart, and GC at the end.
. "$(dirname "$0")/lib.sh"

[ -x /bin/busybox ] || skip "busybox-static is not installed"
IMG=di3fs.test/e2e:basic
RUN="$C run --rm --snapshotter=di3fs"

step() {
	echo "== $*"
}

step "start the snapshotter (config file) and a private containerd"
start_snapshotter
start_containerd
ctr -a "$CSOCK" plugins ls | grep -E "io.containerd.snapshotter.v1 +di3fs .* ok" >/dev/null ||
	fail "containerd did not load the di3fs proxy plugin"

step "a second daemon on the same socket refuses to start and leaves it alone"
inode=$(stat -c %i "$SOCK")
rc=0
"$SNAPSHOTTER" --root "$WORK/root2" --address "$SOCK" 2>"$WORK/second.log" || rc=$?
expect_eq "second daemon exit code" 1 "$rc"
grep -q "is locked" "$WORK/second.log" || fail "second daemon did not report the lock"
expect_eq "socket inode" "$inode" "$(stat -c %i "$SOCK")"
rc=0
"$SNAPSHOTTER" --root "$ROOT" --address "$WORK/other.sock" 2>/dev/null || rc=$?
expect_eq "second daemon on the same root" 1 "$rc"

step "import a two-layer OCI image through di3fs"
python3 "$SRC/tests/e2e/mkimage.py" "$WORK/image.tar" "$IMG"
$C images import --snapshotter=di3fs "$WORK/image.tar" >/dev/null
$C images ls -q | grep -qx "$IMG" || fail "image not imported"
expect_eq "committed snapshots after import" 2 \
	"$($C snapshots --snapshotter di3fs ls | grep -c ' Committed')"
expect_eq "snapshot directories" 2 "$(ls "$ROOT/snapshots" | wc -l)"

step "a container sees layer 2 over layer 1, whiteouts and opaque dirs applied"
want="hello from layer 2
layer two was here
new.conf
gone-absent"
script='cat /etc/hello /etc/layer2.txt; ls /etc/conf.d; test -e /etc/gone && echo gone-present || echo gone-absent'
got=$($RUN "$IMG" c1 sh -c "$script")
expect_eq "container output" "$want" "$got"

step "writes land in the container's own upper dir"
$C run --snapshotter=di3fs "$IMG" w1 sh -c \
	'echo written-by-w1 >/data/w1.txt && dd if=/dev/zero of=/data/blob bs=1024 count=512 2>/dev/null && rm /etc/hello'
uppers=$(grep -l written-by-w1 "$ROOT"/snapshots/*/fs/data/w1.txt 2>/dev/null | wc -l)
expect_eq "upper dirs holding w1's file" 1 "$uppers"
upper=$(dirname "$(dirname "$(grep -l written-by-w1 "$ROOT"/snapshots/*/fs/data/w1.txt)")")
[ -c "$upper/etc/hello" ] || fail "deleting a lower file did not leave a whiteout in $upper"
[ -d "$(dirname "$upper")/work" ] || fail "no work dir next to $upper"
$C snapshots --snapshotter di3fs info w1 | grep -q '"Kind": "Active"' || fail "w1 is not active"
$C snapshots --snapshotter di3fs mounts /mnt w1 | grep -q "upperdir=$upper" ||
	fail "w1's mounts do not name its upper dir"

step "Usage reports w1's real disk use, Update reaches the snapshotter"
usage=$("$SNAPCTL" --address "$SOCK" usage "$NS/$(grep -o '[0-9]*/w1' "$WORK/snap.log" | head -n1)")
size=$(echo "$usage" | sed -n 's/^size=\([0-9]*\) .*/\1/p')
inodes=$(echo "$usage" | sed -n 's/.* inodes=\([0-9]*\)$/\1/p')
[ "${size:-0}" -ge $((512 * 1024)) ] || fail "usage size $size below the 512 KiB written"
[ "${inodes:-0}" -ge 4 ] || fail "usage inodes $inodes too few"
$C snapshots --snapshotter di3fs usage w1 | grep -q w1 || fail "ctr snapshots usage failed"
$C snapshots --snapshotter di3fs label w1 containerd.io/snapshot/e2e=yes >/dev/null
grep -q 'rpc Update key=".*/w1" -> OK' "$WORK/snap.log" || fail "no Update reached the snapshotter"

step "protocol errors map to gRPC status codes, stalled clients block nothing"
top=$(grep -o 'name="[^"]*"' "$WORK/snap.log" | tail -n1 | cut -d'"' -f2)
w1key=$(grep -o 'key="[^"]*/w1"' "$WORK/snap.log" | head -n1 | cut -d'"' -f2)
"$SNAPCTL" --address "$SOCK" stat "$top" | grep -q '^Committed' || fail "Stat of $top"
raw() {
	"$SNAPCTL" --address "$SOCK" raw "$@" | cut -d' ' -f1
}
expect_eq "malformed protobuf" 3 "$(raw Prepare 12ff)"
expect_eq "unknown method" 12 "$(raw Frobnicate 0a00)"
expect_eq "Stat of a missing key" 5 "$(raw Stat "$(printf '\x12\x07missing' | od -An -tx1 | tr -d ' \n')")"
expect_eq "Mounts of a committed snapshot" 9 \
	"$(raw Mounts "12$(printf '%02x' ${#top})$(printf '%s' "$top" | od -An -tx1 | tr -d ' \n')")"
expect_eq "Remove of a snapshot with children" 9 \
	"$(raw Remove "12$(printf '%02x' ${#top})$(printf '%s' "$top" | od -An -tx1 | tr -d ' \n')")"
# A NUL byte in a string (C would end it there: "k\0b" and "k" would name
# the same snapshot) is refused, in keys, names, labels and filters alike.
nul() {
	local got
	got=$("$SNAPCTL" --address "$SOCK" raw "$2" "$3")
	case "$got" in
	"3 a string field holds a NUL byte"*) ;;
	*) fail "$1: expected INVALID_ARGUMENT for the NUL byte, got [$got]" ;;
	esac
}
expect_eq "Prepare of key k" 0 "$(raw Prepare 12016b)"
nul "Prepare of key k\\0b" Prepare 12036b0062
nul "Stat of key k\\0a" Stat 12036b0061
nul "Commit of key k as n\\0" Commit 12026e001a016b
nul "Prepare with a label value x\\0y" Prepare 12026b3222080a01611203780079
nul "List with a filter holding a NUL" List 1203610062
"$SNAPCTL" --address "$SOCK" stat k | grep -q '^Active' || fail "key k was not prepared"
expect_eq "Remove of key k" 0 "$(raw Remove 12016b)"
"$SNAPCTL" --address "$SOCK" stall 24 "$top" >/dev/null || fail "Stat blocked by stalled calls"
"$SNAPCTL" --address "$SOCK" list 'kind==committed' 2>"$WORK/list.err" | grep -c Committed |
	grep -qx 2 || fail "filtered List"
"$SNAPCTL" --address "$SOCK" list 'labels."containerd.io/snapshot/e2e"==yes' 2>/dev/null |
	grep -q "$w1key" || fail "List by label"

step "a slow Usage does not hold up other calls"
mkdir -p "$upper/many"
python3 -c "
import os, sys
d = sys.argv[1]
for i in range(150000):
    open(os.path.join(d, str(i)), 'w').close()
" "$upper/many"
"$SNAPCTL" --address "$SOCK" race 2 "$w1key" "$top" || fail "Stat waited for slow Usage calls"
rm -rf "$upper/many"

step "kill -9 the snapshotter, restart it: every snapshot is still there"
before=$("$SNAPCTL" --address "$SOCK" list 2>/dev/null | sort)
stop_snapshotter 9
start_snapshotter
after=$("$SNAPCTL" --address "$SOCK" list 2>/dev/null | sort)
expect_eq "snapshots across kill -9" "$before" "$after"
wait_for 30 $C snapshots --snapshotter di3fs usage w1 || fail "containerd did not reconnect"
got=$($RUN "$IMG" c2 sh -c "$script")
expect_eq "container output after restart" "$want" "$got"
[ -f "$upper/data/w1.txt" ] || fail "w1's upper dir lost across the restart"

step "four containers at once"
pids=
for i in 1 2 3 4; do
	($RUN "$IMG" "p$i" sh -c "echo p$i; cat /etc/layer2.txt" >"$WORK/p$i.out" 2>&1
	 echo $? >"$WORK/p$i.rc") &
	pids="$pids $!"
done
wait $pids # not a bare wait: the daemon and containerd are our children too
for i in 1 2 3 4; do
	expect_eq "parallel container p$i exit" 0 "$(cat "$WORK/p$i.rc")"
	expect_eq "parallel container p$i output" "p$i
layer two was here" "$(cat "$WORK/p$i.out")"
done

step "removing the container and the image lets GC remove every snapshot"
$C containers rm w1
$C images rm --sync "$IMG" >/dev/null
wait_for 60 test "$(count_snapshots)" -eq 0 || fail "snapshots left after GC: $(count_snapshots)"
wait_for 60 test -z "$(ls "$ROOT/snapshots")" ||
	fail "directories left after Cleanup: $(ls "$ROOT/snapshots")"
expect_eq "snapshots the daemon still has" "" "$("$SNAPCTL" --address "$SOCK" list 2>/dev/null)"
grep -q 'rpc Cleanup -> OK' "$WORK/snap.log" || fail "containerd never called Cleanup"

step "stop: SIGTERM ends the daemon cleanly and removes its socket"
stop_containerd
stop_snapshotter TERM
[ ! -e "$SOCK" ] || fail "socket left behind"
if grep -E ' (error|warn) ' "$WORK/snap.log"; then
	fail "the snapshotter logged errors or warnings"
fi
echo "PASS"
