#!/bin/bash
# Image inputs: OCI layout (tar and directory) and docker save images built
# by tests/assets/mkimages.py, squashed by libdimg (test_squash --extract)
# and compared field by field with GNU tar's extraction of the same layers,
# whiteouts applied by hand; also ref/platform selection, tampered blobs,
# and the real nginx tree pair with throughput.
. "$(dirname "$0")/lib.sh"

BUILD=${DI3FS_BUILD:-$SRC/build}
SQUASH=$BUILD/tests/unit/test_squash
MKIMAGES="python3 $SRC/tests/assets/mkimages.py"
TREES=${DI3FS_TREES:-/var/cache/di3fs/trees}
[ -x "$SQUASH" ] || fail "no $SQUASH (build with -DBUILD_TESTING=ON)"
[ "$(id -u)" -eq 0 ] || {
	echo "images_squash: skipped (needs root for owners, devices, trusted xattrs)"
	exit 0
}

# ref_extract IMAGE OUT: GNU tar extracts each layer of IMAGE (OCI layout
# or docker save, tar or directory) into OUT in order; before a layer,
# what its whiteouts and opaque markers hide is removed, and non-directories
# replacing directories clear them (tar would refuse); after it, the
# markers go and their directories get back the mtime tar gave them.
ref_extract() {
	local img=$1 out=$2 lay=$WORK/ref-layout
	rm -rf "$lay"
	if [ -d "$img" ]; then lay=$img; else mkdir "$lay" && tar -xf "$img" -C "$lay"; fi
	mkdir "$out"
	python3 - "$lay" >"$WORK/layers.txt" <<'PY'
import json, os, sys
lay = sys.argv[1]
def blob(d):
    return os.path.join(lay, "blobs", *d.split(":"))
def load(d):
    return json.load(open(blob(d)))
if os.path.exists(os.path.join(lay, "index.json")):
    desc = json.load(open(os.path.join(lay, "index.json")))["manifests"][0]
    while "index" in desc["mediaType"]:
        # nested (multi-arch): the image for this machine is listed last
        desc = load(desc["digest"])["manifests"][-1]
    for l in load(desc["digest"])["layers"]:
        print(blob(l["digest"]))
else:
    for l in json.load(open(os.path.join(lay, "manifest.json")))[0]["Layers"]:
        print(os.path.join(lay, l))
PY
	while read -r layer; do
		whiteouts pre "$layer" "$out"
		tar --xattrs --xattrs-include='*' --same-owner --numeric-owner -xpf "$layer" -C "$out" \
			2> >(grep -v "Ignoring unknown extended header keyword" >&2)
		whiteouts post "$layer" "$out"
	done <"$WORK/layers.txt"
}

whiteouts() {
	python3 - "$@" <<'PY'
import os, shutil, sys, tarfile
phase, layer, out = sys.argv[1:4]
def rm(p):
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p)
    elif os.path.lexists(p):
        os.unlink(p)
with tarfile.open(layer) as t:
    members = [(m.name.rstrip("/"), m.isdir()) for m in t]
for name, isdir in members:
    name = name[2:] if name.startswith("./") else name
    d, base = os.path.split(name)
    target = os.path.join(out, d)
    if phase == "pre":
        if base == ".wh..wh..opq" and os.path.isdir(target):
            for c in os.listdir(target):
                rm(os.path.join(target, c))
        elif base.startswith(".wh.") and not base.startswith(".wh..wh."):
            rm(os.path.join(target, base[4:]))
        elif not isdir and name and os.path.isdir(os.path.join(out, name)) \
                and not os.path.islink(os.path.join(out, name)):
            rm(os.path.join(out, name))
    elif base.startswith(".wh."):
        ns = os.lstat(target).st_mtime_ns
        rm(os.path.join(target, base))
        os.utime(target, ns=(ns, ns), follow_symlinks=False)
PY
}

# squash_check NAME IMAGE EXPECT_TREE [ARGS...]: squash, compare with the
# tree the image was built from and with GNU tar's extraction.
squash_check() {
	local name=$1 img=$2 want=$3 out=$WORK/sq-$1
	shift 3
	"$SQUASH" --extract "$img" "$out" "$@" >"$out.out" 2>"$out.err" ||
		{ cat "$out.err" >&2; fail "$name: squash failed"; }
	$TREECMP "$want" "$out" || fail "$name: squashed tree differs from $want"
	ref_extract "$img" "$out.ref"
	$TREECMP "$out.ref" "$out" || fail "$name: squash differs from GNU tar + whiteouts"
	grep -q "^tree_id $want_id\$" "$out.out" || fail "$name: tree id is not the directory's"
	echo "$name: $(cat "$out.err")"
	rm -rf "$out" "$out.ref"
}

# ---- synthetic trees: every kind of entry, whiteouts, opaque, type changes ----
$MKIMAGES synth "$WORK/synth"
S=$WORK/synth
"$SQUASH" --extract "$S/new" "$WORK/plain" >"$WORK/plain.out" 2>/dev/null ||
	fail "plain directory input"
want_id=$(sed -n 's/^tree_id //p' "$WORK/plain.out")
grep -q "^manifest - -" "$WORK/plain.out" || fail "plain directory has image metadata"
rm -rf "$WORK/plain"

