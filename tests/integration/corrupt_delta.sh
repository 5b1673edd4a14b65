#!/bin/bash
# Every single-byte corruption and every truncation of a small delta: apply
# exits 3 with a message naming the delta, and leaves no output behind.
. "$(dirname "$0")/lib.sh"

# A tiny pair that still exercises every payload: kept, same (renamed),
# patch, full, empty, a removed file, a symlink, a hardlink.
d=$WORK/pair
mkdir -p "$d/v1/etc" "$d/v1/bin"
python3 -c 'import random; r = random.Random(5); open("'"$d"'/v1/bin/tool", "wb").write(bytes(r.randrange(4) for _ in range(3000)))'
echo "keep me" >"$d/v1/etc/kept"
echo "rename me, I am long enough to matter" >"$d/v1/etc/old-name"
echo "bye" >"$d/v1/etc/removed"
cp -a "$d/v1" "$d/v2"
printf 'patched' | dd of="$d/v2/bin/tool" bs=1 seek=1000 conv=notrunc status=none
mv "$d/v2/etc/old-name" "$d/v2/etc/new-name"
rm "$d/v2/etc/removed"
head -c 300 /dev/urandom >"$d/v2/etc/fresh"
: >"$d/v2/etc/empty"
ln -s kept "$d/v2/etc/link"
ln "$d/v2/etc/kept" "$d/v2/bin/hard"
chmod 4755 "$d/v2/bin/tool"
"$CDIMG" diff -q "$d/v1" "$d/v2" -o "$WORK/good.dimg"
"$CDIMG" apply -q "$d/v1" "$WORK/good.dimg" -o "$WORK/ok"
$TREECMP "$d/v2" "$WORK/ok"
size=$(stat -c %s "$WORK/good.dimg")
echo "delta: $size bytes"
[ "$size" -lt 3000 ] || fail "delta unexpectedly large for a small pair ($size)"

python3 - "$WORK/good.dimg" "$WORK/bad" <<'PY'
import sys
src, out = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
import os
os.makedirs(out)
for i in range(len(data)):
    b = bytearray(data)
    b[i] ^= 0xA5
    open(os.path.join(out, "flip%06d.dimg" % i), "wb").write(b)
for n in list(range(0, len(data), 7)) + [len(data) - 1]:
    open(os.path.join(out, "cut%06d.dimg" % n), "wb").write(data[:n])
PY
count=0
for f in "$WORK"/bad/*.dimg; do
	set +e
	"$CDIMG" apply -q "$d/v1" "$f" -o "$WORK/o" 2>"$WORK/err.txt"
	rc=$?
	set -e
	if [ "$rc" -ne 3 ]; then
		cat "$WORK/err.txt" >&2
		fail "$(basename "$f"): exit $rc, expected 3"
	fi
	grep -q "$(basename "$f")" "$WORK/err.txt" || fail "$(basename "$f"): message does not name the file"
	[ ! -e "$WORK/o" ] || fail "$(basename "$f"): output left behind"
	for t in "$WORK"/.o.tmp-*; do
		[ -e "$t" ] && fail "$(basename "$f"): temporary $t left behind"
	done
	count=$((count + 1))
done
echo "corrupt_delta: ok ($count corrupted deltas refused)"
