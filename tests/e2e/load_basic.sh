#!/bin/bash
# End-to-end: `cdimg load` puts a .cdimg's target image into a private
# containerd over its imported base, through containerd's API only: the image
# record, the content (config, manifest, .dimg) with their gc labels, the
# target snapshot (chain id checked against containerd's own import of the
# target) over the base's, idempotence, garbage collection, and the errors
# (base missing, base not unpacked, corrupt .cdimg, no containerd).
. "$(dirname "$0")/lib.sh"

CDIMG=${CDIMG:-$SRC/build/ctr-tools/cdimg}
[ -x "$CDIMG" ] || fail "no cdimg binary at $CDIMG"
"$CDIMG" --help | grep -q '^  load' || fail "cdimg was built without load (BUILD_SNAPSHOTTER=OFF?)"
BASE=example.org/load:base
NAME=example.org/load:v2

step() {
	echo "== $*"
}

# chain_id IMAGE.tar: the OCI chain id of the image's config diff_ids,
# computed here independently of cdimg.
chain_id() {
	python3 - "$1" <<'PY'
import hashlib, json, sys, tarfile
t = tarfile.open(sys.argv[1])
blob = lambda d: t.extractfile("blobs/" + d.replace(":", "/")).read()
desc = json.loads(t.extractfile("index.json").read())["manifests"][0]
cfg = json.loads(blob(json.loads(blob(desc["digest"]))["config"]["digest"]))
chain = None
for d in cfg["rootfs"]["diff_ids"]:
    chain = d if chain is None else "sha256:" + hashlib.sha256((chain + " " + d).encode()).hexdigest()
print(chain)
PY
}

step "start the snapshotter and a private containerd"
start_snapshotter
start_containerd

step "a base image (one layer) and a target (two layers) that changes it"
mkdir -p "$WORK/base/etc" "$WORK/base/usr/bin"
echo "version 1" >"$WORK/base/etc/version"
head -c 300000 /dev/urandom >"$WORK/base/usr/bin/tool"
echo "unchanged" >"$WORK/base/etc/same"
cp -a "$WORK/base" "$WORK/new"
echo "version 2" >"$WORK/new/etc/version"
printf 'patched' | dd of="$WORK/new/usr/bin/tool" bs=1 seek=1000 conv=notrunc 2>/dev/null
echo "only in v2" >"$WORK/new/etc/added"
python3 "$SRC/tests/tools/mkoci.py" --ref "$BASE" "$WORK/base" "$WORK/base.tar" >/dev/null
python3 "$SRC/tests/assets/mkimages.py" oci "$WORK/base" "$WORK/new" "$WORK/target.tar" \
	--ref "$NAME" >/dev/null
"$CDIMG" diff -q "$WORK/base.tar" "$WORK/target.tar" -o "$WORK/t.cdimg" --target-ref "$NAME"
"$CDIMG" show --json "$WORK/t.cdimg" >"$WORK/show.json"
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print(d" + sys.argv[2] + ")")' "$@"; }
MANIFEST=$(jget "$WORK/show.json" '["cdimg"]["target"]["manifest_digest"]')
CONFIG=$(jget "$WORK/show.json" '["cdimg"]["target"]["config_digest"]')
BASECFG=$(jget "$WORK/show.json" '["cdimg"]["base"]["config_digest"]')
DIMG=$(jget "$WORK/show.json" '["cdimg"]["dimg_digest"]')
BASE_CHAIN=$(chain_id "$WORK/base.tar")
TARGET_CHAIN=$(chain_id "$WORK/target.tar")

step "import the base through di3fs"
$C images import --snapshotter=di3fs "$WORK/base.tar" >/dev/null
$C snapshots --snapshotter di3fs ls | grep -q "^$BASE_CHAIN " ||
	fail "base snapshot $BASE_CHAIN not there: $($C snapshots --snapshotter di3fs ls)"

