#!/bin/bash
# lazyfs's cache: files rebuilt by one run are reused by the next (no
# second rebuild, the files untouched); a small --cache-max evicts unused
# files and the tree stays right; 8 readers opening the same changed file
# at once rebuild it once and all read the right bytes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lazyfs.inc"
lazy_need

d=$WORK/pair
python3 "$SRC/tests/tools/mkrandpair.py" 5 "$d"
# One big changed file, so that concurrent opens overlap its rebuild.
python3 - "$d" <<'PY'
import os, random, sys
d = sys.argv[1]
r = random.Random(11)
data = bytearray(r.randbytes(4096)) * 6000
open(os.path.join(d, "v1/usr/big"), "wb").write(data)
for i in range(0, len(data), 65536):
    data[i] ^= 0xFF
open(os.path.join(d, "v2/usr/big"), "wb").write(data)
PY
touch -d @1700000000 "$d/v1/usr" "$d/v2/usr"
"$CDIMG" diff -q "$d/v1" "$d/v2" -o "$WORK/d.dimg"
n=$(changed_files "$WORK/d.dimg" sha256 | sort -u | wc -l)
spec="img=$WORK/d.dimg@$d/v1"

# (g) 8 parallel readers of one changed file.
lazy_start par "$WORK/mnt" --cache "$WORK/cache" -- "$spec"
want=$(sha256sum <"$d/v2/usr/big")
readers=()
for i in 1 2 3 4 5 6 7 8; do
	sha256sum <"$WORK/mnt/img/usr/big" >"$WORK/sum$i" &
	readers+=($!)
done
wait "${readers[@]}"
for i in 1 2 3 4 5 6 7 8; do
	[ "$(cat "$WORK/sum$i")" = "$want" ] || fail "reader $i got $(cat "$WORK/sum$i")"
done
[ "$(cache_files "$WORK/cache")" -eq 1 ] || fail "8 readers left $(cache_files "$WORK/cache") cache files"
lazy_stop par
[ "$(lazy_stat par rebuilds)" -eq 1 ] || fail "8 readers: $(lazy_stat par rebuilds) rebuilds"

# (f) reuse across a restart: everything rebuilt once, then never again.
lazy_start first "$WORK/mnt" --cache "$WORK/cache" -- "$spec"
$TREECMP "$d/v2" "$WORK/mnt/img" || fail "first run: lazy tree differs from v2"
lazy_stop first
files=$(cache_files "$WORK/cache")
[ "$(lazy_stat first rebuilds)" -eq $((files - 1)) ] || fail "first run: $(lazy_stat first rebuilds) rebuilds, $files files"
(cd "$WORK/cache" && find sha256 -type f -printf '%p %s %T@\n' | sort) >"$WORK/before"
lazy_start second "$WORK/mnt" --cache "$WORK/cache" -- "$spec"
$TREECMP "$d/v2" "$WORK/mnt/img" || fail "second run: lazy tree differs from v2"
lazy_stop second
[ "$(lazy_stat second rebuilds)" -eq 0 ] || fail "second run rebuilt $(lazy_stat second rebuilds) files"
(cd "$WORK/cache" && find sha256 -type f -printf '%p %s %T@\n' | sort) >"$WORK/after"
cmp "$WORK/before" "$WORK/after" || fail "the cache changed across a restart"
[ "$files" -eq "$n" ] || fail "$files cache files for $n distinct changed files"
# A killed build's temporary (named after its writer, dimg/fileio.h) is
# deleted at start; a file not named so is not the cache's to delete.
dead=$(sh -c 'echo $$') # a PID that has exited
touch "$WORK/cache/tmp/$dead-1-abcdef" "$WORK/cache/tmp/leftover"

# Eviction: with a 1-byte limit only open files stay; the tree stays right.
lazy_start evict "$WORK/mnt" --cache "$WORK/cache" --cache-max 1 -- "$spec"
[ ! -e "$WORK/cache/tmp/$dead-1-abcdef" ] || fail "a killed build's temporary not deleted at start"
[ -e "$WORK/cache/tmp/leftover" ] || fail "a file not named after a writer was deleted from tmp/"
rm -f "$WORK/cache/tmp/leftover"
[ "$(cache_files "$WORK/cache")" -eq 0 ] || fail "start over the limit kept $(cache_files "$WORK/cache") files"
exec 7<"$WORK/mnt/img/usr/big"
$TREECMP "$d/v2" "$WORK/mnt/img" || fail "evicting: lazy tree differs from v2"
big=$(sha256sum <"$d/v2/usr/big" | cut -d' ' -f1)
[ -e "$WORK/cache/sha256/$(echo "$big" | cut -c1-2)/$big" ] ||
	fail "an open cache file was evicted"
[ "$(cache_files "$WORK/cache")" -le 2 ] || fail "evicting: $(cache_files "$WORK/cache") files left"
exec 7<&-
lazy_stop evict
[ "$(lazy_stat evict evictions)" -ge "$n" ] || fail "only $(lazy_stat evict evictions) evictions"

# A killed daemon leaves a dead mount (ENOTCONN); the next start clears it.
lazy_start killed "$WORK/mnt" --cache "$WORK/cache" -- "$spec"
kill -KILL "$LAZY_PID"
wait "$LAZY_PID" 2>/dev/null || true
LAZY_PIDS=$(echo "$LAZY_PIDS" | sed "s/ $LAZY_PID\b//")
set +e
err=$(stat "$WORK/mnt/img" 2>&1)
set -e
echo "$err" | grep -q "not connected" || fail "no dead mount after kill -9: $err"
lazy_start restarted "$WORK/mnt" --cache "$WORK/cache" -- "$spec"
grep -q "stale mount" "$WORK/restarted.err" || fail "stale mount not reported"
cmp "$WORK/mnt/img/usr/big" "$d/v2/usr/big" || fail "after a stale mount: usr/big differs"
lazy_stop restarted
echo "lazyfs_cache: ok ($n changed files, $files cached)"
