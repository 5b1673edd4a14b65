#!/bin/bash
# Only what the destination lacks (real nginx images, v1 and v2 sharing
# their first layer): v2 into a layout holding v1 writes v2's new blobs
# only and leaves the shared one untouched; a second time writes nothing.
# --exclude-from writes a partial archive without the blobs the base holds,
# listed in di3fs-excluded.json; copied where the base is, it completes
# (the full image, skopeo agrees); elsewhere it fails with exit 3 naming the
# missing blob, and writes nothing.
. "$(dirname "$0")/lib.sh"

MKIMAGES="python3 $SRC/tests/assets/mkimages.py"
OCIMOD="python3 $SRC/tests/tools/ocimod.py"
TREES=${DI3FS_TREES:-/var/cache/di3fs/trees}
[ "$(id -u)" = 0 ] || fail "must run as root (the real trees' files)"
command -v skopeo >/dev/null || fail "skopeo is not installed: run install/deps.sh"
bash "$SRC/tests/assets/mktrees.sh" --out "$TREES" nginx >/dev/null

W=$WORK
$MKIMAGES oci "$TREES/nginx-v1" "$TREES/nginx-v2" "$W/v2" --layout-dir --ref example.org/nginx:v2
# v1: v2's first layer only
cp -a "$W/v2" "$W/v1" && $OCIMOD droplast "$W/v1" && $OCIMOD ref "$W/v1" example.org/nginx:v1

digest() {
	skopeo inspect --raw "$1" | sha256sum | cut -d' ' -f1
}
# blob NAME I: the digest of layer I (or "config") of layout NAME.
blob() {
	skopeo inspect --raw "oci:$W/$1" | python3 -c '
import json, sys
m = json.load(sys.stdin)
d = m["config"] if sys.argv[1] == "config" else m["layers"][int(sys.argv[1])]
print(d["digest"], d["size"])' "$2"
}

read -r shared shared_size < <(blob v1 0)
read -r l2 l2_size < <(blob v2 1)
read -r c2 c2_size < <(blob v2 config)
[ "$shared" = "$(blob v2 0 | cut -d' ' -f1)" ] || fail "v1 and v2 do not share layer 1"
echo "shared layer $shared ($shared_size bytes)"

# v2 into a layout that has v1: its config and new layer only.
"$CDIMG" copy -q "oci:$W/v1" "oci:$W/L"
ino=$(stat -c %i:%Y "$W/L/blobs/sha256/${shared#sha256:}")
"$CDIMG" copy --json "oci:$W/v2" "oci:$W/L" >"$W/l.json"
copy_summary "$W/l.json" blobs=3 copied=2 existing=1 copied_bytes=$((l2_size + c2_size))
[ "$(stat -c %i:%Y "$W/L/blobs/sha256/${shared#sha256:}")" = "$ino" ] ||
	fail "the shared layer was written again"
grep -q '"status":"exists","digest":"'"$shared" "$W/l.json" || fail "no 'exists' event for the shared layer"
for v in v1 v2; do
	[ "$(digest "oci:$W/L:example.org/nginx:$v")" = "$(digest "oci:$W/$v")" ] ||
		fail "L: $v is not the same image"
done
"$CDIMG" copy --json "oci:$W/v2" "oci:$W/L" >"$W/l2.json"
copy_summary "$W/l2.json" copied=0 existing=3
ls -a "$W/L" | grep -q di3fs-stage && fail "a staging directory was left in L"

# A partial archive: v2 without what v1 has.
"$CDIMG" copy --json --exclude-from "oci:$W/v1" "oci:$W/v2" "oci-archive:$W/p.tar" >"$W/p.json"
copy_summary "$W/p.json" excluded=1 copied=2
"$CDIMG" copy -q "oci:$W/v2" "oci-archive:$W/full.tar"
tar tf "$W/p.tar" | grep -q "${shared#sha256:}" && fail "the partial archive holds the shared layer"
tar xOf "$W/p.tar" di3fs-excluded.json >"$W/excl.json"
python3 - "$W/excl.json" "$shared" "$shared_size" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["excluded"]
assert [(d["digest"], d["size"], d["mediaType"]) for d in e] == \
    [(sys.argv[2], int(sys.argv[3]), "application/vnd.oci.image.layer.v1.tar+gzip")], e
PY
# smaller by the shared layer, give or take its tar header and the list
extra=$(($(stat -c %s "$W/p.tar") + shared_size - $(stat -c %s "$W/full.tar")))
[ "$extra" -le 2048 ] || fail "the partial archive is $extra bytes more than full less the layer"
[ "$(digest "oci-archive:$W/p.tar")" = "$(digest "oci:$W/v2")" ] || fail "p.tar: another manifest"
echo "partial archive $(stat -c %s "$W/p.tar") bytes, full $(stat -c %s "$W/full.tar")"

# Where the base is, it completes.
cp -a "$W/v1" "$W/here"
"$CDIMG" copy --json "oci-archive:$W/p.tar" "oci:$W/here" >"$W/c.json"
copy_summary "$W/c.json" existing=1 copied=2
skopeo copy -q "oci:$W/here:example.org/nginx:v2" "oci:$W/check" || fail "the completed image is not whole"
[ "$(digest "oci:$W/check")" = "$(digest "oci:$W/v2")" ] || fail "completed: another image"
ls "$W/here" | grep -q di3fs-excluded && fail "the completed layout still says it is partial"

# Elsewhere it fails, naming the blob, leaving nothing.
expect_exit 3 "$CDIMG" copy "oci-archive:$W/p.tar" "oci:$W/nobase"
grep -q "$shared" "$WORK/err.txt" || fail "the missing blob is not named"
grep -q "neither" "$WORK/err.txt" || fail "no reason given"
[ ! -e "$W/nobase" ] || fail "a failed completion left a layout"
ls -a "$W" | grep -q nobase && fail "a failed completion left a staging directory"
expect_exit 3 "$CDIMG" copy --json "$W/p.tar" "oci-archive:$W/nobase.tar"
python3 -c '
import json, sys
e = [json.loads(l) for l in open(sys.argv[1])][-1]
assert e["event"] == "error" and e["missing"] == [sys.argv[2]], e' "$WORK/out.txt" "$shared"
[ ! -e "$W/nobase.tar" ] || fail "a failed completion left an archive"

# docker-archive partials complete the same way; a partial is only for
# layouts and archives, and only for new ones.
"$CDIMG" copy -q --exclude-from "oci:$W/v1" "oci:$W/v2" "docker-archive:$W/pd.tar"
cp -a "$W/v1" "$W/here2"
"$CDIMG" copy -q "docker-archive:$W/pd.tar" "oci:$W/here2"
[ "$(digest "oci:$W/here2:example.org/nginx:v2")" = "$(digest "oci:$W/v2")" ] ||
	fail "docker-archive partial: another image"
expect_exit 2 "$CDIMG" copy --exclude-from "oci:$W/v1" "oci:$W/v2" containerd:app:v2
cp -a "$W/v1" "$W/old"
expect_exit 3 "$CDIMG" copy --exclude-from "oci:$W/v1" "oci:$W/v2" "oci:$W/old"
cmp "$W/old/index.json" "$W/v1/index.json" || fail "a refused partial changed the layout"
echo "copy_partial: ok"
