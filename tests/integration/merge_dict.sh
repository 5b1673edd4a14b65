#!/bin/bash
# cdimg merge of deltas whose small new files share a zstd dictionary: the
# merged delta keeps one dictionary (the one compressing the most of its
# blobs) with the blobs made with it as they were, and makes the other
# delta's dictionary blobs plain frames; applying it gives the last tree
# exactly, with and without --base, and merging a merged delta again too.
. "$(dirname "$0")/lib.sh"

# jget FILE KEY: a top-level field of a JSON summary.
jget() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

mapfile -t docs < <(find /usr/share/doc -name copyright | sort)
[ "${#docs[@]}" -ge 200 ] || fail "only ${#docs[@]} copyright files on this system"
mkdir -p "$WORK/v1/etc"
echo hello >"$WORK/v1/etc/a"
cp -a "$WORK/v1" "$WORK/v2"
mkdir "$WORK/v2/docs"
for i in $(seq 1 100); do cp "${docs[$i]}" "$WORK/v2/docs/c$i"; done
# v3: one file changed, another hundred new ones (a dictionary of its own)
cp -a "$WORK/v2" "$WORK/v3"
echo more >>"$WORK/v3/etc/a"
echo changed >>"$WORK/v3/docs/c5"
mkdir "$WORK/v3/more"
for i in $(seq 101 200); do cp "${docs[$i]}" "$WORK/v3/more/m$i"; done
cp -a "$WORK/v3" "$WORK/v4"
echo again >>"$WORK/v4/docs/c7"
for k in 12 23 34; do
	"$CDIMG" diff -q --codecs bsdiff "$WORK/v${k:0:1}" "$WORK/v${k:1:1}" -o "$WORK/d$k.dimg"
done
"$CDIMG" diff -q --codecs bsdiff "$WORK/v1" "$WORK/v3" -o "$WORK/d13.dimg"
for k in 12 23; do
	"$CDIMG" show "$WORK/d$k.dimg" | grep -q "dictionary:" || fail "d$k has no dictionary"
done

"$CDIMG" merge --json "$WORK/d12.dimg" "$WORK/d23.dimg" -o "$WORK/m13.dimg" >"$WORK/m13.json"
"$CDIMG" show "$WORK/m13.dimg" | grep -q "dictionary:" || fail "the merged delta has no dictionary"
kept=$(jget "$WORK/m13.json" dictionary_blobs) plain=$(jget "$WORK/m13.json" undict)
# 200 new files, 100 from each delta: one delta's kept, the other's plain
[ "$kept" -ge 50 ] || fail "only $kept blobs kept with the dictionary"
[ "$plain" -ge 50 ] || fail "only $plain blobs of the other dictionary made plain"
"$CDIMG" apply -q "$WORK/v1" "$WORK/m13.dimg" -o "$WORK/out3"
$TREECMP "$WORK/v3" "$WORK/out3" || fail "merged delta gives another tree than v3"
m=$(stat -c %s "$WORK/m13.dimg") d=$(stat -c %s "$WORK/d13.dimg")
echo "merged $m bytes ($kept blobs with the dictionary, $plain made plain), direct diff $d bytes"
[ $((m * 4)) -le $((d * 5)) ] || fail "merged delta ($m) over 1.25x the direct diff ($d)"

# With --base: the same tree (full copies tried against v1's files).
"$CDIMG" merge -q --base "$WORK/v1" "$WORK/d12.dimg" "$WORK/d23.dimg" -o "$WORK/b13.dimg"
rm -rf "$WORK/out3"
"$CDIMG" apply -q "$WORK/v1" "$WORK/b13.dimg" -o "$WORK/out3"
$TREECMP "$WORK/v3" "$WORK/out3" || fail "merged delta with --base gives another tree than v3"

# A merged delta merged again: its dictionary blobs pass through.
"$CDIMG" merge -q "$WORK/m13.dimg" "$WORK/d34.dimg" -o "$WORK/m14.dimg"
"$CDIMG" apply -q "$WORK/v1" "$WORK/m14.dimg" -o "$WORK/out4"
$TREECMP "$WORK/v4" "$WORK/out4" || fail "merged twice: another tree than v4"
# Merging is deterministic.
"$CDIMG" merge -q "$WORK/d12.dimg" "$WORK/d23.dimg" -o "$WORK/m13b.dimg"
cmp "$WORK/m13.dimg" "$WORK/m13b.dimg" || fail "merge output not deterministic"
echo "merge_dict: ok"
