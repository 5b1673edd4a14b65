#!/bin/bash
# The original layers back: multi-layer targets (whiteouts, an opaque
# directory, contents later layers delete or overwrite and the base lacks,
# a layer shared with the base, docker save, the real nginx pair) -> .cdimg
# -> apply -> an OCI image whose config is the original's byte for byte
# (same image ID) and whose every layer, uncompressed, is the original tar
# byte for byte; deterministic; skopeo reads it; damaged recipes (every
# digest consistent) fall back to the squashed image with a warning, never
# an image claimed exact; --squash and --no-layers.
. "$(dirname "$0")/lib.sh"

MKIMAGES="python3 $SRC/tests/assets/mkimages.py"
CHECK="python3 $SRC/tests/tools/ocicheck.py"
TREES=${DI3FS_TREES:-/var/cache/di3fs/trees}
[ "$(id -u)" = 0 ] || fail "must run as root (owners, devices, trusted xattrs)"
command -v skopeo >/dev/null || fail "skopeo is not installed: run install/deps.sh"
command -v zstd >/dev/null || fail "zstd is not installed: run install/deps.sh"

# exact BASE TARGET NAME [BOUND]: diff, apply twice (identical), check the
# layers; BOUND: the most bytes of recipes (but embedded contents) per tar
# entry of the recorded layers.
exact() {
	local base=$1 target=$2 name=$3 bound=${4:--}
	"$CDIMG" diff --json "$base" "$target" -o "$WORK/$name.cdimg" >"$WORK/$name.json" ||
		fail "$name: diff failed"
	python3 - "$WORK/$name.json" "$name" "$bound" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
l = j["layers"]
assert l["recorded"] and l["version"] == 2, l
print("  %s: .cdimg %d B, recipes %d B (%d layers, %d as in the base, %d contents "
      "embedded = %d B, %d raw tar bytes; %d entries: %d as predicted, %d patched, %d as "
      "they are)" % (sys.argv[2], j["size"], l["size"], l["layers"], l["from_base"],
                     l["inline_files"], l["inline_bytes"], l["raw_bytes"], l["entries"],
                     l["entries_exact"], l["entries_patched"], l["entries_raw"]))
if sys.argv[3] != "-":
    per = (l["size"] - l["inline_bytes"]) / l["entries"]
    assert per <= float(sys.argv[3]), "%.2f B per entry" % per
PY
	"$CDIMG" apply "$base" "$WORK/$name.cdimg" -o "$WORK/$name-out.tar" >"$WORK/apply.txt" \
		2>"$WORK/apply.err" || fail "$name: apply failed: $(cat "$WORK/apply.err")"
	grep -q "original image ID" "$WORK/apply.txt" || fail "$name: not exact: $(cat "$WORK/apply.err")"
	[ ! -s "$WORK/apply.err" ] || fail "$name: apply warned: $(cat "$WORK/apply.err")"
	"$CDIMG" apply -q "$base" "$WORK/$name.cdimg" -o "$WORK/$name-out2.tar"
	cmp "$WORK/$name-out.tar" "$WORK/$name-out2.tar" || fail "$name: output differs between runs"
	$CHECK layers "$target" "$WORK/$name-out.tar"
	[ "$($CHECK digest config "$WORK/$name-out.tar")" = "$($CHECK digest config "$target")" ] ||
		fail "$name: image ID differs"
	skopeo inspect oci-archive:"$WORK/$name-out.tar" >/dev/null || fail "$name: skopeo refuses it"
	rm -f "$WORK/$name-out2.tar"
}

# ---- small trees with every kind of entry (mkimages.py synth) ----
$MKIMAGES synth "$WORK/s" >/dev/null
# x: the base tree plus contents the target deletes (whiteout) or
# overwrites, which neither the base image nor the target tree has.
cp -a "$WORK/s/base" "$WORK/x"
head -c 50000 /dev/urandom >"$WORK/x/only-in-layer-1"
head -c 3000 /dev/urandom >"$WORK/x/etc/overwritten"
cp -a "$WORK/s/new" "$WORK/y"
head -c 3000 /dev/urandom >"$WORK/y/etc/overwritten"

