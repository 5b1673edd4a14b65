#!/bin/bash
# End-to-end prefetch: a delta image whose config says Entrypoint
# ["/usr/local/bin/app"] (a new dynamic program: the tree's ls), over a
# base whose libc and dynamic loader the delta changes too, loaded with
# `cdimg load`: right after the load, before any container exists, the
# snapshotter has rebuilt the program, its interpreter and its changed
# library into the cache (it logs "prefetched"). The first container then
# rebuilds nothing for its start. Removed and loaded again, the image's
# prefetch also takes the files its first run opened (the store's note).
. "$(dirname "$0")/lib.sh"

CDIMG=${CDIMG:-$(dirname "$SNAPSHOTTER")/../ctr-tools/cdimg}
[ -x "$CDIMG" ] || fail "no cdimg binary at $CDIMG"
TREES=${DI3FS_TREES:-/var/cache/di3fs/trees}
bash "$SRC/tests/assets/mktrees.sh" --out "$TREES" nginx >/dev/null
MKOCI="python3 $SRC/tests/tools/mkoci.py"
IMG=example.org/app:v2
V1=$TREES/nginx-v1
V2=$WORK/v2tree
LIBDIR=/usr/lib/x86_64-linux-gnu
APP=/usr/local/bin/app

step() { echo "== $*"; }
cache_count() { find "$ROOT/cache/sha256" -type f 2>/dev/null | wc -l; }
cached() {
	local sum
	sum=$(sha256sum "$1" | cut -c1-64)
	[ -f "$ROOT/cache/sha256/${sum:0:2}/$sum" ]
}

step "base and target images; the target's entrypoint is a new program, libc and ld.so changed"
[ -x "$V1/usr/bin/ls" ] && [ -f "$V1$LIBDIR/libc.so.6" ] || skip "the nginx tree has no ls or libc"
cp -al "$V1" "$V2"
# new inodes for what changes here: the cached trees stay untouched
cp "$V1/usr/bin/ls" "$V2$APP"
for f in "$APP" "$LIBDIR/libc.so.6" "$LIBDIR/ld-linux-x86-64.so.2"; do
	{ cat "$V2$f"; echo "changed in v2"; } >"$V2$f.new" # an ELF file with a tail still loads
	chmod 755 "$V2$f.new"
	mv "$V2$f.new" "$V2$f"
done
$MKOCI --ref example.org/app:v1 "$V1" "$WORK/v1.tar" >/dev/null
$MKOCI --ref "$IMG" --entrypoint "[\"$APP\"]" --cmd '["-d", "/"]' "$V2" "$WORK/v2.tar" >/dev/null
"$CDIMG" diff -q "$WORK/v1.tar" "$WORK/v2.tar" -o "$WORK/d.cdimg"

step "cdimg load; the prefetch runs after it, with no container"
start_snapshotter
start_containerd
$C images import --snapshotter=di3fs "$WORK/v1.tar" >/dev/null
"$CDIMG" load "$WORK/d.cdimg" --address "$CSOCK" --namespace "$NS" >"$WORK/load.out" ||
	fail "cdimg load failed: $(cat "$WORK/load.out")"
wait_for 120 grep -q "image [0-9]*: prefetched" "$WORK/snap.log" ||
	fail "no prefetch finished after the load"
grep "prefetched" "$WORK/snap.log" | sed 's/^/   /'
for f in "$APP" "$LIBDIR/libc.so.6" "$LIBDIR/ld-linux-x86-64.so.2"; do
	cached "$V2$f" || fail "$f was not prefetched into the cache"
done

step "the first container rebuilds nothing for its start"
before=$(cache_count)
out=$($C run --rm --snapshotter=di3fs "$IMG" p1 2>&1) || fail "the entrypoint failed: $out"
[ "$out" = / ] || fail "the entrypoint (ls -d /) printed: $out"
expect_eq "cache files after the first run" "$before" "$(cache_count)"

step "removed and loaded again: the run's opened files join the seeds"
$C images rm --sync "$IMG" >/dev/null
wait_for 30 sh -c "! ls '$ROOT/fuse' | grep -q ." || fail "the delta image was not removed"
"$CDIMG" load "$WORK/d.cdimg" --address "$CSOCK" --namespace "$NS" >"$WORK/load2.out" ||
	fail "second cdimg load failed: $(cat "$WORK/load2.out")"
wait_for 60 sh -c "grep 'prefetch of [0-9]* seeds queued' '$WORK/snap.log' | sed -n 2p | grep -q ." ||
	fail "no second prefetch"
n=$(grep -o 'prefetch of [0-9]* seeds queued' "$WORK/snap.log" | sed -n 2p | tr -dc 0-9)
[ "$n" -gt 1 ] || fail "the second load's prefetch has $n seeds: the first run's files are missing"
echo "   second load: $n seeds (the label's one and the first run's files)"
echo "prefetch: ok"
