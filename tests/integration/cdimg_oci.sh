#!/bin/bash
# Images in and out: two OCI image tars -> .cdimg (a valid OCI layout,
# checked blob by blob), show, apply -> OCI image tar (layer == target tree,
# config settings kept), deterministic outputs, damaged or foreign .cdimg and
# wrong bases refused with exit 3, plain trees refused for .cdimg/.tar.
. "$(dirname "$0")/lib.sh"

MKOCI="python3 $SRC/tests/tools/mkoci.py"
MKIMAGES=$SRC/tests/assets/mkimages.py
CHECK="python3 $SRC/tests/tools/ocicheck.py"
[ "$(id -u)" = 0 ] || fail "must run as root (owners, devices)"

# A small pair with every kind of entry and metadata.
d=$WORK/pair
mkdir -p "$d/v1/etc" "$d/v1/bin" "$d/v1/dev"
python3 -c 'import random; r = random.Random(7); open("'"$d"'/v1/bin/tool", "wb").write(bytes(r.randrange(4) for _ in range(20000)))'
echo "keep me" >"$d/v1/etc/kept"
echo "rename me, I am long enough to matter" >"$d/v1/etc/old-name"
echo "bye" >"$d/v1/etc/removed"
cp -a "$d/v1" "$d/v2"
printf 'patched' | dd of="$d/v2/bin/tool" bs=1 seek=1000 conv=notrunc status=none
mv "$d/v2/etc/old-name" "$d/v2/etc/new-name"
rm "$d/v2/etc/removed"
head -c 3000 /dev/urandom >"$d/v2/etc/fresh"
: >"$d/v2/etc/empty"
ln -s kept "$d/v2/etc/link"
ln "$d/v2/etc/kept" "$d/v2/bin/hard"
mkfifo "$d/v2/etc/fifo"
mknod "$d/v2/dev/null" c 1 3
chown 1234:4321 "$d/v2/etc/fresh"
chmod 4755 "$d/v2/bin/tool"
setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= "$d/v2/bin/tool"
setfattr -n user.note -v hello "$d/v2/etc/fresh"
touch -d '2021-02-03 04:05:06.123456789' "$d/v2/etc/kept"
# Names a locale cannot convert (Latin-1, UTF-8) and names past ustar's 100.
printf 'latin-1 name' >"$d/v2/etc/caf$(printf '\351')"
printf 'utf-8 name' >"$d/v2/etc/caf$(printf '\303\251')"
ln -s "caf$(printf '\351')" "$d/v2/etc/link-latin1"
long=$(printf 'd%.0s' $(seq 120))
mkdir "$d/v2/etc/$long"
# A hardlink group whose first path in byte order ("a-b/x") is not the first
# in a depth-first tar ("a/y"), and a directory whose mtime must survive the
# sibling "a-b" that sorts between it and its children.
mkdir "$d/v2/a" "$d/v2/a-b"
echo "linked content" >"$d/v2/a-b/x"
ln "$d/v2/a-b/x" "$d/v2/a/y"
touch -d @1000000000 "$d/v2/a" "$d/v2/a-b"
echo deep >"$d/v2/etc/$long/$(printf 'f%.0s' $(seq 200))"

$MKOCI --ref example.org/app:v1 "$d/v1" "$WORK/v1.tar" >/dev/null
$MKOCI --ref example.org/app:v2 --entrypoint '["/bin/tool","--serve"]' --env A=1 --env PATH=/bin \
	--label org.example.version=2 --workdir /etc "$d/v2" "$WORK/v2.tar" >/dev/null

# diff: a .cdimg, deterministic across thread counts and runs.
"$CDIMG" diff -q -j 2 "$WORK/v1.tar" "$WORK/v2.tar" -o "$WORK/d.cdimg"
"$CDIMG" diff -q -j 1 "$WORK/v1.tar" "$WORK/v2.tar" -o "$WORK/d2.cdimg"
cmp "$WORK/d.cdimg" "$WORK/d2.cdimg" || fail ".cdimg differs between runs"
"$CDIMG" diff -q "$WORK/v1.tar" "$WORK/v2.tar" -o "$WORK/d.dimg"
$CHECK cdimg "$WORK/d.cdimg" "$WORK/v1.tar" "$WORK/v2.tar" "$WORK/d.dimg" example.org/app:v2
echo "cdimg $(stat -c %s "$WORK/d.cdimg") bytes, dimg $(stat -c %s "$WORK/d.dimg") bytes"

# show: text and JSON name both images.
"$CDIMG" show "$WORK/d.cdimg" >"$WORK/show.txt"
grep -q "example.org/app:v2" "$WORK/show.txt" || fail "show does not name the target"
grep -q "$($CHECK digest config "$WORK/v1.tar")" "$WORK/show.txt" || fail "show lacks the base config"
grep -q "$($CHECK digest manifest "$WORK/v2.tar")" "$WORK/show.txt" || fail "show lacks the target manifest"
"$CDIMG" show --json "$WORK/d.cdimg" >"$WORK/show.json"
python3 - "$WORK/show.json" "$($CHECK digest config "$WORK/v2.tar")" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["container"] == "cdimg", j
c = j["cdimg"]
assert c["target"]["ref"] == "example.org/app:v2", c
assert c["target"]["config_digest"] == sys.argv[2], c
assert c["base"]["tree"] == j["base_tree"] and c["target"]["tree"] == j["target_tree"], c
PY