# v1: base, 2 layers (the second empty); v2: its first layer is v1's.
$MKIMAGES oci "$WORK/s/base" "$WORK/s/base" "$WORK/v1.tar" --ref ex/app:v1
$MKIMAGES oci "$WORK/s/base" "$WORK/y" "$WORK/v2.tar" --ref ex/app:v2 --opaque var/cache
$MKIMAGES oci "$WORK/x" "$WORK/y" "$WORK/v3.tar" --ref ex/app:v3 --opaque var/cache
$MKIMAGES oci "$WORK/x" "$WORK/y" "$WORK/v3-docker.tar" --ref ex/app:v3 --docker-save
$MKIMAGES oci "$WORK/x" "$WORK/y" "$WORK/v3-plain.tar" --ref ex/app:v3 --no-gzip
$MKIMAGES oci "$WORK/x" "$WORK/y" "$WORK/v3-dir" --ref ex/app:v3 --layout-dir

echo "synthetic images:"
exact "$WORK/v1.tar" "$WORK/v2.tar" shared
exact "$WORK/v1.tar" "$WORK/v3.tar" embedded
exact "$WORK/v1.tar" "$WORK/v3-docker.tar" docker
exact "$WORK/v1.tar" "$WORK/v3-plain.tar" plain
python3 - "$WORK/embedded.json" <<'PY'
import json, sys
l = json.load(open(sys.argv[1]))["layers"]
# only-in-layer-1 and layer 1's etc/overwritten: in neither tree
assert l["inline_files"] == 2 and l["inline_bytes"] == 53000, l
PY
# The output keeps gzip where the original had it, plain tar where not.
python3 - "$WORK/plain-out.tar" "$WORK/embedded-out.tar" <<'PY'
import json, sys, tarfile
for path, want in zip(sys.argv[1:], ("tar", "tar+gzip")):
    t = tarfile.open(path)
    f = lambda n: t.extractfile(n).read()
    idx = json.loads(f("index.json"))
    man = json.loads(f("blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
    for l in man["layers"]:
        assert l["mediaType"] == "application/vnd.oci.image.layer.v1." + want, (path, l)
PY
# A layout directory as the base works as well as a tar (its layer 1 is v3's).
exact "$WORK/v3-dir" "$WORK/v3.tar" dirbase
# --gzip compresses every layer; the diff_ids and the image ID stay.
"$CDIMG" apply -q --gzip "$WORK/v1.tar" "$WORK/plain.cdimg" -o "$WORK/plainz.tar"
$CHECK layers "$WORK/v3-plain.tar" "$WORK/plainz.tar"

# --squash: one layer whatever the delta holds.
"$CDIMG" apply -q --squash "$WORK/v1.tar" "$WORK/embedded.cdimg" -o "$WORK/sq.tar"
$CHECK image "$WORK/sq.tar" "$WORK/y" "$WORK/v3.tar" ex/app:v3 >/dev/null
# --no-layers: no recipes; apply says so and squashes.
"$CDIMG" diff -q --no-layers "$WORK/v1.tar" "$WORK/v3.tar" -o "$WORK/nolayers.cdimg"
"$CDIMG" apply -q "$WORK/v1.tar" "$WORK/nolayers.cdimg" -o "$WORK/nl.tar" 2>"$WORK/nl.err"
grep -q "records no layer recipes" "$WORK/nl.err" || fail "no warning without recipes"
$CHECK image "$WORK/nl.tar" "$WORK/y" "$WORK/v3.tar" ex/app:v3 >/dev/null
[ "$(stat -c %s "$WORK/nolayers.cdimg")" -lt "$(stat -c %s "$WORK/embedded.cdimg")" ] ||
	fail "--no-layers is not smaller"

# ---- a merged delta: v1 -> v3 through v2 ----
# v3 shares its first layer with v2, which v1 lacks: the second delta takes
# that layer "as in the base" (v2's), the merged delta's recipes take it
# from the first delta's recipe of it, so applying the merge over v1 still
# gives every original layer of v3. That recipe predicts its entries from
# v2's tree: merge reads it against v2's tree and writes it against v3's,
# which it gets from --base (v1) through the chain. Without --base it says
# that layer is lost (apply squashes, honestly); deltas with raw recipes
# need no tree.
cp -a "$WORK/y" "$WORK/y2"
echo "changed in v3" >>"$WORK/y2/etc/overwritten"
$MKIMAGES oci "$WORK/x" "$WORK/y2" "$WORK/v4.tar" --ref ex/app:v4 --opaque var/cache
"$CDIMG" diff -q "$WORK/v1.tar" "$WORK/v3.tar" -o "$WORK/m12.cdimg"
"$CDIMG" diff -q "$WORK/v3.tar" "$WORK/v4.tar" -o "$WORK/m23.cdimg"
"$CDIMG" diff -q --recipes=raw "$WORK/v1.tar" "$WORK/v3.tar" -o "$WORK/r12.cdimg"
"$CDIMG" diff -q --recipes=raw "$WORK/v3.tar" "$WORK/v4.tar" -o "$WORK/r23.cdimg"
"$CDIMG" merge -q --base "$WORK/v1.tar" "$WORK/m12.cdimg" "$WORK/m23.cdimg" -o "$WORK/m13.cdimg" \
	2>"$WORK/merge.err" || fail "merge --base failed: $(cat "$WORK/merge.err")"
[ ! -s "$WORK/merge.err" ] || fail "merge --base warned: $(cat "$WORK/merge.err")"
"$CDIMG" merge -q "$WORK/r12.cdimg" "$WORK/r23.cdimg" -o "$WORK/r13.cdimg" 2>"$WORK/merge.err" ||
	fail "merge of raw recipes failed: $(cat "$WORK/merge.err")"
[ ! -s "$WORK/merge.err" ] || fail "merge of raw recipes warned: $(cat "$WORK/merge.err")"
for m in m13 r13; do
	"$CDIMG" apply "$WORK/v1.tar" "$WORK/$m.cdimg" -o "$WORK/$m-out.tar" >"$WORK/apply.txt" \
		2>"$WORK/apply.err" || fail "merged $m: apply failed: $(cat "$WORK/apply.err")"
	grep -q "original image ID" "$WORK/apply.txt" ||
		fail "merged $m: not exact: $(cat "$WORK/apply.err")"
	$CHECK layers "$WORK/v4.tar" "$WORK/$m-out.tar"
	[ "$($CHECK digest config "$WORK/$m-out.tar")" = "$($CHECK digest config "$WORK/v4.tar")" ] ||
		fail "merged $m: image ID differs"
done
# The second delta alone takes the shared layer as its base's (kind 2),
# which v1 lacks; the merged recipes hold the first delta's recipe of it.
python3 - "$WORK/m23.cdimg" "$WORK/m13.cdimg" "$WORK/r13.cdimg" <<'PY'
import json, subprocess, sys, tarfile
def first_kind(path):
    t = tarfile.open(path)
    idx = json.load(t.extractfile("index.json"))
    blob = lambda d: t.extractfile("blobs/sha256/" + d["digest"].split(":")[1]).read()
    man = json.loads(blob(idx["manifests"][0]))
    raw = subprocess.run(["zstd", "-dc"], input=blob(man["layers"][2]), check=True,
                         capture_output=True).stdout
    assert raw[:8] == b"DI3LAYRS", raw[:8]
    return raw[8], raw[16]
assert first_kind(sys.argv[1]) == (2, 2), "second delta: shared layer not from the base"
assert first_kind(sys.argv[2]) == (2, 1), "merged: shared layer not a predicted recipe"
assert first_kind(sys.argv[3]) == (1, 1), "merged raw: shared layer not a raw recipe"
PY
# Without --base: said, and apply squashes rather than claim the original.
"$CDIMG" merge -q "$WORK/m12.cdimg" "$WORK/m23.cdimg" -o "$WORK/n13.cdimg" 2>"$WORK/merge.err"
grep -q "without --base IMAGE" "$WORK/merge.err" || fail "merge: no warning for the lost layer"
"$CDIMG" apply -q "$WORK/v1.tar" "$WORK/n13.cdimg" -o "$WORK/n13-out.tar" 2>"$WORK/apply.err"
grep -q "not giving back the original layers" "$WORK/apply.err" ||
	fail "merged without --base: no fallback warning: $(cat "$WORK/apply.err")"
$CHECK image "$WORK/n13-out.tar" "$WORK/y2" "$WORK/v4.tar" ex/app:v4 >/dev/null
echo "  merged v1 -> v3 -> v4: the original layers of v4 over v1 (--base, or raw recipes)"

# ---- damaged recipes: consistent digests, wrong insides ----
$CHECK badrecipe "$WORK/embedded.cdimg" "$WORK/bad" >/dev/null
n=0
for f in "$WORK"/bad/*.cdimg; do
	"$CDIMG" show "$f" >/dev/null || fail "$(basename "$f"): show refuses it"
	"$CDIMG" apply -q "$WORK/v1.tar" "$f" -o "$WORK/bad.tar" 2>"$WORK/bad.err" ||
		fail "$(basename "$f"): apply failed instead of falling back"
	grep -q "not giving back the original layers" "$WORK/bad.err" ||
		fail "$(basename "$f"): no warning: $(cat "$WORK/bad.err")"
	! $CHECK layers "$WORK/v3.tar" "$WORK/bad.tar" >/dev/null 2>&1 ||
		fail "$(basename "$f"): claimed exact"
	$CHECK image "$WORK/bad.tar" "$WORK/y" "$WORK/v3.tar" ex/app:v3 >/dev/null
	echo "  $(basename "$f"): $(head -c 200 "$WORK/bad.err")"
	rm -f "$WORK/bad.tar"
	n=$((n + 1))
done
[ "$n" -eq 4 ] || fail "expected 4 damaged variants, got $n"
ls -a "$WORK" | grep -q '\.tmp-' && fail "temporary files left behind"

# ---- the real nginx pair as 2-layer images ----
bash "$SRC/tests/assets/mktrees.sh" --out "$TREES" nginx >/dev/null
V1=$TREES/nginx-v1
V2=$TREES/nginx-v2
# The target's top layer overwrites a file and deletes one (whiteout).
# a real copy: mkimages.py sees hardlinks (cp -al) as changed groups
cp -a "$V2" "$WORK/ng2"
echo "overwritten by the top layer" >>"$WORK/ng2/etc/debian_version"
gone=$(cd "$V1" && find usr/share/doc -type f | sort | head -n 1)
rm "$WORK/ng2/$gone"
$MKIMAGES oci "$V1" "$V1" "$WORK/ng1.tar" --ref ex/nginx:v1
$MKIMAGES oci "$V1" "$WORK/ng2" "$WORK/ng2.tar" --ref ex/nginx:v2
python3 - "$WORK/ng2.tar" "$gone" <<'PY'
import gzip, json, sys, tarfile
t = tarfile.open(sys.argv[1])
f = lambda n: t.extractfile(n).read()
idx = json.loads(f("index.json"))
man = json.loads(f("blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
top = gzip.decompress(f("blobs/sha256/" + man["layers"][1]["digest"][7:]))
import io
names = tarfile.open(fileobj=io.BytesIO(top)).getnames()
d, b = sys.argv[2].rsplit("/", 1)
assert d + "/.wh." + b in names, "no whiteout for " + sys.argv[2]
assert "etc/debian_version" in names
PY
echo "nginx (2 layers, the first shared with the base):"
exact "$WORK/ng1.tar" "$WORK/ng2.tar" nginx 4
echo "nginx, docker save, the base's image as an OCI tar:"
$MKIMAGES oci "$V1" "$WORK/ng2" "$WORK/ng2-docker.tar" --ref ex/nginx:v2 --docker-save
exact "$WORK/ng1.tar" "$WORK/ng2-docker.tar" nginx-docker 4
echo "cdimg_layers: ok"
