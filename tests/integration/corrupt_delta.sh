#!/bin/bash
# Every single-byte corruption and every truncation of a small delta, and a
# sample of those of a delta with a shared zstd dictionary: apply exits 3
# with a message naming the delta, and leaves no output behind. Under the
# sanitizers (DI3FS_SANITIZED=1, 3-4x slower a run) the first sweep flips
# every 3rd byte (3 is prime to every field width, so each byte position of
# a field is hit); the fuzz targets flip the rest in-process.
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

# corrupt DELTA STEP CUT DICTLEN DSTEP: writes the delta's variants into
# $WORK/bad: a truncation at every multiple of CUT, one byte flipped at
# every STEP-th offset, at every DSTEP-th of the dictionary (DICTLEN bytes
# after the header) and at every offset of the trailer.
corrupt() {
	rm -rf "$WORK/bad"
	python3 - "$1" "$WORK/bad" "$2" "$3" "$4" "$5" <<'PY'
import os, sys
src, out = sys.argv[1], sys.argv[2]
step, cut, dictlen, dstep = (int(x) for x in sys.argv[3:7])
data = open(src, "rb").read()
os.makedirs(out)
flips = set(range(0, len(data), step)) | set(range(96, 96 + dictlen, dstep))
flips |= set(range(len(data) - 64, len(data)))
for i in sorted(flips):
    b = bytearray(data)
    b[i] ^= 0xA5
    open(os.path.join(out, "flip%06d.dimg" % i), "wb").write(b)
for n in list(range(0, len(data), cut)) + [len(data) - 1]:
    open(os.path.join(out, "cut%06d.dimg" % n), "wb").write(data[:n])
PY
}

# sweep BASE: every variant in $WORK/bad is refused (exit 3, named, no
# output left); prints how many.
sweep() {
	count=0
	for f in "$WORK"/bad/*.dimg; do
		set +e
		"$CDIMG" apply -q "$1" "$f" -o "$WORK/o" 2>"$WORK/err.txt"
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
}

flipstep=1
[ "${DI3FS_SANITIZED:-0}" = 1 ] && flipstep=3
corrupt "$WORK/good.dimg" "$flipstep" 7 0 1
sweep "$d/v1"
total=$count

# A pair adding small text files that share boilerplate: its delta carries a
# shared zstd dictionary; every 3rd byte of the dictionary, every byte of
# the trailer and every 23rd elsewhere flipped, every 31st length cut.
s=$WORK/dictpair
mkdir -p "$s/v1" "$s/v2/doc"
python3 - "$s/v2/doc" <<'PY'
import random, sys
r = random.Random(3)
head = ("Copyright (C) The Example Project contributors.\nPermission is hereby granted, "
        "free of charge, to any person obtaining a copy of this software.\n")
for i in range(16):
    lines = [head] + ["Section %d: THE SOFTWARE IS PROVIDED AS IS, WITHOUT WARRANTY, item %d.\n"
                      % (k, r.randrange(1000)) for k in range(40)]
    open("%s/file%02d.txt" % (sys.argv[1], i), "w").write("".join(lines))
PY
"$CDIMG" diff -q "$s/v1" "$s/v2" -o "$WORK/dict.dimg"
"$CDIMG" apply -q "$s/v1" "$WORK/dict.dimg" -o "$WORK/dictok"
$TREECMP "$s/v2" "$WORK/dictok"
dictlen=$("$CDIMG" show --json "$WORK/dict.dimg" | python3 -c 'import json,sys; print(json.load(sys.stdin)["dictionary_size"])')
[ "$dictlen" -gt 0 ] || fail "the small-files pair got no dictionary"
echo "dictionary delta: $(stat -c %s "$WORK/dict.dimg") bytes, dictionary $dictlen bytes"
corrupt "$WORK/dict.dimg" 23 31 "$dictlen" 3
sweep "$s/v1"
total=$((total + count))
echo "corrupt_delta: ok ($total corrupted deltas refused)"
