#!/bin/bash
# Full file systems under the content store and the outputs, on a 16 MiB
# tmpfs. A layer's sparse file of 40 MiB apparent size is stored, diffed,
# patched and applied through a store there without filling it, even when
# the tmpfs is nearly full (mapping its holes would allocate tmpfs pages:
# SIGBUS once full, and cdimg used to die so, leaving its store behind).
# Real data past the tmpfs's size, sparse or not, in the store (--cache or
# TMPDIR) or in an output, is a clean error: exit 1, "No space left on
# device" naming the entry and the store or output, no temporaries left.
# Applied onto the tmpfs, the sparse file keeps its holes and fits.
. "$(dirname "$0")/lib.sh"

MKOCI="python3 $SRC/tests/tools/mkoci.py --sparse"
[ "$(id -u)" = 0 ] || fail "must run as root (mounts a tmpfs)"
MNT=$WORK/tmpfs
mkdir "$MNT"
mount -t tmpfs -o size=16m,mode=0755 tmpfs "$MNT" || fail "cannot mount a tmpfs"
trap 'umount "$MNT"; rm -rf "$WORK"' EXIT

used_kib() {
	df -k --output=used "$MNT" | tail -1 | tr -d ' '
}

# no_temps DIR...: no store temporaries, private stores or output
# temporaries under any DIR.
no_temps() {
	local left
	left=$(find "$@" \( -path '*/cache/tmp/*' -o -name 'di3fs-cas-*' -o -name '.*.tmp-*' \) -print)
	[ -z "$left" ] || fail "temporaries left behind: $left"
}

# enospc WHAT... -- CMD...: CMD exits 1 (not killed by a signal) with "No
# space left on device" and every WHAT in its message.
enospc() {
	local names=()
	while [ "$1" != -- ]; do
		names+=("$1")
		shift
	done
	shift
	expect_exit 1 "$@"
	grep -q "No space left on device" "$WORK/err.txt" ||
		fail "no ENOSPC message: $(cat "$WORK/err.txt")"
	for w in "${names[@]}"; do
		grep -qF "$w" "$WORK/err.txt" || fail "message does not name $w: $(cat "$WORK/err.txt")"
	done
	echo "  $(head -c 300 "$WORK/err.txt")"
}

# Trees: s1/s2 hold a sparse 40 MiB file with 192 KiB of data (s2 changes
# 7 bytes of it: a patch against the sparse base); n2 adds 24 MiB of real
# data, h2 a sparse 40 MiB file with 24 MiB of data.
T=$WORK/trees
mkdir -p "$T/s1/var/log" "$T/s1/etc" "$T/n1/etc"
echo "base" >"$T/s1/etc/conf"
truncate -s 40M "$T/s1/var/log/lastlog"
head -c 131072 /dev/urandom | dd of="$T/s1/var/log/lastlog" bs=4096 seek=1024 conv=notrunc status=none
head -c 65536 /dev/urandom | dd of="$T/s1/var/log/lastlog" bs=4096 seek=9000 conv=notrunc status=none
cp -a --sparse=always "$T/s1" "$T/s2"
printf 'changed' | dd of="$T/s2/var/log/lastlog" bs=1 seek=4194400 conv=notrunc status=none
echo "new" >"$T/s2/etc/added"
echo "base" >"$T/n1/etc/conf"
cp -a "$T/n1" "$T/n2"
cp -a "$T/n1" "$T/h2"
head -c 24M /dev/urandom >"$T/n2/etc/blob"
truncate -s 40M "$T/h2/etc/blob"
head -c 24M /dev/urandom | dd of="$T/h2/etc/blob" bs=1M seek=8 conv=notrunc status=none
for t in s1 s2 n1 n2 h2; do
	$MKOCI --ref example.org/$t:1 "$T/$t" "$WORK/$t.tar" >/dev/null
done
[ "$(du -k "$T/s1/var/log/lastlog" | cut -f1)" -lt 1024 ] || fail "test tree is not sparse"

echo "sparse file through a store on the tmpfs:"
"$CDIMG" diff -q "$WORK/s1.tar" "$WORK/s2.tar" -o "$WORK/s.cdimg" --cache "$MNT/cache"
"$CDIMG" show "$WORK/s.cdimg" | grep -q "patch .*/var/log/lastlog" || fail "no patch of the sparse file"
"$CDIMG" apply -q "$WORK/s1.tar" "$WORK/s.cdimg" -o "$WORK/s-out" --cache "$MNT/cache"
for top in etc var; do
	$TREECMP "$T/s2/$top" "$WORK/s-out/$top" || fail "applied tree differs from s2 in /$top"