step "cdimg load"
t0=$(date +%s%N)
"$CDIMG" load --json -a "$CSOCK" -n "$NS" "$WORK/t.cdimg" >"$WORK/load.json"
ms=$((($(date +%s%N) - t0) / 1000000))
echo "cdimg load took $ms ms"
expect_eq "loaded name" "$NAME" "$(jget "$WORK/load.json" '["name"]')"
expect_eq "base found" "$BASE" "$(jget "$WORK/load.json" '["base"]["name"]')"
expect_eq "base chain id" "$BASE_CHAIN" "$(jget "$WORK/load.json" '["base"]["chain_id"]')"
expect_eq "target chain id" "$TARGET_CHAIN" "$(jget "$WORK/load.json" '["chain_id"]')"
expect_eq "snapshot created" True "$(jget "$WORK/load.json" '["snapshot_created"]')"

step "the image record names the target manifest"
row=$($C images ls | awk -v n="$NAME" '$1 == n')
[ -n "$row" ] || fail "image $NAME not listed: $($C images ls)"
echo "$row" | grep -q " $MANIFEST " || fail "image row does not name $MANIFEST: $row"
echo "$row" | grep -q "application/vnd.oci.image.manifest.v1+json" || fail "media type: $row"

step "content: the .dimg, config and manifest with their gc labels"
$C content ls >"$WORK/content.txt"
grep "^$DIMG" "$WORK/content.txt" >/dev/null || fail "no .dimg blob $DIMG in the content store"
grep "^$CONFIG" "$WORK/content.txt" | grep -q "containerd.io/gc.ref.snapshot.di3fs=$TARGET_CHAIN" ||
	fail "config lacks the snapshot gc label: $(grep "^$CONFIG" "$WORK/content.txt")"
mrow=$(grep "^$MANIFEST" "$WORK/content.txt")
echo "$mrow" | grep -q "containerd.io/gc.ref.content.config=$CONFIG" || fail "manifest labels: $mrow"
echo "$mrow" | grep -q "containerd.io/gc.ref.content.di3fs.dimg=$DIMG" || fail "manifest labels: $mrow"
$C content get "$DIMG" | cmp - <(python3 - "$WORK/t.cdimg" "$DIMG" <<'PY'
import sys, tarfile
t = tarfile.open(sys.argv[1])
sys.stdout.buffer.write(t.extractfile("blobs/" + sys.argv[2].replace(":", "/")).read())
PY
) || fail "the .dimg in the content store differs from the one in the .cdimg"

step "the snapshot: target chain id over the base's, with the delta label"
$C snapshots --snapshotter di3fs ls >"$WORK/snaps.txt"
grep -Eq "^$TARGET_CHAIN +$BASE_CHAIN +Committed" "$WORK/snaps.txt" ||
	fail "no committed $TARGET_CHAIN over $BASE_CHAIN: $(cat "$WORK/snaps.txt")"
$C snapshots --snapshotter di3fs info "$TARGET_CHAIN" >"$WORK/info.json"
grep -q "\"containerd.io/snapshot/di3fs.delta\": \"$DIMG\"" "$WORK/info.json" ||
	fail "snapshot lacks the delta label: $(cat "$WORK/info.json")"
grep -q "\"containerd.io/snapshot/di3fs.namespace\": \"$NS\"" "$WORK/info.json" ||
	fail "snapshot lacks the namespace label: $(cat "$WORK/info.json")"
grep -E 'rpc (Prepare|Commit) ' "$WORK/snap.log" | grep 'di3fs-load' | sed 's/^/  snapshotter: /'
# past containerd: the snapshotter itself got the labels (containerd passes
# on only containerd.io/snapshot/ ones)
"$SNAPCTL" --address "$SOCK" list 2>/dev/null | grep -A3 "/$TARGET_CHAIN <- " >"$WORK/snapctl.txt" ||
	fail "the snapshotter has no $TARGET_CHAIN over a parent"
grep -q "label containerd.io/snapshot/di3fs.delta=$DIMG" "$WORK/snapctl.txt" ||
	fail "the snapshotter did not get the delta label: $(cat "$WORK/snapctl.txt")"
