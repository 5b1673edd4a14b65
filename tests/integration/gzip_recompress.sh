#!/bin/bash
# gzip-aware deltas (patch codec 3) on gzip files made by real tools: GNU
# gzip at several levels (as Debian's dh_compress does), pigz, busybox,
# Python's gzip module with a file name and mtime, concatenated members,
# real Debian .gz files from this system; and files that only look like
# gzip. Every pair round-trips through cdimg diff/apply; the files zlib can
# recreate are patched with codec gzip and far smaller than without it.
# GNU gzip's blocks hold up to 32767 symbols with a 15-bit hash; zlib has
# either (memLevel 9: 32767 symbols, 16-bit hash; 8: 16383, 15-bit), so
# gzip-made files with blocks past 16383 symbols (some 60 KB of text) are
# not recreated: big.gz checks they still round-trip.
. "$(dirname "$0")/lib.sh"

need() {
	command -v "$1" >/dev/null || fail "$1 is missing (install/deps.sh installs it)"
}
need gzip
need pigz
need busybox

d=$WORK/pair
mkdir -p "$d/v1" "$d/v2"
# Old and new text: a changelog gaining an entry, as package updates do.
python3 - "$d" <<'PY'
import random, sys
r = random.Random(7)
words = "the package update security fix release upstream debian CVE- man page".split()
def para(n):
    return " ".join(r.choice(words) + (str(r.randrange(9999)) if r.random() < .1 else "")
                    for _ in range(n)) + "\n"
old = "".join(para(r.randrange(5, 40)) for _ in range(400))
new = para(60) + old.replace("security", "SECURITY", 3)
open(sys.argv[1] + "/old.txt", "w").write(old)
open(sys.argv[1] + "/new.txt", "w").write(new)
PY

# mk NAME TOOL...: v1/NAME and v2/NAME made by TOOL from old.txt, new.txt.
mk() {
	name=$1
	shift
	"$@" <"$d/old.txt" >"$d/v1/$name"
	"$@" <"$d/new.txt" >"$d/v2/$name"
}
mk gzip9n.gz gzip -9n
mk gzip6.gz gzip -6n
mk gzip1.gz gzip -1n
mk pigz.gz pigz -9n
mk pigz6.gz pigz -6
mk busybox.gz busybox gzip -c
mk python.gz python3 -c '
import gzip, sys
sys.stdout.buffer.write(gzip.compress(sys.stdin.buffer.read(), 9, mtime=1700000000))'
# Python's GzipFile writes FNAME.
for v in 1 2; do
	src=$d/old.txt
	[ $v = 2 ] && src=$d/new.txt
	python3 - "$src" "$d/v$v/named.gz" <<'PY'
import gzip, sys
data = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "wb") as raw:
    with gzip.GzipFile("changelog.txt", "wb", 6, raw, mtime=1234567890) as g:
        g.write(data)
PY
	# Concatenated members with different settings, and trailing zeros.
	head -c 30000 "$src" | gzip -9n >"$d/v$v/members.gz"
	tail -c +30001 "$src" | gzip -1n >>"$d/v$v/members.gz"
	head -c 512 /dev/zero >>"$d/v$v/members.gz"
done
for v in 1 2; do
	for k in 1 2 3 4 5 6; do cat "$d/old.txt"; done | gzip -9n >"$d/v$v/big.gz"
	echo "$v" | gzip -9n >>"$d/v$v/big.gz"
done
# Real Debian .gz files of this system (man pages and changelogs built by
# dh_compress): old is the file, new the same text with an entry added,
# compressed the way Debian does.
n=0
for f in /usr/share/doc/*/changelog.Debian.gz /usr/share/man/man1/*.1.gz; do
	[ -f "$f" ] && [ ! -L "$f" ] || continue
	n=$((n + 1))
	[ $n -le 12 ] || break
	cp "$f" "$d/v1/real$n.gz"
	{
		echo "pkg (9.9) unstable; urgency=medium"
		zcat "$f"
	} | gzip -9n >"$d/v2/real$n.gz"
done
[ $n -gt 5 ] || fail "too few real Debian .gz files on this system ($n)"
# Look-alikes: gzip magic and garbage; a truncated gzip file; a gzip file
# made at level 0 (never recreated); each must still round-trip.
for v in 1 2; do
	printf '\037\213\010\000garbage %s' $v >"$d/v$v/fake.gz"
	gzip -9n <"$d/new.txt" | head -c 5000 >"$d/v$v/truncated.gz"
	echo $v >>"$d/v$v/truncated.gz"
done

"$CDIMG" diff -q -j 1 "$d/v1" "$d/v2" -o "$WORK/j1.dimg"
"$CDIMG" diff --json -j 2 "$d/v1" "$d/v2" -o "$WORK/gz.dimg" >/dev/null
cmp "$WORK/j1.dimg" "$WORK/gz.dimg" || fail "-j1 and -j2 differ"
"$CDIMG" apply -q "$d/v1" "$WORK/gz.dimg" -o "$WORK/out"
$TREECMP "$d/v2" "$WORK/out"
"$CDIMG" diff -q --codecs bsdiff,zstdref "$d/v1" "$d/v2" -o "$WORK/plain.dimg"
"$CDIMG" show --json "$WORK/gz.dimg" >"$WORK/show.json"

python3 - "$WORK/show.json" "$WORK/gz.dimg" "$WORK/plain.dimg" <<'PY'
import json, os, sys
show = json.load(open(sys.argv[1]))
codec = {e["path"]: e.get("codec") for e in show["stored_entries"] if e["type"] == "reg"}
must = ["gzip9n.gz", "gzip6.gz", "gzip1.gz", "pigz.gz", "pigz6.gz", "busybox.gz",
        "python.gz", "named.gz", "members.gz"]
bad = [p for p in must if codec.get(p) != "gzip"]
real = [p for p in codec if p.startswith("real")]
real_gz = [p for p in real if codec[p] == "gzip"]
assert not bad, "not patched with codec gzip: %s (%s)" % (bad, codec)
assert len(real_gz) == len(real), "real Debian files not all gzip-patched: %s" % codec
for p in ("fake.gz", "truncated.gz"):
    assert codec.get(p) != "gzip", p
gz, plain = os.path.getsize(sys.argv[2]), os.path.getsize(sys.argv[3])
print("gzip-aware %d bytes, without %d bytes (%.1fx)" % (gz, plain, plain / gz))
assert gz * 4 < plain, "gzip-aware delta not much smaller"
PY

# The same pair with the base's gzip files replaced by other content: the
# new files' content goes whole inside the codec, still recompressed.
for f in "$d"/v1/*.gz; do
	echo "not gzip" >"$f"
done
"$CDIMG" diff -q "$d/v1" "$d/v2" -o "$WORK/nobase.dimg"
rm -rf "$WORK/out"
"$CDIMG" apply -q "$d/v1" "$WORK/nobase.dimg" -o "$WORK/out"
$TREECMP "$d/v2" "$WORK/out"
echo "gzip_recompress: ok"
