#!/bin/bash
# Layer recipes that cost almost nothing: single-layer images whose layer
# was written by GNU tar (sorted, unsorted with --sparse, POSIX with
# --xattrs), Python's tarfile (tests/tools/mkoci.py), Go's archive/tar the
# way containerd writes layers (tests/tools/gotar) and bsdtar, from one
# tree: part of the real nginx tree plus long names and link targets,
# non-ASCII names, xattrs, hardlinks whose first name in the layer is not
# the first in sort order, symlinks, devices, a fifo, setuid/setgid/sticky,
# large and unnamed owners, nanosecond mtimes, a sparse file. Each target is
# diffed against a small base and applied: every layer back byte for byte
# (diff_ids, image ID), the recipes of a writer the models know costing at
# most 4 bytes per tar entry and a tenth of raw recipes, the others (GNU
# tar unsorted or POSIX, bsdtar) exact and never larger than raw ones.
. "$(dirname "$0")/lib.sh"

MKOCI="python3 $SRC/tests/tools/mkoci.py"
CHECK="python3 $SRC/tests/tools/ocicheck.py"
TREES=${DI3FS_TREES:-/var/cache/di3fs/trees}
[ "$(id -u)" = 0 ] || fail "must run as root (owners, devices, trusted xattrs)"
for t in go bsdtar setfattr skopeo; do
	command -v $t >/dev/null || fail "$t is not installed: run install/deps.sh"
done

# ---- the tree ----
bash "$SRC/tests/assets/mktrees.sh" --out "$TREES" nginx >/dev/null
T=$WORK/tree
mkdir -p "$T/usr/share"
cp -a "$TREES/nginx-v2/etc" "$T/etc"
cp -a "$TREES/nginx-v2/usr/share/doc" "$TREES/nginx-v2/usr/share/man" "$T/usr/share/"
X=$T/x
mkdir -p "$X/a" "$X/sticky" "$X/setgid" "$X/répertoire"
rep() { printf "%${2}s" "" | tr ' ' "$1"; }
long=$X/$(rep l 120)
mkdir "$long"
echo under >"$long/a-file-under-a-long-directory"
echo split >"$X/$(rep d 90)-then-a-name-past-100-bytes"
echo exact >"$X/$(rep e 98)" # "x/eee...": 100 bytes, no terminating NUL
ln -s "$(rep t 150)" "$X/long-symlink"
ln -s ../etc/nginx "$X/symlink"
echo u >"$X/naïve-ü.txt"
echo cap >"$X/capable"
setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= "$X/capable"
setfattr -n user.note -v "a note" "$X/capable"
setfattr -n trusted.t -v 1 "$X/répertoire"
# strcmp order: a-b, a/h3, h1; depth first: a/h3, a-b, h1
echo linked >"$X/h1"
ln "$X/h1" "$X/a-b"
ln "$X/h1" "$X/a/h3"
mknod "$X/null" c 1 3
mknod "$X/loop0" b 7 0
mkfifo "$X/fifo"
: >"$X/empty"
echo s >"$X/setuid"
chmod 4755 "$X/setuid"
chmod 2775 "$X/setgid"
chmod 1777 "$X/sticky"
echo o >"$X/owned"
chown 1000:1000 "$X/owned"
echo b >"$X/big-owner"
chown 3000000:3000001 "$X/big-owner" # past the octal fields: base-256 or PAX
truncate -s 3M "$X/sparse"
printf 'data in a hole' | dd of="$X/sparse" bs=1 seek=1048576 conv=notrunc 2>/dev/null
touch -h -d "2023-05-06 07:08:09.123456789" "$X/owned" "$X/symlink" "$X/a"
touch -d "2023-05-06 07:08:09" "$X/setuid"
entries=$(find "$T" | wc -l)

# ---- the layers and images ----
GOBIN=$WORK/gotar
HOME=$WORK GOCACHE=$WORK/gocache GOPATH=$WORK/gopath GOFLAGS=-mod=mod \
	go build -o "$GOBIN" "$SRC/tests/tools/gotar/main.go" || fail "building gotar"
