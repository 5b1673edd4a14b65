#!/bin/bash
# lazyfs read and listing speed against a plain directory on the same disk,
# measured in the same run. Run by hand as root (drops the page cache).
#
# usage: bench/bench-lazyfs.sh [--work DIR] [--size MIB] [--trees DIR]
#   --work DIR   scratch directory (default /var/tmp); the plain copies,
#                the cache and the mount live there, so on the same disk
#   --size MIB   the changed file's size (default 64)
#   --trees DIR  real tree pairs from tests/assets/mktrees.sh
#                (default /var/cache/di3fs/trees; redis-v1/v2 for ls -lR)
# Binaries: $CDIMG and $LAZYMOUNT, else ./build/... under the source tree.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
CDIMG=${CDIMG:-$SRC/build/ctr-tools/cdimg}
LAZYMOUNT=${LAZYMOUNT:-$SRC/build/snapshotter/di3fs-lazymount}
WORKROOT=/var/tmp
SIZE=64
TREES=/var/cache/di3fs/trees
while [ $# -gt 0 ]; do
	case $1 in
	--work) WORKROOT=$2; shift 2 ;;
	--size) SIZE=$2; shift 2 ;;
	--trees) TREES=$2; shift 2 ;;
	-h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-lazyfs: unknown option $1" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench-lazyfs: run as root" >&2; exit 1; }
W=$(mktemp -d "$WORKROOT/di3fs-bench-lazyfs.XXXXXX")
PID=""
cleanup() {
	[ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

now() { date +%s.%N; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# timed CMD...: wall seconds of CMD, output discarded.
timed() {
	local t0 t1
	t0=$(now)
	"$@" >/dev/null 2>&1
	t1=$(now)
	echo "$t1 - $t0" | bc -l
}
readf() { dd if="$1" of=/dev/null bs=1M status=none; }

# A pair whose one big file changes in scattered places (a PATCH payload).
mkdir -p "$W/v1" "$W/v2"
python3 - "$W" "$SIZE" <<'PY'
import os, random, sys
w, mib = sys.argv[1], int(sys.argv[2])
r = random.Random(7)
blocks = [r.randbytes(4096) for _ in range(64)]
data = bytearray(b"".join(r.choice(blocks) for _ in range(mib * 256)))
open(os.path.join(w, "v1/big"), "wb").write(data)
for i in range(0, len(data), 1 << 20):
    data[i:i + 64] = r.randbytes(64)
open(os.path.join(w, "v2/big"), "wb").write(data)
PY
"$CDIMG" diff -q "$W/v1" "$W/v2" -o "$W/big.dimg"
specs=("big=$W/big.dimg@$W/v1")
have_trees=0
if [ -d "$TREES/redis-v1" ] && [ -d "$TREES/redis-v2" ]; then
	"$CDIMG" diff -q "$TREES/redis-v1" "$TREES/redis-v2" -o "$W/redis.dimg"
	specs+=("redis=$W/redis.dimg@$TREES/redis-v1")
	have_trees=1
fi
mkdir -p "$W/mnt"
"$LAZYMOUNT" --cache "$W/cache" "$W/mnt" "${specs[@]}" >"$W/out" 2>"$W/err" &
PID=$!
for _ in $(seq 300); do
	grep -q '^ready$' "$W/out" 2>/dev/null && break
	sleep 0.1
done
grep -q '^ready$' "$W/out" || { cat "$W/err" >&2; exit 1; }

drop
plain_cold=$(timed readf "$W/v2/big")
plain_warm=$(timed readf "$W/v2/big")
drop
lazy_first=$(timed readf "$W/mnt/big/big")
drop
lazy_cold=$(timed readf "$W/mnt/big/big")
lazy_warm=$(timed readf "$W/mnt/big/big")
cmp "$W/mnt/big/big" "$W/v2/big" || { echo "bench-lazyfs: lazy file differs" >&2; exit 1; }

row() { printf '| %-44s | %8.3f | %6.2f |\n' "$1" "$2" "$(echo "$2 / $3" | bc -l)"; }
echo "Changed file: $SIZE MiB (patch payload, $(stat -c %s "$W/big.dimg") bytes of delta)"
echo
echo "| step | s | x plain |"
echo "|---|---|---|"
row "plain file, cold page cache" "$plain_cold" "$plain_cold"
row "lazy, first read (rebuild + verify + read)" "$lazy_first" "$plain_cold"
row "lazy, from the cache file, cold page cache" "$lazy_cold" "$plain_cold"
row "plain file, warm page cache" "$plain_warm" "$plain_warm"
row "lazy, warm page cache (keep_cache)" "$lazy_warm" "$plain_warm"
if [ "$have_trees" -eq 1 ]; then
	drop
	ls_plain_cold=$(timed ls -lR "$TREES/redis-v2")
	ls_plain_warm=$(timed ls -lR "$TREES/redis-v2")
	drop
	ls_lazy_cold=$(timed ls -lR "$W/mnt/redis")
	ls_lazy_warm=$(timed ls -lR "$W/mnt/redis")
	row "ls -lR redis tree, plain, cold" "$ls_plain_cold" "$ls_plain_cold"
	row "ls -lR redis tree, lazy, first (cold)" "$ls_lazy_cold" "$ls_plain_cold"
	row "ls -lR redis tree, plain, warm" "$ls_plain_warm" "$ls_plain_warm"
	row "ls -lR redis tree, lazy, warm" "$ls_lazy_warm" "$ls_plain_warm"
fi
