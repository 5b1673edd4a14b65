#!/bin/bash
# A broken middle link of a chain v1 -> v2 -> v3 served by lazyfs: the
# v1 -> v2 delta's patch of a file changed in both steps is damaged (its
# index intact, so the chain still loads). Reading that file in v3 fails
# with EIO, never wrong bytes; nothing is cached for it; the log names the
# file and both deltas (the damaged one as the cause); files that do not
# need the damaged patch still read right; with the good delta back the
# same cache serves v3 right. A delta damaged beyond loading fails at start
# (exit 3, naming it).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lazyfs.inc"
lazy_need

mkdir -p "$WORK/v1/usr" "$WORK/v1/etc"
python3 - "$WORK/v1" <<'PY'
import random, sys
r = random.Random(7)
for name, n in (("usr/data", 300000), ("etc/ok3", 50000), ("etc/ok2", 40000)):
    open("%s/%s" % (sys.argv[1], name), "wb").write(bytes(r.randrange(8) for _ in range(n)))
PY
# edit FILE OFFSET TEXT: overwrites bytes in place
edit() { printf '%s' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
cp -a "$WORK/v1" "$WORK/v2"
edit "$WORK/v2/usr/data" 1000 step2
edit "$WORK/v2/etc/ok2" 500 step2
cp -a "$WORK/v2" "$WORK/v3"
edit "$WORK/v3/usr/data" 200000 step3
edit "$WORK/v3/etc/ok3" 100 step3
"$CDIMG" diff -q "$WORK/v1" "$WORK/v2" -o "$WORK/d12.dimg"
"$CDIMG" diff -q "$WORK/v2" "$WORK/v3" -o "$WORK/d23.dimg"

# the middle of usr/data's patch blob in v1 -> v2 (a patch in both steps)
blob_mid() {
	"$CDIMG" show --json "$1" | python3 -c '
import json, sys
e = {e["path"]: e for e in json.load(sys.stdin)["stored_entries"]}[sys.argv[1]]
assert e["payload"] == "patch", e
print(e["blob_offset"] + e["blob_size"] // 2)' "$2"
}
blob_mid "$WORK/d23.dimg" usr/data >/dev/null || fail "usr/data is not a patch in v2 -> v3"
off=$(blob_mid "$WORK/d12.dimg" usr/data)
cp "$WORK/d12.dimg" "$WORK/bad12.dimg"
printf '\xff' | dd of="$WORK/bad12.dimg" bs=1 seek="$off" conv=notrunc status=none
cmp -s "$WORK/d12.dimg" "$WORK/bad12.dimg" && fail "corruption did not change the delta"

# read_errno FILE: "ok SHA256" or the errno name of the failed open/read
read_errno() { python3 "$SRC/tests/tools/readfile.py" "$1"; }

lazy_start chain "$WORK/mnt" --cache "$WORK/cache" -- \
	"v2=$WORK/bad12.dimg@$WORK/v1" "v3=$WORK/d23.dimg@v2"
# first thing read: v3's file, rebuilt through the damaged v2 patch
for i in 1 2; do
	got=$(read_errno "$WORK/mnt/v3/usr/data")
	[ "$got" = EIO ] || fail "v3 usr/data through a damaged v2 patch, read $i: $got, expected EIO"
done
[ "$(cache_files "$WORK/cache")" -eq 0 ] || fail "a failed chain rebuild left $(cache_files "$WORK/cache") cache files"
[ -z "$(ls -A "$WORK/cache/tmp")" ] || fail "a failed chain rebuild left a temp file"
grep -qF "image v2 (delta $WORK/bad12.dimg): usr/data: rebuild failed: Bad message" "$WORK/chain.err" ||
	fail "no log line naming the damaged delta and the file: $(cat "$WORK/chain.err")"
grep -qF "image v3 (delta $WORK/d23.dimg): usr/data: rebuild failed: its base file usr/data in image v2 (delta $WORK/bad12.dimg) cannot be opened" \
	"$WORK/chain.err" || fail "v3's log line does not point at its base: $(cat "$WORK/chain.err")"
grep "image v3 (delta $WORK/d23.dimg)" "$WORK/chain.err" | grep -q "corrupt delta" &&
	fail "the log blames v3's good delta: $(cat "$WORK/chain.err")"
# what does not need the damaged patch reads right, in both images
for f in etc/ok3 etc/ok2; do
	want="ok $(sha256sum <"$WORK/v3/$f" | cut -d' ' -f1)"
	got=$(read_errno "$WORK/mnt/v3/$f")
	[ "$got" = "$want" ] || fail "v3 $f: expected [$want], got [$got]"
done
[ "$(read_errno "$WORK/mnt/v2/usr/data")" = EIO ] || fail "v2 usr/data from a damaged patch did not give EIO"
lazy_stop chain
[ "$(lazy_stat chain rebuilds)" -eq 2 ] || fail "$(lazy_stat chain rebuilds) rebuilds, expected 2 (ok2 in v2, ok3 in v3)"

# the good delta back, same cache: v3 reads right (nothing wrong was kept)
lazy_start good "$WORK/mnt" --cache "$WORK/cache" -- \
	"v2=$WORK/d12.dimg@$WORK/v1" "v3=$WORK/d23.dimg@v2"
cmp "$WORK/mnt/v3/usr/data" "$WORK/v3/usr/data" || fail "v3 usr/data with the good delta differs"
lazy_stop good
[ "$(lazy_stat good rebuilds)" -eq 2 ] || fail "good chain: $(lazy_stat good rebuilds) rebuilds, expected 2 (usr/data in v2 and v3)"

# the middle delta damaged beyond loading (cut inside its index): refused at start
head -c "$(($(stat -c %s "$WORK/d12.dimg") - 10))" "$WORK/d12.dimg" >"$WORK/cut12.dimg"
set +e
timeout 30 "$LAZYMOUNT" --cache "$WORK/cache" "$WORK/mnt" "v2=$WORK/cut12.dimg@$WORK/v1" \
	"v3=$WORK/d23.dimg@v2" >"$WORK/cut.out" 2>"$WORK/cut.err"
rc=$?
set -e
[ "$rc" -eq 3 ] || fail "a cut middle delta: exit $rc, expected 3: $(cat "$WORK/cut.err")"
grep -qF "$WORK/cut12.dimg" "$WORK/cut.err" || fail "the error does not name the cut delta: $(cat "$WORK/cut.err")"
! grep -q " $WORK/mnt fuse" /proc/mounts || fail "still mounted after a failed start"
echo "lazyfs_chain_corrupt: ok"