grep -q "label containerd.io/snapshot/di3fs.namespace=$NS" "$WORK/snapctl.txt" ||
	fail "the snapshotter did not get the namespace label: $(cat "$WORK/snapctl.txt")"
[ -z "$($C leases ls -q)" ] || fail "leases left behind: $($C leases ls)"

step "containerd's own import of the target gives the same chain id"
CHECK="timeout 180 ctr -a $CSOCK -n $NS-check"
$CHECK images import --snapshotter=di3fs "$WORK/target.tar" >/dev/null
$CHECK snapshots --snapshotter di3fs ls | grep -q "^$TARGET_CHAIN " ||
	fail "containerd names the target's snapshot otherwise: $($CHECK snapshots --snapshotter di3fs ls)"
for i in $($CHECK images ls -q); do $CHECK images rm --sync "$i" >/dev/null; done

step "garbage collection keeps everything the image refers to"
$C images tag "$NAME" example.org/load:tmp >/dev/null
$C images rm --sync example.org/load:tmp >/dev/null
$C content ls | grep -q "^$DIMG" || fail "GC removed the .dimg"
$C content ls | grep -q "^$CONFIG" || fail "GC removed the config"
$C snapshots --snapshotter di3fs ls | grep -q "^$TARGET_CHAIN " || fail "GC removed the snapshot"

step "loading again is harmless"
snaps=$(count_snapshots)
out=$("$CDIMG" load -a "$CSOCK" -n "$NS" "$WORK/t.cdimg")
echo "$out" | grep -q "^loaded $NAME (manifest $MANIFEST) over $BASE in [0-9.]* s (snapshot already there)$" ||
	fail "second load said: $out"
expect_eq "snapshots after a second load" "$snaps" "$(count_snapshots)"
expect_eq "images after a second load" 2 "$($C images ls -q | wc -l)"
"$CDIMG" load -a "$CSOCK" -n "$NS" --name example.org/load:other "$WORK/t.cdimg" >/dev/null
$C images ls | awk '$1 == "example.org/load:other"' | grep -q " $MANIFEST " ||
	fail "--name did not name the image"

step "the base found through a nested multi-platform index, and as docker save"
for form in multi-arch docker-save; do
	B="timeout 180 ctr -a $CSOCK -n $NS-$form"
	python3 "$SRC/tests/assets/mkimages.py" oci "$WORK/base" "$WORK/base" "$WORK/base-$form.tar" \
		--ref "example.org/load:base-$form" --"$form" >/dev/null
	"$CDIMG" diff -q "$WORK/base-$form.tar" "$WORK/target.tar" -o "$WORK/$form.cdimg" --target-ref "$NAME"
	$B images import --snapshotter=di3fs "$WORK/base-$form.tar" >/dev/null
	base_name=$($B images ls -q)
	want_type=application/vnd.oci.image.index.v1+json
	[ "$form" = docker-save ] && want_type=application/vnd.docker.distribution.manifest.v2+json
	expect_eq "base record's type ($form)" "$want_type" "$($B images ls | awk 'NR == 2 {print $2}')"
	"$CDIMG" load --json -a "$CSOCK" -n "$NS-$form" "$WORK/$form.cdimg" >"$WORK/$form.json" ||
		fail "load over the $form base failed"
	expect_eq "base ($form)" "$base_name" "$(jget "$WORK/$form.json" '["base"]["name"]')"
	$B snapshots --snapshotter di3fs ls | grep -Eq "^$TARGET_CHAIN +$(jget "$WORK/$form.json" '["base"]["chain_id"]') +Committed" ||
		fail "target snapshot over the $form base: $($B snapshots --snapshotter di3fs ls)"
	for i in $($B images ls -q); do $B images rm --sync "$i" >/dev/null; done
done

