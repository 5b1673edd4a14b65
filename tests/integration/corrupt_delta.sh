#!/bin/bash
# Every single-byte corruption and every truncation of a small delta: apply
# exits 3 with a message naming the delta, and leaves no output behind.
. "$(dirname "$0")/lib.sh"

d=$WORK/pair
python3 "$SRC/tests/tools/mkrandpair.py" 21 "$d" --small
"$CDIMG" diff -q "$d/v1" "$d/v2" -o "$WORK/good.dimg"
"$CDIMG" apply -q "$d/v1" "$WORK/good.dimg" -o "$WORK/ok"
$TREECMP "$d/v2" "$WORK/ok"
size=$(stat -c %s "$WORK/good.dimg")
echo "delta: $size bytes"
[ "$size" -lt 20000 ] || fail "delta unexpectedly large for a small pair ($size)"

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
	ls -a "$WORK" | grep -q '\.tmp-' && fail "$(basename "$f"): temporary left behind"
	count=$((count + 1))
done
echo "corrupt_delta: ok ($count corrupted deltas refused)"