$MKIMAGES oci "$S/base" "$S/new" "$WORK/s-oci.tar" --ref app:v2 --opaque var/cache
squash_check s-oci "$WORK/s-oci.tar" "$S/new"
squash_check s-oci-ref "$WORK/s-oci.tar" "$S/new" --ref docker.io/library/app:v2
gzip -c "$WORK/s-oci.tar" >"$WORK/s-oci.tar.gz" # `docker save | gzip` style: still streamed
squash_check s-oci-gz "$WORK/s-oci.tar.gz" "$S/new"
$MKIMAGES oci "$S/base" "$S/new" "$WORK/s-layout" --layout-dir --no-gzip --opaque var/cache
squash_check s-layout "$WORK/s-layout" "$S/new"
$MKIMAGES oci "$S/base" "$S/new" "$WORK/s-docker.tar" --docker-save --ref app:v2 \
	--opaque var/cache
squash_check s-docker "$WORK/s-docker.tar" "$S/new" --ref app:v2
grep -q "^manifest sha256:[0-9a-f]\{64\} application/vnd.oci.image.manifest.v1+json" \
	"$WORK/sq-s-docker.out" || fail "docker save: no OCI manifest"

# Multi-arch: the default is this machine; the other platform has layer 1 only.
$MKIMAGES oci "$S/base" "$S/new" "$WORK/s-multi.tar" --multi-arch --ref app:v2 \
	--opaque var/cache
squash_check s-multi "$WORK/s-multi.tar" "$S/new" --ref app:v2
other=$(python3 -c 'import platform; print("amd64" if platform.machine() == "s390x" else "s390x")')
"$SQUASH" --extract "$WORK/s-multi.tar" "$WORK/s-other" --platform "linux/$other" >/dev/null 2>&1 ||
	fail "multi-arch: --platform linux/$other"
$TREECMP "$S/base" "$WORK/s-other" || fail "multi-arch: linux/$other is not layer 1"
expect_exit 3 "$SQUASH" --extract "$WORK/s-multi.tar" "$WORK/x" --platform linux/mips
grep -q "no image for platform linux/mips" "$WORK/err.txt" || fail "platform message"
expect_exit 3 "$SQUASH" --extract "$WORK/s-oci.tar" "$WORK/x" --ref app:v3
grep -q "no image named app:v3" "$WORK/err.txt" || fail "ref message"
expect_exit 3 "$SQUASH" --extract "$WORK/s-docker.tar" "$WORK/x" --ref other:v2
grep -q "no image named other:v2" "$WORK/err.txt" || fail "docker ref message"

# Tampering: one changed byte in a layer, a config with the wrong diff_id.
cp -a "$WORK/s-layout" "$WORK/bad"
layer=$(python3 - "$WORK/bad" <<'PY'
import json, os, sys
lay = sys.argv[1]
d = json.load(open(os.path.join(lay, "index.json")))["manifests"][0]["digest"]
m = json.load(open(os.path.join(lay, "blobs", *d.split(":"))))
print(m["layers"][1]["digest"].split(":")[1])
PY
)
printf 'X' | dd of="$WORK/bad/blobs/sha256/$layer" bs=1 seek=600 conv=notrunc 2>/dev/null
expect_exit 3 "$SQUASH" --extract "$WORK/bad" "$WORK/x"
grep -q "layer sha256:$layer: blob digest mismatch" "$WORK/err.txt" ||
	{ cat "$WORK/err.txt"; fail "tampered layer not named"; }
[ ! -e "$WORK/x" ] || fail "output written from a tampered image"
rm -rf "$WORK/bad"
python3 - "$WORK/s-oci.tar" "$WORK/dup.tar" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1]) as src, tarfile.open(sys.argv[2], "w") as out:
    for m in src.getmembers() + [src.getmember("index.json")]:
        out.addfile(m, src.extractfile(m) if m.isfile() else None)
PY
expect_exit 3 "$SQUASH" --extract "$WORK/dup.tar" "$WORK/x"
grep -q "member 'index.json' appears twice" "$WORK/err.txt" || fail "duplicate member accepted"

# ---- the real nginx pair ----
bash "$SRC/tests/assets/mktrees.sh" --out "$TREES" nginx >/dev/null
V1=$TREES/nginx-v1
V2=$TREES/nginx-v2
"$SQUASH" --extract "$V2" "$WORK/plain" >"$WORK/plain.out" 2>/dev/null || fail "nginx plain dir"
want_id=$(sed -n 's/^tree_id //p' "$WORK/plain.out")
rm -rf "$WORK/plain"
$MKIMAGES oci "$V1" "$V2" "$WORK/nginx-oci.tar" --ref nginx:v2
squash_check nginx-oci "$WORK/nginx-oci.tar" "$V2" --ref nginx:v2
$MKIMAGES oci "$V1" "$V2" "$WORK/nginx-docker.tar" --docker-save --ref nginx:v2
rm -f "$WORK"/nginx-oci.tar
squash_check nginx-docker "$WORK/nginx-docker.tar" "$V2"
echo "images_squash: ok"
