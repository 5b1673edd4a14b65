#!/bin/bash
# End-to-end, real images: nginx v1 -> v2 (OCI images of the Debian 12
# nginx trees of tests/assets/mktrees.sh as two-layer images, Debian
# minbase + nginx, built here with mkimages.py as bench-images.sh does) through
# di3fs: import v1, diff, then time `cdimg load` of the .cdimg (it must stay
# well under a second: it moves the small delta and a few metadata calls,
# never the image).
. "$(dirname "$0")/lib.sh"

CDIMG=${CDIMG:-$SRC/build/ctr-tools/cdimg}
TREES=${DI3FS_TREES:-/var/cache/di3fs/trees}
[ -x "$CDIMG" ] || fail "no cdimg binary at $CDIMG"
bash "$SRC/tests/assets/mktrees.sh" --out "$TREES" nginx >/dev/null ||
	fail "building the nginx trees failed"
IMAGES=$WORK/images
mkdir -p "$IMAGES" "$WORK/minbase"
tar -C "$WORK/minbase" --same-owner -xpf "${DI3FS_CACHE:-/var/cache/di3fs}/base-bookworm-minbase.tar" ||
	fail "extracting the minbase failed"
for v in v1 v2; do
	python3 "$SRC/tests/assets/mkimages.py" oci --ref "example.org/nginx:$v" \
		"$WORK/minbase" "$TREES/nginx-$v" "$IMAGES/nginx-$v.tar" >/dev/null ||
		fail "building the nginx $v image failed"
done
rm -rf --one-file-system "$WORK/minbase"
NAME=example.org/nginx:v2
MAX_MS=${DI3FS_LOAD_MAX_MS:-1000}

start_snapshotter
start_containerd
echo "== import nginx v1 through di3fs, diff v1 -> v2"
$C images import --snapshotter=di3fs "$IMAGES/nginx-v1.tar" >/dev/null
"$CDIMG" diff -q "$IMAGES/nginx-v1.tar" "$IMAGES/nginx-v2.tar" -o "$WORK/nginx.cdimg"
echo ".cdimg: $(stat -c %s "$WORK/nginx.cdimg") bytes"

echo "== cdimg load"
t0=$(date +%s%N)
"$CDIMG" load -a "$CSOCK" -n "$NS" --name "$NAME" "$WORK/nginx.cdimg"
ms=$((($(date +%s%N) - t0) / 1000000))
manifest=$("$CDIMG" show --json "$WORK/nginx.cdimg" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["cdimg"]["target"]["manifest_digest"])')
$C images ls | awk -v n="$NAME" '$1 == n' | grep -q " $manifest " || fail "image not loaded"
[ "$($C snapshots --snapshotter di3fs ls | grep -c Committed)" -eq 3 ] ||
	fail "expected v1's two snapshots and v2's: $($C snapshots --snapshotter di3fs ls)"
t1=$(date +%s%N)
"$CDIMG" load -a "$CSOCK" -n "$NS" --name "$NAME" "$WORK/nginx.cdimg" >/dev/null
ms2=$((($(date +%s%N) - t1) / 1000000))
echo "cdimg load: $ms ms (again: $ms2 ms)"
[ "$ms" -lt "$MAX_MS" ] || fail "cdimg load took $ms ms (limit $MAX_MS ms)"

stop_containerd
stop_snapshotter TERM
echo "PASS (cdimg load of nginx v2: $ms ms)"