# apply: a directory (as today) and OCI image tars, plain and gzip.
# (The images have no root entry: the root's metadata is the squash's own.)
"$CDIMG" apply -q "$WORK/v1.tar" "$WORK/d.cdimg" -o "$WORK/out"
for top in a a-b bin dev etc; do
	$TREECMP "$d/v2/$top" "$WORK/out/$top" || fail "applied tree differs from v2 in /$top"
done
# By default the original layer comes back (cdimg_layers.sh tests that in
# depth); --squash gives the one-layer image checked here field by field.
"$CDIMG" apply -q "$WORK/v1.tar" "$WORK/d.cdimg" -o "$WORK/exact.tar"
$CHECK layers "$WORK/v2.tar" "$WORK/exact.tar"
"$CDIMG" apply -q --squash "$WORK/v1.tar" "$WORK/d.cdimg" -o "$WORK/app.tar"
"$CDIMG" apply -q --squash "$WORK/v1.tar" "$WORK/d.cdimg" -o "$WORK/app2.tar"
cmp "$WORK/app.tar" "$WORK/app2.tar" || fail "OCI output differs between runs"
"$CDIMG" apply -q --squash --gzip --ref other/name:1 "$WORK/v1.tar" "$WORK/d.cdimg" -o "$WORK/appz.tar"
$CHECK image "$WORK/app.tar" "$d/v2" "$WORK/v2.tar" example.org/app:v2
$CHECK image "$WORK/appz.tar" "$d/v2" "$WORK/v2.tar" other/name:1
# Plain GNU tar (no --delay-directory-restore) extracts the layer exactly:
# it is written depth-first, each hardlink after the file it names.
mkdir "$WORK/oci" "$WORK/plain"
tar -C "$WORK/oci" -xf "$WORK/app.tar"
layer=$(oci_layer "$WORK/oci")
tar -C "$WORK/plain" --xattrs --xattrs-include='*' --numeric-owner -xpf "$layer"
for top in a a-b bin dev etc; do
	$TREECMP "$d/v2/$top" "$WORK/plain/$top" || fail "plain tar -x of the layer differs in /$top"
done
# skopeo is a second, independent reader of OCI archives (install/deps.sh).
skopeo inspect oci-archive:"$WORK/app.tar" >/dev/null || fail "skopeo refuses the OCI tar"
skopeo copy -q oci-archive:"$WORK/appz.tar" dir:"$WORK/skopeo" || fail "skopeo copy failed"

# What cannot work: plain trees for a .cdimg, a raw .dimg to an OCI tar.
expect_exit 2 "$CDIMG" diff -q "$d/v1" "$WORK/v2.tar" -o "$WORK/x.cdimg"
grep -q "\.dimg" "$WORK/err.txt" || fail "no hint to write a .dimg"
expect_exit 2 "$CDIMG" diff -q "$WORK/v1.tar" "$d/v2" -o "$WORK/x.cdimg"
expect_exit 2 "$CDIMG" apply -q "$WORK/v1.tar" "$WORK/d.dimg" -o "$WORK/x.tar"
[ ! -e "$WORK/x.cdimg" ] && [ ! -e "$WORK/x.tar" ] || fail "output left behind"

# Wrong base: exit 3, both sides named.
expect_exit 3 "$CDIMG" apply -q "$WORK/v2.tar" "$WORK/d.cdimg" -o "$WORK/x.tar"
grep -q "wrong base" "$WORK/err.txt" && grep -q "v2.tar" "$WORK/err.txt" &&
	grep -q "$($CHECK digest config "$WORK/v1.tar" | cut -c1-19)" "$WORK/err.txt" ||
	fail "wrong-base message: $(cat "$WORK/err.txt")"

# Damaged and foreign deltas: exit 3 with a message naming the file.
$CHECK corrupt "$WORK/d.cdimg" "$WORK/bad"
for f in "$WORK"/bad/*.cdimg; do
	for cmd in show apply; do
		if [ $cmd = show ]; then
			expect_exit 3 "$CDIMG" show "$f"
		else
			expect_exit 3 "$CDIMG" apply -q "$WORK/v1.tar" "$f" -o "$WORK/x.tar"
		fi
		grep -q "$(basename "$f")" "$WORK/err.txt" || fail "$(basename "$f"): message does not name it"
		[ ! -e "$WORK/x.tar" ] || fail "$(basename "$f"): output left behind"
	done
	echo "  $(basename "$f"): $(head -c 160 "$WORK/err.txt")"
done
ls -a "$WORK" | grep -q '\.tmp-' && fail "temporary files left behind"

# Multi-layer and docker-save targets (the squash engineer's image maker).
if [ -f "$MKIMAGES" ]; then
	python3 "$MKIMAGES" oci "$d/v1" "$d/v2" "$WORK/v2-2l.tar" --ref example.org/app:v2 >/dev/null
	python3 "$MKIMAGES" oci "$d/v1" "$d/v2" "$WORK/v2-docker.tar" --docker-save \
		--ref example.org/app:v2 >/dev/null
	for t in v2-2l v2-docker; do
		"$CDIMG" diff -q "$WORK/v1.tar" "$WORK/$t.tar" -o "$WORK/$t.cdimg"
		"$CDIMG" apply -q --squash "$WORK/v1.tar" "$WORK/$t.cdimg" -o "$WORK/$t-out.tar"
		$CHECK image "$WORK/$t-out.tar" "$d/v2" "$WORK/$t.tar" example.org/app:v2
	done
fi
echo "cdimg_oci: ok"
