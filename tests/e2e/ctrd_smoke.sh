#!/bin/bash
# End-to-end: the ctrd client library against a private containerd
# (tests/e2e/ctrd_smoke.c checks each call's result and errors), then what
# containerd made of it, seen with ctr and, past containerd, by the
# snapshotter: which labels reach it on Prepare and on Commit.
. "$(dirname "$0")/lib.sh"

SMOKE=${CTRD_SMOKE:-$SRC/build/tests/e2e/ctrd_smoke}
[ -x "$SMOKE" ] || fail "no ctrd_smoke binary at $SMOKE"
start_snapshotter
start_containerd

echo "== ctrd calls"
# what the lease holds, seen by containerd and by the snapshotter
inspect="$C snapshots --snapshotter di3fs ls >$WORK/snaps.txt &&
	$SNAPCTL --address $SOCK list >$WORK/snapctl.txt 2>/dev/null"
"$SMOKE" "$CSOCK" "$NS" di3fs "$inspect" >"$WORK/smoke.out" || fail "ctrd_smoke failed"
blob=$(sed -n 's/^blob //p' "$WORK/smoke.out")
[ -n "$blob" ] || fail "ctrd_smoke printed no digest"

echo "== content labels set on write and on rewriting an existing blob"
row=$($C content ls | grep "^$blob")
echo "$row" | grep -q "di3fs.test/a=1" || fail "label from the first write missing: $row"
echo "$row" | grep -q "di3fs.test/b=2" || fail "label from the second write missing: $row"
expect_eq "blob size" $(((3 << 20) + 12345)) "$($C content get "$blob" | wc -c)"

echo "== the image record"
$C images ls | grep -q "^example.org/smoke:1 .* $blob " || fail "image: $($C images ls)"

echo "== snapshots: through containerd, labels filtered before the snapshotter"
grep -Eq "^smoke-active +Active" "$WORK/snaps.txt" || fail "no smoke-active: $(cat "$WORK/snaps.txt")"
grep -Eq "^smoke-committed +Committed" "$WORK/snaps.txt" || fail "no smoke-committed"
sed 's/^/  snapshotter has: /' "$WORK/snapctl.txt"
grep -A3 "/smoke-active$" "$WORK/snapctl.txt" | grep -q "label containerd.io/snapshot/di3fs.smoke=prepare" ||
	fail "Prepare's containerd.io/snapshot/ label did not reach the snapshotter"
grep -q "not-forwarded" "$WORK/snapctl.txt" && fail "containerd forwarded a label it should not"
grep -A3 "/smoke-committed$" "$WORK/snapctl.txt" | grep -q "label containerd.io/snapshot/di3fs.smoke=commit" ||
	fail "Commit's label did not reach the snapshotter"
[ -z "$($C leases ls -q)" ] || fail "lease left: $($C leases ls)"

echo "== with the lease gone, garbage collection removes the unreferenced snapshots"
$C images rm --sync example.org/smoke:1 >/dev/null
wait_for 30 test "$(count_snapshots)" -eq 0 || fail "snapshots left: $($C snapshots --snapshotter di3fs ls)"
wait_for 30 sh -c "! $C content ls | grep -q '^$blob'" || fail "the blob outlived its lease"

stop_containerd
stop_snapshotter TERM
echo PASS
