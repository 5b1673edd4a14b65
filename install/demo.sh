#!/bin/bash
# The main job end to end on real sample data: builds di3fs, builds two real
# image trees (Debian minbase + the oldest and newest nginx of the archive),
# diffs them, shows the delta, applies it, verifies every byte and metadata
# field against the real new tree, and prints what it costs.
# Usage: sudo install/demo.sh [PAIR]      (PAIR: nginx (default) or redis)
set -eu
cd "$(dirname "$0")/.."
pair=${1:-nginx}
if [ "$(id -u)" -ne 0 ]; then
	echo "install/demo.sh: run as root (real image trees hold device nodes and owners)" >&2
	exit 2
fi
sh install/deps.sh
echo "== building"
cmake -S . -B build -DBUILD_TESTING=OFF >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
CDIMG=$PWD/build/ctr-tools/cdimg

echo "== sample trees (cached in /var/cache/di3fs)"
bash tests/assets/mktrees.sh "$pair"
v1=/var/cache/di3fs/trees/$pair-v1
v2=/var/cache/di3fs/trees/$pair-v2
work=$(mktemp -d /tmp/di3fs-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT

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
full=$(tar -C "$v2" -cf - . | zstd -19 -T0 -q -c | wc -c)
echo "== sizes"
printf '  delta (.dimg):                  %12d bytes\n' "$delta"
printf '  full target tree, tar+zstd -19: %12d bytes  (%.0fx the delta)\n' "$full" \
	"$(echo "$full / $delta" | bc -l)"
