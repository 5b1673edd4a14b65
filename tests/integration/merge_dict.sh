#!/bin/bash
# cdimg merge of a delta whose small new files share a zstd dictionary: the
# merged delta carries no dictionary, so those blobs are recompressed on
# their own; applying it gives the last tree exactly.
. "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/v1/etc"
echo hello >"$WORK/v1/etc/a"
cp -a "$WORK/v1" "$WORK/v2"
mkdir "$WORK/v2/docs"
i=0
for f in $(find /usr/share/doc -name copyright | sort | head -n 300); do
	i=$((i + 1))
	cp "$f" "$WORK/v2/docs/c$i"
done
[ "$i" -ge 100 ] || fail "only $i copyright files on this system"
cp -a "$WORK/v2" "$WORK/v3"
echo more >>"$WORK/v3/etc/a"
echo changed >>"$WORK/v3/docs/c5"
"$CDIMG" diff -q --codecs bsdiff "$WORK/v1" "$WORK/v2" -o "$WORK/d12.dimg"
"$CDIMG" diff -q --codecs bsdiff "$WORK/v2" "$WORK/v3" -o "$WORK/d23.dimg"
"$CDIMG" show "$WORK/d12.dimg" | grep -q "dictionary:" || fail "d12 has no dictionary"
"$CDIMG" merge -q "$WORK/d12.dimg" "$WORK/d23.dimg" -o "$WORK/m13.dimg"
"$CDIMG" show "$WORK/m13.dimg" | grep -q "dictionary:" && fail "the merged delta claims a dictionary"
"$CDIMG" apply -q "$WORK/v1" "$WORK/m13.dimg" -o "$WORK/out3"
$TREECMP "$WORK/v3" "$WORK/out3" || fail "merged delta gives another tree than v3"
echo "merge_dict: ok ($(stat -c %s "$WORK/d12.dimg") + $(stat -c %s "$WORK/d23.dimg") -> $(stat -c %s "$WORK/m13.dimg") bytes)"
