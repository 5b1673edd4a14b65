#!/bin/bash
# Sparse files stay sparse through diff and apply to a directory: a new
# 10 GiB file with 3 small runs of data (stored whole), a 64 MiB sparse file
# patched, a 512 MiB one kept the same and a copy of it, all written with
# their holes (du of the output is its data, not 10.6 GiB), every byte and
# field equal to the source tree (so the tree id is too).
. "$(dirname "$0")/lib.sh"

d=$WORK/pair
mkdir -p "$d/v1/etc" "$d/v1/var/log" "$d/v1/var/lib"
echo "base" >"$d/v1/etc/conf"
# put FILE OFFSET BYTES: BYTES random bytes at OFFSET of FILE.
put() {
	head -c "$3" /dev/urandom | dd of="$1" bs=4096 seek="$(($2 / 4096))" conv=notrunc status=none
}
truncate -s 64M "$d/v1/var/log/lastlog"
put "$d/v1/var/log/lastlog" $((1 << 20)) 65536
truncate -s 512M "$d/v1/var/lib/same.img"
put "$d/v1/var/lib/same.img" 0 8192
put "$d/v1/var/lib/same.img" $((300 << 20)) 12288
cp -a --sparse=always "$d/v1" "$d/v2"
printf 'patched' | dd of="$d/v2/var/log/lastlog" bs=1 seek=$(((1 << 20) + 100)) conv=notrunc status=none
cp -a --sparse=always "$d/v2/var/lib/same.img" "$d/v2/var/lib/copy.img"
truncate -s 10G "$d/v2/var/lib/huge.img"
put "$d/v2/var/lib/huge.img" 0 4096
put "$d/v2/var/lib/huge.img" $((5 << 30)) 100000
printf 'the end' | dd of="$d/v2/var/lib/huge.img" bs=1 seek=$(((10 << 30) - 7)) conv=notrunc status=none
echo "source: $(du -sk "$d/v2" | cut -f1) KiB on disk, $(du -sk --apparent-size "$d/v2" | cut -f1) KiB apparent"

"$CDIMG" diff -q --level 3 "$d/v1" "$d/v2" -o "$WORK/d.dimg"
"$CDIMG" show "$WORK/d.dimg" >"$WORK/show.txt"
grep -q "full .*/var/lib/huge.img" "$WORK/show.txt" || fail "huge.img not stored whole"
grep -q "patch .*/var/log/lastlog" "$WORK/show.txt" || fail "lastlog not patched"
"$CDIMG" apply -q "$d/v1" "$WORK/d.dimg" -o "$WORK/out"
used=$(du -sk "$WORK/out" | cut -f1)
echo "applied: $used KiB on disk"
[ "$used" -lt 4096 ] || fail "output not sparse: $used KiB on disk"
$TREECMP "$d/v2" "$WORK/out" || fail "applied tree differs from v2"
echo "sparse_apply: ok"