mkdir "$WORK/base"
echo base >"$WORK/base/only-file"
$MKOCI --ref ex/base:1 "$WORK/base" "$WORK/base.tar" >/dev/null
L=$WORK/layers
mkdir "$L"
tar -C "$T" --sort=name --format=gnu -cf "$L/gnu.tar" .
tar -C "$T" --format=gnu --sparse -cf "$L/gnu-unsorted.tar" .
tar -C "$T" --sort=name --format=posix --xattrs -cf "$L/gnu-posix.tar" .
"$GOBIN" "$T" "$L/go.tar"
bsdtar -C "$T" -cf "$L/bsdtar.tar" .
for w in gnu gnu-unsorted gnu-posix go bsdtar; do
	$MKOCI --ref ex/$w:1 --layer "$L/$w.tar" - "$WORK/$w.tar" >/dev/null
done
$MKOCI --ref ex/python:1 "$T" "$WORK/python.tar" >/dev/null

# recipe WRITER BOUND: diff (predicted and raw recipes), apply, compare;
# BOUND: the most bytes per tar entry the predicted recipes may cost, or -.
recipe() {
	local w=$1 bound=$2
	"$CDIMG" diff --json "$WORK/base.tar" "$WORK/$w.tar" -o "$WORK/$w.cdimg" >"$WORK/$w.json" ||
		fail "$w: diff failed"
	"$CDIMG" diff --json --recipes=raw "$WORK/base.tar" "$WORK/$w.tar" -o "$WORK/$w-raw.cdimg" \
		>"$WORK/$w-raw.json" || fail "$w: diff --recipes=raw failed"
	"$CDIMG" apply "$WORK/base.tar" "$WORK/$w.cdimg" -o "$WORK/$w-out.tar" >"$WORK/apply.txt" \
		2>"$WORK/apply.err" || fail "$w: apply failed: $(cat "$WORK/apply.err")"
	grep -q "original image ID" "$WORK/apply.txt" || fail "$w: not exact: $(cat "$WORK/apply.err")"
	[ ! -s "$WORK/apply.err" ] || fail "$w: apply warned: $(cat "$WORK/apply.err")"
	$CHECK layers "$WORK/$w.tar" "$WORK/$w-out.tar" >/dev/null
	[ "$($CHECK digest config "$WORK/$w-out.tar")" = "$($CHECK digest config "$WORK/$w.tar")" ] ||
		fail "$w: image ID differs"
	python3 - "$WORK/$w.json" "$WORK/$w-raw.json" "$w" "$bound" <<'PY'
import json, sys
p, r = (json.load(open(f))["layers"] for f in sys.argv[1:3])
w, bound = sys.argv[3], sys.argv[4]
assert p["recorded"] and p["version"] == 2 and r["version"] == 1, (p, r)
assert p["entries"] == p["entries_exact"] + p["entries_patched"] + p["entries_raw"], p
per = p["size"] / p["entries"]
print("  %-13s %5d entries: %3d B/entry raw -> %6.2f B/entry predicted (%d B; %d exact, "
      "%d patched, %d as they are)" % (w, p["entries"], r["size"] / p["entries"], per,
                                         p["size"], p["entries_exact"], p["entries_patched"],
                                         p["entries_raw"]))
assert p["size"] <= r["size"] + 16, "%s: predicted recipes larger than raw" % w
if bound != "-":
    assert per <= float(bound), "%s: %.2f bytes per entry > %s" % (w, per, bound)
    assert p["size"] * 10 < r["size"], "%s: predicted recipes not much smaller than raw" % w
PY
	rm -f "$WORK/$w-out.tar" "$WORK/$w-raw.cdimg"
}

echo "single-layer images of a $entries-entry tree, by writer:"
recipe gnu 4
recipe python 4
recipe go 4
recipe gnu-unsorted -
recipe gnu-posix -
recipe bsdtar -

# The same layer written twice gives the same recipes (deterministic).
"$CDIMG" diff -q "$WORK/base.tar" "$WORK/go.tar" -o "$WORK/go2.cdimg"
cmp "$WORK/go.cdimg" "$WORK/go2.cdimg" || fail "recipes differ between runs"

echo "cdimg_recipes: ok"
