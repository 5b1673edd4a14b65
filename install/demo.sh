#!/bin/bash
# The main job end to end on real sample data: builds di3fs, builds two real
# image trees (Debian minbase + the oldest and newest nginx of the archive),
# diffs them, shows the delta, applies it, verifies every byte and metadata
# field against the real new tree, and prints what it costs. Then the edge
# device's side: both trees as OCI images, a private containerd with the
# di3fs snapshotter, the old image imported, the .cdimg loaded with
# `cdimg load`, and the new version run at once with
# `ctr run --snapshotter=di3fs`, its changed files rebuilt only when read.
# Usage: bash install/demo.sh [PAIR]   (as root; PAIR: nginx (default) or redis)
set -eu
cd "$(dirname "$0")/.."
pair=${1:-nginx}
if [ "$(id -u)" -ne 0 ]; then
	echo "install/demo.sh: run as root (real image trees hold device nodes and owners)" >&2
	exit 2
fi
sh install/deps.sh
echo "== building"
cmake -S . -B build >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
CDIMG=$PWD/build/ctr-tools/cdimg

echo "== sample trees (cached in /var/cache/di3fs)"
bash tests/assets/mktrees.sh "$pair"
v1=/var/cache/di3fs/trees/$pair-v1
v2=/var/cache/di3fs/trees/$pair-v2
work=$(mktemp -d /tmp/di3fs-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
export SNAPSHOTTER=$PWD/build/snapshotter/di3fs-snapshotter
export SNAPCTL=$PWD/build/tests/e2e/di3fs-snapctl

echo "== cdimg diff $v1 $v2"
"$CDIMG" diff "$v1" "$v2" -o "$work/$pair.dimg"
echo "== cdimg show"
"$CDIMG" show "$work/$pair.dimg"
echo "== cdimg apply"
"$CDIMG" apply "$v1" "$work/$pair.dimg" -o "$work/$pair-v2"
echo "== verifying every byte and metadata field against the real v2 tree"
python3 tests/tools/treecmp.py "$v2" "$work/$pair-v2"
echo "identical."
delta=$(stat -c %s "$work/$pair.dimg")
full=$(tar -C "$v2" -cf - . | zstd -9 -T0 -q -c | wc -c)
echo "== sizes"
printf '  delta (.dimg):                  %12d bytes\n' "$delta"
printf '  full target tree, tar+zstd -9:  %12d bytes  (%.0fx the delta)\n' "$full" \
	"$(echo "$full / $delta" | bc -l)"

echo
echo "== the edge device: run the new image from the old one plus the delta"
# a private containerd and di3fs-snapshotter in a temp dir (the test suite's
# helpers: own root, socket and namespace; stopped again on exit)
trap - EXIT
rm -rf "$work"
. tests/e2e/lib.sh
log_quiet() { sed -i 's/^log_level = debug/log_level = info/' "$WORK/snap.conf"; }
write_snap_config
log_quiet
python3 tests/tools/mkoci.py --ref demo.local/$pair:v1 "$v1" "$WORK/v1.tar" >/dev/null
python3 tests/tools/mkoci.py --ref demo.local/$pair:v2 "$v2" "$WORK/v2.tar" >/dev/null
echo "== cdimg diff v1.tar v2.tar -o $pair.cdimg   (OCI image archives)"
"$CDIMG" diff "$WORK/v1.tar" "$WORK/v2.tar" -o "$WORK/$pair.cdimg"
start_snapshotter
start_containerd
echo "== ctr images import --snapshotter=di3fs v1.tar   (the device has the old version)"
$C images import --snapshotter=di3fs "$WORK/v1.tar"
echo "== cdimg load $pair.cdimg"
"$CDIMG" load "$WORK/$pair.cdimg" --address "$CSOCK" --namespace "$NS"
echo "== ctr run --rm --snapshotter=di3fs demo.local/$pair:v2"
# the sample trees hold the packages' files, not their dependencies: the
# container checksums the changed binary instead of running it
case $pair in
nginx) bin=usr/sbin/nginx ;;
*) bin=usr/bin/redis-server ;;
esac
got=$($C run --rm --snapshotter=di3fs "demo.local/$pair:v2" demo1 sha256sum "/$bin")
echo "  in the container: $got"
want=$(sha256sum "$v2/$bin" | cut -d' ' -f1)
[ "${got%% *}" = "$want" ] || { echo "demo: /$bin differs from the v2 tree's" >&2; exit 1; }
echo "  identical to the v2 tree's /$bin"
rebuilt=$(find "$ROOT/cache/sha256" -type f | wc -l)
changed=$("$CDIMG" show "$WORK/$pair.cdimg" --json | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin)["stored_entries"] if e.get("payload") in ("full", "patch")))')
printf '  sent:     %12d bytes (.cdimg) instead of a %d-byte image archive\n' \
	"$(stat -c %s "$WORK/$pair.cdimg")" "$(stat -c %s "$WORK/v2.tar")"
printf '  rebuilt:  %12d of the %d changed files: only what the container read\n' "$rebuilt" "$changed"
