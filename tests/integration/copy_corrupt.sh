#!/bin/bash
# Blobs that do not match their descriptors: a flipped byte, a blob cut
# short, one too long, a damaged manifest, a missing blob; from a layout
# and from an archive, into every kind of destination, one job or several.
# Each is exit 3 naming the blob, and nothing is committed: no new layout
# or archive, an existing layout unchanged, no staging directory left.
# Progress shows on a terminal only. diff and apply take transport names
# and make the same delta as with paths.
. "$(dirname "$0")/lib.sh"

MKIMAGES="python3 $SRC/tests/assets/mkimages.py"
OCIMOD="python3 $SRC/tests/tools/ocimod.py"
[ "$(id -u)" = 0 ] || fail "must run as root (device nodes in the synthetic trees)"
command -v skopeo >/dev/null || fail "skopeo is not installed: run install/deps.sh"

W=$WORK
$MKIMAGES synth "$W/t"
$MKIMAGES oci "$W/t/base" "$W/t/new" "$W/good" --layout-dir --ref example.org/app:v2
$MKIMAGES oci "$W/t/base" "$W/t/base" "$W/other" --layout-dir --ref example.org/app:v1

# layer I of layout DIR: "DIGEST SIZE"
layer() {
	skopeo inspect --raw "oci:$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)["layers"][int(sys.argv[1])]
print(d["digest"], d["size"])' "$2"
}
read -r l1 _ < <(layer "$W/good" 1)
blobfile() { echo "$1/blobs/sha256/${2#sha256:}"; }

# refused SRC WHAT: exit 3 naming WHAT into every destination, nothing left.
refused() {
	local src=$1 what=$2 j
	for j in 1 4; do
		rm -rf "$W/dst" "$W/dst.tar" "$W/exist"
		cp -a "$W/other" "$W/exist"
		for dst in "oci:$W/dst" "oci-archive:$W/dst.tar" "docker-archive:$W/dst.tar" \
			"oci:$W/exist"; do
			expect_exit 3 "$CDIMG" copy -j $j "$src" "$dst"
			grep -q "$what" "$WORK/err.txt" || {
				cat "$WORK/err.txt" >&2
				fail "$src -> $dst: $what is not named"
			}
		done
		[ ! -e "$W/dst" ] && [ ! -e "$W/dst.tar" ] || fail "$src: a destination was left"
		ls -a "$W" "$W/exist" | grep -q di3fs-stage && fail "$src: a staging directory was left"
		cmp "$W/exist/index.json" "$W/other/index.json" || fail "$src: the layout's index changed"
		diff <(ls "$W/exist/blobs/sha256") <(ls "$W/other/blobs/sha256") >/dev/null ||
			fail "$src: blobs were added to the layout"
	done
	echo "  refused: $src ($what)"
}

# A flipped byte, in a layout and in an archive.
cp -a "$W/good" "$W/flip"
$OCIMOD corrupt "$W/flip" "$l1"
refused "oci:$W/flip" "$l1"
"$CDIMG" copy -q "oci:$W/good" "oci-archive:$W/good.tar"
$OCIMOD tarflip "$W/good.tar" "$l1" "$W/flip.tar"
refused "oci-archive:$W/flip.tar" "$l1"

# Cut short, and longer than stated.
cp -a "$W/good" "$W/short"
f=$(blobfile "$W/short" "$l1")
truncate -s -7 "$f"
refused "oci:$W/short" "$l1"
grep -q "bytes, its descriptor states" "$WORK/err.txt" || fail "short: the size is not the reason"
cp -a "$W/good" "$W/long"
printf 'x' >>"$(blobfile "$W/long" "$l1")"
refused "oci:$W/long" "$l1"

# A damaged manifest is named too (the index entry's digest).
cp -a "$W/good" "$W/badman"
m=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$W/good/index.json")
$OCIMOD corrupt "$W/badman" "$m"
refused "oci:$W/badman" "$m"

# A blob that is not there at all.
cp -a "$W/good" "$W/gone"
rm "$(blobfile "$W/gone" "$l1")"
refused "oci:$W/gone" "$l1"
grep -q "neither" "$WORK/err.txt" || fail "gone: not said to be missing"

# The good image copies into the same places. On a terminal: a line per
# blob (the shared base layer "Already exists") and the totals; otherwise
# nothing at all.
script -qec "$CDIMG copy oci:$W/good oci:$W/exist" /dev/null | tr '\r' '\n' |
	sed 's/\x1b\[[0-9]*[A-Z]//g' >"$W/tty.txt"
for want in "^1/3 sha256:[0-9a-f]\{12\}… " "Already exists" "Copied " \
	"^3 blobs: 2 copied (.*), 1 already existed"; do
	grep -q "$want" "$W/tty.txt" || fail "terminal progress: no '$want'"
done
"$CDIMG" copy "oci-archive:$W/good.tar" "docker-archive:$W/dst.tar" >"$W/quiet.out" 2>&1
[ ! -s "$W/quiet.out" ] || fail "progress without a terminal"

# diff and apply by transport name: the same delta as by path.
"$CDIMG" copy -q "oci:$W/other" "docker-archive:$W/other-d.tar"
"$CDIMG" diff -q "$W/other" "$W/good.tar" -o "$W/by-path.cdimg"
"$CDIMG" diff -q "docker-archive:$W/other-d.tar" "oci-archive:$W/good.tar:example.org/app:v2" \
	-o "$W/by-name.cdimg"
cmp "$W/by-path.cdimg" "$W/by-name.cdimg" || fail "diff by name and by path differ"
"$CDIMG" apply -q "oci:$W/exist:example.org/app:v1" "$W/by-name.cdimg" -o "$W/applied.tar"
skopeo inspect --raw "oci-archive:$W/applied.tar" >/dev/null || fail "apply by name"
expect_exit 2 "$CDIMG" diff --ref example.org/app:v9 "oci:$W/exist:example.org/app:v1" "$W/good" \
	-o "$W/x.cdimg"
expect_exit 3 "$CDIMG" diff "oci:$W/flip" "$W/good" -o "$W/x.cdimg"
grep -q "$l1" "$WORK/err.txt" || fail "diff: the damaged layer is not named"
echo "copy_corrupt: ok"
