#!/bin/bash
# End-to-end: cdimg copy and a private containerd (runc runs what it puts
# there). An OCI archive into containerd:app:v1 (four blobs at once), which
# `ctr run` runs; containerd:app:v1 out to an oci-archive with the same
# manifest digest (skopeo agrees); a partial archive of v2 without the
# blobs v1 holds, completed from containerd's content store into
# containerd:app:v2, which runs; the same archive where v1 is not (another
# namespace) fails with exit 3 naming both missing blobs and makes no
# image; a damaged archive makes no image and commits no blob.
. "$(dirname "$0")/lib.sh"

CDIMG=${CDIMG:-$SRC/build/ctr-tools/cdimg}
[ -x "$CDIMG" ] || fail "no cdimg binary at $CDIMG"
command -v skopeo >/dev/null 2>&1 || skip "skopeo is not installed (install/deps.sh)"
OCIMOD="python3 $SRC/tests/tools/ocimod.py"
CP="$CDIMG copy -a $CSOCK -n $NS"

step() {
	echo "== $*"
}
digest() {
	skopeo inspect --raw "$1" | sha256sum | cut -d' ' -f1
}
# exits CODE CMD...: CMD must exit with CODE (its stderr in $WORK/err.txt).
exits() {
	local want=$1 rc=0
	shift
	"$@" 2>"$WORK/err.txt" || rc=$?
	[ "$rc" -eq "$want" ] || {
		cat "$WORK/err.txt" >&2
		fail "exit $rc, want $want: $*"
	}
}

step "images: v1 (busybox, two layers) and v2 (v1's layers and one more)"
python3 "$SRC/tests/e2e/mkimage.py" "$WORK/v1.tar" example.org/app:v1
"$CDIMG" copy -q "oci-archive:$WORK/v1.tar" "oci:$WORK/v2"
$OCIMOD bigblob "$WORK/v2" 1
V1=$(digest "oci-archive:$WORK/v1.tar")
V2=$(digest "oci:$WORK/v2")
start_containerd

step "oci-archive -> containerd:app:v1, and run it"
$CP -j 4 "oci-archive:$WORK/v1.tar" containerd:app:v1
got=$($C images ls | awk '$1 == "app:v1" { print $3 }')
expect_eq "app:v1's manifest" "sha256:$V1" "$got"
out=$($C run --rm app:v1 copy-v1 /bin/cat /etc/hello)
expect_eq "ctr run app:v1" "hello from layer 2" "$out"
$C content ls | grep -q "containerd.io/gc.ref.content.l.1=" || fail "the manifest has no gc labels"

step "containerd:app:v1 -> oci-archive: the same manifest"
$CP containerd:app:v1 "oci-archive:$WORK/back.tar"
expect_eq "back.tar's manifest" "$V1" "$(digest "oci-archive:$WORK/back.tar")"
$CP containerd:app:v1 "docker-archive:$WORK/back-d.tar"
skopeo inspect --config "docker-archive:$WORK/back-d.tar" >/dev/null || fail "docker-archive from containerd"

step "a partial archive of v2 completed from containerd's content store"
$CP --json --exclude-from containerd:app:v1 "oci:$WORK/v2" "oci-archive:$WORK/p.tar" >"$WORK/p.json"
tail -n 1 "$WORK/p.json" | grep -q '"excluded":2' || fail "the partial archive did not leave out v1's two layers"
$CP --json "oci-archive:$WORK/p.tar" containerd:app:v2 >"$WORK/c.json"
tail -n 1 "$WORK/c.json" | grep -q '"existing":2' || fail "containerd's layers were not used"
got=$($C images ls | awk '$1 == "app:v2" { print $3 }')
expect_eq "app:v2's manifest" "sha256:$V2" "$got"
out=$($C run --rm app:v2 copy-v2 /bin/sh -c 'test -s /big.bin && cat /etc/layer2.txt')
expect_eq "ctr run app:v2" "layer two was here" "$out"

step "where v1 is not, the partial archive fails, naming what is missing"
NS2=$NS-empty
exits 3 $CDIMG copy -a "$CSOCK" -n "$NS2" "oci-archive:$WORK/p.tar" containerd:app:v2
for d in $(tar xOf "$WORK/p.tar" di3fs-excluded.json | grep -o 'sha256:[0-9a-f]*'); do
	grep -q "$d" "$WORK/err.txt" || fail "the missing $d is not named"
done
[ -z "$(ctr -a "$CSOCK" -n "$NS2" images ls -q)" ] || fail "a failed completion made an image"

step "a damaged archive: no image, no committed blob"
L1=$(skopeo inspect --raw "oci-archive:$WORK/v1.tar" | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
$OCIMOD tarflip "$WORK/v1.tar" "$L1" "$WORK/bad.tar"
NS3=$NS-bad
exits 3 $CDIMG copy -a "$CSOCK" -n "$NS3" "oci-archive:$WORK/bad.tar" containerd:bad:v1
grep -q "$L1" "$WORK/err.txt" || fail "the damaged layer is not named"
[ -z "$(ctr -a "$CSOCK" -n "$NS3" images ls -q)" ] || fail "a damaged archive made an image"
ctr -a "$CSOCK" -n "$NS3" content ls | grep -q "$L1" && fail "the damaged layer was committed"
echo "copy_containerd: ok"
