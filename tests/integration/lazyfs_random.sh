#!/bin/bash
# lazyfs on random tree pairs (every entry type and metadata field) and on
# a chain v1 -> v2 -> v3 (the second delta's base is the first image);
# a corrupt blob reads as EIO and leaves nothing in the cache; allow_other
# with default_permissions: a non-root user reads what the modes allow.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lazyfs.inc"
lazy_need

# (c) random pairs; (d) a chain on the last one.
specs=()
for seed in 1 2 3 4; do
	d=$WORK/s$seed
	python3 "$SRC/tests/tools/mkrandpair.py" "$seed" "$d" --v3
	"$CDIMG" diff -q "$d/v1" "$d/v2" -o "$d/d12.dimg"
	specs+=("r$seed=$d/d12.dimg@$d/v1")
done
d=$WORK/s4
"$CDIMG" diff -q "$d/v2" "$d/v3" -o "$d/d23.dimg"
specs+=("chain=$d/d23.dimg@r4")
lazy_start random "$WORK/mnt" --cache "$WORK/cache" -- "${specs[@]}"
[ "$(ls "$WORK/mnt" | tr '\n' ' ')" = "chain r1 r2 r3 r4 " ] || fail "root lists $(ls "$WORK/mnt")"
for seed in 1 2 3 4; do
	$TREECMP "$WORK/s$seed/v2" "$WORK/mnt/r$seed" || fail "seed $seed: lazy tree differs from v2"
done
# The chain's files come from its base image's files, rebuilt or not: read
# the chain first on a fresh cache so both levels rebuild on demand.
lazy_stop random
rm -rf "$WORK/cache"
lazy_start chain "$WORK/mnt" --cache "$WORK/cache" -- "${specs[3]}" "${specs[4]}"
$TREECMP "$d/v3" "$WORK/mnt/chain" || fail "chain: lazy tree differs from v3"
$TREECMP "$d/v2" "$WORK/mnt/r4" || fail "chain: base image differs from v2"
lazy_stop chain

# (e) a corrupt blob: a pair whose one changed file is stored whole.
p=$WORK/small
mkdir -p "$p/v1" "$p/v2"
echo "kept, world-readable" >"$p/v1/public"
echo "kept, root only" >"$p/v1/secret"
chmod 644 "$p/v1/public"
chmod 600 "$p/v1/secret"
cp -a "$p/v1/." "$p/v2/"
head -c 20000 /dev/urandom >"$p/v2/fresh"
chmod 644 "$p/v2/fresh"
"$CDIMG" diff -q "$p/v1" "$p/v2" -o "$p/good.dimg"
cp "$p/good.dimg" "$p/bad.dimg"
off=$("$CDIMG" show --json "$p/good.dimg" | python3 -c '
import json, sys
e = [e for e in json.load(sys.stdin)["stored_entries"] if e["path"] == "fresh"][0]
assert e["payload"] == "full", e
print(e["blob_offset"] + e["blob_size"] // 2)')
printf '\xff' | dd of="$p/bad.dimg" bs=1 seek="$off" conv=notrunc status=none
cmp -s "$p/good.dimg" "$p/bad.dimg" && fail "corruption did not change the delta"
chmod 755 "$WORK"
lazy_start small "$WORK/mnt" --cache "$WORK/cache2" -- "good=$p/good.dimg@$p/v1" "bad=$p/bad.dimg@$p/v1"
for i in 1 2; do
	set +e
	err=$(cat "$WORK/mnt/bad/fresh" 2>&1 >/dev/null)
	rc=$?
	set -e
	[ "$rc" -ne 0 ] || fail "corrupt blob read without error"
	echo "$err" | grep -q "Input/output error" || fail "corrupt blob: expected EIO, got: $err"
done
[ "$(cache_files "$WORK/cache2")" -eq 0 ] || fail "a corrupt rebuild left a cache file"
[ -z "$(ls -A "$WORK/cache2/tmp")" ] || fail "a corrupt rebuild left a temp file"
grep -qF "image bad (delta $p/bad.dimg): fresh: rebuild failed" "$WORK/small.err" ||
	fail "no log line naming the image, its delta and the path"
cmp "$WORK/mnt/good/fresh" "$p/v2/fresh" || fail "good delta: fresh differs"
[ "$(cache_files "$WORK/cache2")" -eq 1 ] || fail "good delta: no cache file"

# (h) a non-root user: mode bits decide (default_permissions), and the
# filesystem is visible to other users at all (allow_other).
asuser() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
asuser cat "$WORK/mnt/good/public" >/dev/null || fail "nobody cannot read a 0644 file"
asuser cat "$WORK/mnt/good/fresh" >/dev/null || fail "nobody cannot read a rebuilt 0644 file"
set +e
err=$(asuser cat "$WORK/mnt/good/secret" 2>&1 >/dev/null)
rc=$?
set -e
[ "$rc" -ne 0 ] && echo "$err" | grep -q "Permission denied" || fail "nobody read a 0600 root file ($err)"
asuser sh -c "echo x >'$WORK/mnt/good/public'" 2>/dev/null && fail "write to the read-only tree succeeded"
lazy_stop small
echo "lazyfs_random: ok"