step "errors: base image missing"
rc=0
"$CDIMG" load -a "$CSOCK" -n "$NS-nobase" "$WORK/t.cdimg" 2>"$WORK/err.txt" >/dev/null || rc=$?
expect_eq "exit code, base missing" 3 "$rc"
grep -q "config $BASECFG" "$WORK/err.txt" || fail "message does not name the base config: $(cat "$WORK/err.txt")"
grep -q "\"$NS-nobase\"" "$WORK/err.txt" || fail "message does not name the namespace: $(cat "$WORK/err.txt")"
expect_eq "images in $NS-nobase" "" "$(ctr -a "$CSOCK" -n "$NS-nobase" images ls -q)"

step "errors: base not unpacked for di3fs"
NO="timeout 180 ctr -a $CSOCK -n $NS-overlay"
$NO images import --no-unpack "$WORK/base.tar" >/dev/null
rc=0
"$CDIMG" load -a "$CSOCK" -n "$NS-overlay" "$WORK/t.cdimg" 2>"$WORK/err.txt" >/dev/null || rc=$?
expect_eq "exit code, base not unpacked" 3 "$rc"
grep -q "base image $BASE is not unpacked for snapshotter di3fs" "$WORK/err.txt" ||
	fail "unclear message: $(cat "$WORK/err.txt")"
expect_eq "images in $NS-overlay" "$BASE" "$($NO images ls -q)"
$NO images rm --sync "$BASE" >/dev/null

step "errors: a snapshotter containerd does not know"
rc=0
"$CDIMG" load -a "$CSOCK" -n "$NS" --snapshotter nosuch "$WORK/t.cdimg" 2>"$WORK/err.txt" || rc=$?
expect_eq "exit code, unknown snapshotter" 1 "$rc"
cat "$WORK/err.txt"
grep -q "^cdimg load: $BASE: snapshot stat $BASE_CHAIN (nosuch): .*nosuch" "$WORK/err.txt" ||
	fail "unclear message: $(cat "$WORK/err.txt")"

step "errors: a corrupt .cdimg"
cp "$WORK/t.cdimg" "$WORK/bad.cdimg"
off=$(python3 - "$WORK/t.cdimg" "$DIMG" <<'PY'
import sys, tarfile
t = tarfile.open(sys.argv[1])
print(t.getmember("blobs/" + sys.argv[2].replace(":", "/")).offset_data + 100)
PY
)
printf '\377' | dd of="$WORK/bad.cdimg" bs=1 seek="$off" conv=notrunc 2>/dev/null
rc=0
"$CDIMG" load -a "$CSOCK" -n "$NS" --name example.org/load:bad "$WORK/bad.cdimg" 2>"$WORK/err.txt" || rc=$?
expect_eq "exit code, corrupt .cdimg" 3 "$rc"
grep -q "bad.cdimg" "$WORK/err.txt" || fail "message does not name the file: $(cat "$WORK/err.txt")"
$C images ls -q | grep -q bad && fail "an image record was created for a corrupt .cdimg"

step "errors: no containerd at the address"
rc=0
"$CDIMG" load -a "$WORK/nothing.sock" "$WORK/t.cdimg" 2>"$WORK/err.txt" || rc=$?
expect_eq "exit code, no socket" 1 "$rc"
grep -q "containerd socket $WORK/nothing.sock: No such file or directory" "$WORK/err.txt" ||
	fail "unclear message: $(cat "$WORK/err.txt")"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$WORK/stale.sock"
rc=0
"$CDIMG" load -a "$WORK/stale.sock" "$WORK/t.cdimg" 2>"$WORK/err.txt" || rc=$?
expect_eq "exit code, nobody listening" 1 "$rc"
grep -q "containerd at $WORK/stale.sock does not answer" "$WORK/err.txt" ||
	fail "unclear message: $(cat "$WORK/err.txt")"
rc=0
"$CDIMG" load -n "" "$WORK/t.cdimg" 2>/dev/null || rc=$?
expect_eq "exit code, empty namespace" 2 "$rc"

step "stop"
stop_containerd
stop_snapshotter TERM
echo "PASS (cdimg load: $ms ms)"
