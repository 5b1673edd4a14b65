#!/bin/bash
# cdimg merge on a real three-version chain (Debian minbase + openssl and
# libssl3 3.0.17, 3.0.20, 3.0.22, built by tests/assets/mktrees.sh):
# applying the merged delta gives v3 exactly and what the chain gives; the
# merged delta stays within 1.25x of a direct diff v1 -> v3 (default
# codecs), with the chain made for merging (--codecs bsdiff,gzip, merged
# without any image) and with default deltas merged with --base; default
# deltas merged without any image apply too (chain patches).
. "$(dirname "$0")/lib.sh"

TREES=${DI3FS_TREES:-/var/cache/di3fs/trees}
bash "$SRC/tests/assets/mktrees.sh" --out "$TREES" openssl >/dev/null
v1=$TREES/openssl-v1 v2=$TREES/openssl-v2 v3=$TREES/openssl-v3
for v in "$v1" "$v2" "$v3"; do [ -d "$v" ] || fail "$v missing after mktrees.sh"; done

# within_ratio MERGED DIRECT: MERGED's size <= 1.25 x DIRECT's.
within_ratio() {
	local m d
	m=$(stat -c %s "$1")
	d=$(stat -c %s "$2")
	echo "${1##*/}: $m bytes, direct ${2##*/}: $d bytes"
	[ $((m * 4)) -le $((d * 5)) ] || fail "${1##*/} ($m) is over 1.25x the direct diff ($d)"
}

# jget FILE KEY...: a field of a JSON summary (KEY, or KEY's KEY ...).
jget() { python3 -c 'import functools, json, sys; print(functools.reduce(lambda d, k: d[k], sys.argv[2:], json.load(open(sys.argv[1]))))' "$@"; }

check() {
	local m=$1 name=$2
	rm -rf "$WORK/out"
	"$CDIMG" apply -q "$v1" "$m" -o "$WORK/out"
	$TREECMP "$v3" "$WORK/out" || fail "$name: merged delta over v1 differs from v3"
}

# Deltas made for merging (bsdiff, and gzip-recompress with bsdiff inner
# patches: every pair composes), merged without any image, against the
# direct diff with the default codecs.
"$CDIMG" diff -q --codecs bsdiff,gzip "$v1" "$v2" -o "$WORK/b12.dimg"
"$CDIMG" diff -q --codecs bsdiff,gzip "$v2" "$v3" -o "$WORK/b23.dimg"
"$CDIMG" diff -q "$v1" "$v3" -o "$WORK/d13.dimg"
"$CDIMG" merge --json "$WORK/b12.dimg" "$WORK/b23.dimg" -o "$WORK/bm13.dimg" >"$WORK/bm.json"
check "$WORK/bm13.dimg" "bsdiff,gzip chain"
within_ratio "$WORK/bm13.dimg" "$WORK/d13.dimg"
chained=$(jget "$WORK/bm.json" patches chain) composed=$(jget "$WORK/bm.json" composed)
[ "$chained" = 0 ] || fail "bsdiff,gzip chain: $chained files left as a chain of patches"
[ "$composed" -gt 150 ] || fail "bsdiff,gzip chain: only $composed patches composed"
# And what the chain gives, step by step, is the same tree.
"$CDIMG" apply -q "$v1" "$WORK/b12.dimg" -o "$WORK/s2"
"$CDIMG" apply -q "$WORK/s2" "$WORK/b23.dimg" -o "$WORK/s3"
rm -rf "$WORK/out"
"$CDIMG" apply -q "$v1" "$WORK/bm13.dimg" -o "$WORK/out"
$TREECMP "$WORK/s3" "$WORK/out" || fail "merged delta differs from applying the chain"
rm -rf "$WORK/s2" "$WORK/s3"

# Default deltas (zstdref inner patches): merged without any image, what
# does not compose is kept as a chain patch; with --base, re-encoded.
"$CDIMG" diff -q "$v1" "$v2" -o "$WORK/d12.dimg"
"$CDIMG" diff -q "$v2" "$v3" -o "$WORK/d23.dimg"
"$CDIMG" merge --json "$WORK/d12.dimg" "$WORK/d23.dimg" -o "$WORK/dn13.dimg" >"$WORK/dn.json"
check "$WORK/dn13.dimg" "default chain without a base"
chained=$(jget "$WORK/dn.json" patches chain)
[ "$chained" -gt 0 ] || fail "default chain: no chain patch made (zstdref inner patches expected)"
echo "default chain merged without a base: $(stat -c %s "$WORK/dn13.dimg") bytes, $chained chain patches"
"$CDIMG" merge -q --base "$v1" "$WORK/d12.dimg" "$WORK/d23.dimg" -o "$WORK/dm13.dimg"
check "$WORK/dm13.dimg" "default chain with --base"
within_ratio "$WORK/dm13.dimg" "$WORK/d13.dimg"
[ "$(stat -c %s "$WORK/dm13.dimg")" -lt "$(stat -c %s "$WORK/dn13.dimg")" ] ||
	fail "--base did not make the merged delta smaller"

# libc6: apt lists two versions (bookworm, bookworm-security); an upgrade
# merged with the downgrade back is a delta from v1 to v1 that, applied,
# gives v1 again, and is smaller than either step (compressed files such as
# NEWS.gz change whole, so their composed patch is all new bytes: no merge
# can know they came back without v1).
bash "$SRC/tests/assets/mktrees.sh" --out "$TREES" libc6 >/dev/null
l1=$TREES/libc6-v1 l2=$TREES/libc6-v2
"$CDIMG" diff -q --codecs bsdiff "$l1" "$l2" -o "$WORK/l12.dimg"
"$CDIMG" diff -q --codecs bsdiff "$l2" "$l1" -o "$WORK/l21.dimg"
"$CDIMG" merge -q "$WORK/l12.dimg" "$WORK/l21.dimg" -o "$WORK/l11.dimg"
rm -rf "$WORK/out"
"$CDIMG" apply -q "$l1" "$WORK/l11.dimg" -o "$WORK/out"
$TREECMP "$l1" "$WORK/out" || fail "libc6 up and down again: differs from v1"
m=$(stat -c %s "$WORK/l11.dimg") s=$(stat -c %s "$WORK/l12.dimg")
echo "libc6 v1->v2->v1 merged: $m bytes (one step: $s)"
[ "$m" -lt "$s" ] || fail "libc6 round trip merged ($m) not under one step ($s)"
# Up and back down (v1 -> v2 -> v3 -> v1) merged with --base: every file
# is v1's again, so the merged delta stores no blob at all.
"$CDIMG" diff -q "$v3" "$v1" -o "$WORK/d31.dimg"
"$CDIMG" merge -q --base "$v1" "$WORK/d12.dimg" "$WORK/d23.dimg" "$WORK/d31.dimg" -o "$WORK/m11.dimg"
rm -rf "$WORK/out"
"$CDIMG" apply -q "$v1" "$WORK/m11.dimg" -o "$WORK/out"
$TREECMP "$v1" "$WORK/out" || fail "openssl up and down again: differs from v1"
blobs=$("$CDIMG" show --json "$WORK/m11.dimg" | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin)["stored_entries"] if e.get("blob_size")))')
echo "openssl v1 -> v3 -> v1 merged with --base: $(stat -c %s "$WORK/m11.dimg") bytes, $blobs blobs"
[ "$blobs" = 0 ] || fail "openssl round trip merged with --base still stores $blobs blobs"
echo "merge_debian: ok"