done
[ "$(used_kib)" -lt 4096 ] || fail "the store filled the tmpfs: $(used_kib) KiB used"
no_temps "$MNT" "$WORK"
echo "  diff and apply: $(used_kib) KiB of the tmpfs used"
# Applied onto the tmpfs, the 40 MiB file keeps its holes and fits.
"$CDIMG" apply -q "$WORK/s1.tar" "$WORK/s.cdimg" -o "$MNT/s-out" --cache "$MNT/cache"
cmp "$T/s2/var/log/lastlog" "$MNT/s-out/var/log/lastlog" || fail "applied to tmpfs: wrong content"
[ "$(used_kib)" -lt 4096 ] || fail "output on the tmpfs not sparse: $(used_kib) KiB used"
rm -rf "$MNT/s-out"

echo "the same with the tmpfs nearly full (1 MiB free), store under --cache and TMPDIR:"
rm -rf "$MNT/cache" "$WORK/s-out"
dd if=/dev/zero of="$MNT/filler" bs=1M count=15 status=none 2>/dev/null || true
[ "$(df -k --output=avail "$MNT" | tail -1)" -le 1024 ] || fail "filler did not fill the tmpfs"
"$CDIMG" diff -q "$WORK/s1.tar" "$WORK/s2.tar" -o "$WORK/s2.cdimg" --cache "$MNT/cache"
cmp "$WORK/s.cdimg" "$WORK/s2.cdimg" || fail "delta differs with a nearly full store"
TMPDIR=$MNT "$CDIMG" apply -q "$WORK/s1.tar" "$WORK/s.cdimg" -o "$WORK/s-out"
cmp "$T/s2/var/log/lastlog" "$WORK/s-out/var/log/lastlog" || fail "nearly full: wrong content"
no_temps "$MNT" "$WORK"
rm -rf "$MNT/filler" "$MNT/cache" "$WORK/s-out"

echo "real data past the tmpfs: clean ENOSPC, nothing left behind"
for t in n2 h2; do
	enospc etc/blob "$MNT/cache" -- \
		"$CDIMG" diff -q "$WORK/n1.tar" "$WORK/$t.tar" -o "$WORK/x.cdimg" --cache "$MNT/cache"
	enospc etc/blob "$MNT/di3fs-cas-" -- \
		env TMPDIR="$MNT" "$CDIMG" diff -q "$WORK/n1.tar" "$WORK/$t.tar" -o "$WORK/x.cdimg"
	enospc etc/blob "$MNT/cache" -- \
		"$CDIMG" apply -q "$WORK/$t.tar" "$WORK/s.cdimg" -o "$WORK/x" --cache "$MNT/cache"
	[ ! -e "$WORK/x.cdimg" ] && [ ! -e "$WORK/x" ] || fail "$t: output left behind"
	no_temps "$MNT" "$WORK"
	[ -z "$(ls "$MNT")" ] || [ "$(ls "$MNT")" = cache ] || fail "$t: left in the tmpfs: $(ls "$MNT")"
	rm -rf "$MNT/cache"
done

echo "outputs on the tmpfs: clean ENOSPC, nothing left behind"
"$CDIMG" diff -q --level 1 "$WORK/n1.tar" "$WORK/n2.tar" -o "$WORK/n.cdimg"
enospc "writing $MNT/out" etc/blob -- "$CDIMG" apply -q "$WORK/n1.tar" "$WORK/n.cdimg" -o "$MNT/out"
enospc "writing $MNT/out.tar" -- "$CDIMG" apply -q "$WORK/n1.tar" "$WORK/n.cdimg" -o "$MNT/out.tar"
enospc "$MNT/x.cdimg" -- "$CDIMG" diff -q --level 1 "$WORK/n1.tar" "$WORK/n2.tar" -o "$MNT/x.cdimg"
enospc "$MNT/x.dimg" -- "$CDIMG" diff -q --level 1 "$T/n1" "$T/n2" -o "$MNT/x.dimg"
[ -z "$(ls -A "$MNT")" ] || fail "left in the tmpfs: $(ls -A "$MNT")"
echo "enospc_tmpfs: ok"
