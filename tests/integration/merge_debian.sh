#!/bin/bash
# cdimg merge on a real three-version chain (Debian minbase + openssl and
# libssl3 3.0.17, 3.0.20, 3.0.22, built by tests/assets/mktrees.sh):
# applying the merged delta gives v3 exactly and what the chain gives; the
# merged delta stays within 1.25x of a direct diff v1 -> v3, with the
# chain made for merging (--codecs bsdiff, merged without any image) and
# with default deltas merged with --base.
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

check() {
	local m=$1 name=$2
	rm -rf "$WORK/out"
	"$CDIMG" apply -q "$v1" "$m" -o "$WORK/out"
	$TREECMP "$v3" "$WORK/out" || fail "$name: merged delta over v1 differs from v3"
}

# Deltas made for merging: bsdiff only, merged without any image.
"$CDIMG" diff -q --codecs bsdiff "$v1" "$v2" -o "$WORK/b12.dimg"
"$CDIMG" diff -q --codecs bsdiff "$v2" "$v3" -o "$WORK/b23.dimg"
"$CDIMG" diff -q --codecs bsdiff "$v1" "$v3" -o "$WORK/b13.dimg"
"$CDIMG" diff -q "$v1" "$v3" -o "$WORK/d13.dimg"
"$CDIMG" merge -q "$WORK/b12.dimg" "$WORK/b23.dimg" -o "$WORK/bm13.dimg"
check "$WORK/bm13.dimg" "bsdiff chain"
# like for like: a bsdiff-only chain against a bsdiff-only direct diff (the
# default codecs' gzip patches compose only with --base: checked below)
within_ratio "$WORK/bm13.dimg" "$WORK/b13.dimg"
# And what the chain gives, step by step, is the same tree.
"$CDIMG" apply -q "$v1" "$WORK/b12.dimg" -o "$WORK/s2"
"$CDIMG" apply -q "$WORK/s2" "$WORK/b23.dimg" -o "$WORK/s3"
rm -rf "$WORK/out"
"$CDIMG" apply -q "$v1" "$WORK/bm13.dimg" -o "$WORK/out"
$TREECMP "$WORK/s3" "$WORK/out" || fail "merged delta differs from applying the chain"
rm -rf "$WORK/s2" "$WORK/s3"

# Default deltas (zstdref too): merged with --base.
"$CDIMG" diff -q "$v1" "$v2" -o "$WORK/d12.dimg"
"$CDIMG" diff -q "$v2" "$v3" -o "$WORK/d23.dimg"
"$CDIMG" merge -q --base "$v1" "$WORK/d12.dimg" "$WORK/d23.dimg" -o "$WORK/dm13.dimg"
check "$WORK/dm13.dimg" "default chain with --base"
within_ratio "$WORK/dm13.dimg" "$WORK/d13.dimg"

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
echo "merge_debian: ok"
