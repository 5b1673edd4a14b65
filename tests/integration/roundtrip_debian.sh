#!/bin/bash
# Real image trees (Debian minbase + two versions of nginx, of redis, built
# by tests/assets/mktrees.sh): diff, apply, compare every byte and metadata
# field; the delta is deterministic across thread counts and far smaller
# than the changed files.
. "$(dirname "$0")/lib.sh"

TREES=${DI3FS_TREES:-/var/cache/di3fs/trees}
bash "$SRC/tests/assets/mktrees.sh" --out "$TREES" nginx redis >/dev/null

for pair in nginx redis; do
	v1=$TREES/$pair-v1
	v2=$TREES/$pair-v2
	"$CDIMG" diff -q -j 1 "$v1" "$v2" -o "$WORK/$pair-j1.dimg"
	"$CDIMG" diff --json -j 2 "$v1" "$v2" -o "$WORK/$pair.dimg" >"$WORK/$pair.json"
	cmp "$WORK/$pair-j1.dimg" "$WORK/$pair.dimg" || fail "$pair: -j1 and -j2 differ"
	"$CDIMG" apply -q "$v1" "$WORK/$pair.dimg" -o "$WORK/$pair-out"
	$TREECMP "$v2" "$WORK/$pair-out" || fail "$pair: applied tree differs from v2"
	rm -rf "$WORK/$pair-out"
	# The changed and new regular files, in bytes, against the delta size.
	changed=$(python3 - "$v1" "$v2" <<'PY'
import hashlib, os, stat, sys
a, b = sys.argv[1], sys.argv[2]
def digest(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()
total = 0
for dp, dns, fns in os.walk(b):
    for fn in fns:
        p = os.path.join(dp, fn)
        st = os.lstat(p)
        if not stat.S_ISREG(st.st_mode):
            continue
        q = os.path.join(a, os.path.relpath(p, b))
        try:
            if stat.S_ISREG(os.lstat(q).st_mode) and digest(p) == digest(q):
                continue
        except FileNotFoundError:
            pass
        total += st.st_size
print(total)
PY
)
	size=$(stat -c %s "$WORK/$pair.dimg")
	echo "$pair: delta $size bytes for $changed bytes of changed files"
	[ "$size" -gt 0 ] && [ $((size * 4)) -lt "$changed" ] ||
		fail "$pair: delta ($size) not under a quarter of the changed files ($changed)"
done
echo "roundtrip_debian: ok"
