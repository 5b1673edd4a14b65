#!/bin/bash
# bench-snapshotter.sh - di3fs delta images in containerd against the same
# target imported in full into containerd's overlayfs snapshotter, measured
# in the same run (private containerd and di3fs-snapshotter, as the e2e
# tests start them). Run by hand as root after a build:
#
#   bench/bench-snapshotter.sh [BUILD_DIR] [REPEATS]
#
# Images: nginx v1 / v2 trees (tests/assets/mktrees.sh), each with a 64 MiB
# data file of which the target changes 1% (a rebuilt file of 50+ MB).
# Prints a table: container start (ctr run --rm IMAGE true, page cache and
# di3fs cache dropped before each run), sequential reads of the big file,
# and loading the delta vs importing the full target.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
REPS=${2:-5}
export SNAPSHOTTER=$BUILD/snapshotter/di3fs-snapshotter
export SNAPCTL=$BUILD/snapshotter/di3fs-snapctl
export DI3FS_SRC=$SRC
CDIMG=$BUILD/ctr-tools/cdimg
[ -x "$CDIMG" ] || { echo "build first: no $CDIMG" >&2; exit 1; }
. "$SRC/tests/e2e/lib.sh"
# lib.sh logs every RPC for the tests; a benchmark logs less
write_snap_config
sed -i 's/^log_level = debug/log_level = info/' "$WORK/snap.conf"

TREES=${DI3FS_TREES:-/var/cache/di3fs/trees}
bash "$SRC/tests/assets/mktrees.sh" --out "$TREES" nginx >/dev/null
MKOCI="python3 $SRC/tests/tools/mkoci.py"

now() { date +%s.%N; }
# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
ratio() { echo "scale=2; $1 / $2" | bc; }

echo "building images (nginx v1/v2 + 64 MiB data file, 1% changed)..." >&2
for v in 1 2; do
	cp -al "$TREES/nginx-v$v" "$WORK/t$v"
done
python3 - "$WORK/t1/srv-data.bin" "$WORK/t2/srv-data.bin" <<'PY'
import random, sys
rng = random.Random(42)
size = 64 << 20
old = bytearray(rng.randbytes(size))
with open(sys.argv[1], "wb") as f:
    f.write(old)
for _ in range(size // 100 // 4096):      # 1% of the bytes, in 4 KiB runs
    off = rng.randrange(0, size - 4096)
    old[off:off + 4096] = rng.randbytes(4096)
with open(sys.argv[2], "wb") as f:
    f.write(old)
PY
$MKOCI --ref bench.local/app:v1 "$WORK/t1" "$WORK/v1.tar" >/dev/null
$MKOCI --ref bench.local/app:v2 "$WORK/t2" "$WORK/v2.tar" >/dev/null
$MKOCI --ref bench.local/app:v2-full "$WORK/t2" "$WORK/v2full.tar" >/dev/null
"$CDIMG" diff "$WORK/v1.tar" "$WORK/v2.tar" -o "$WORK/d.cdimg" >/dev/null

start_snapshotter
start_containerd
$C images import --snapshotter=di3fs "$WORK/v1.tar" >/dev/null

t=$(now)
"$CDIMG" load "$WORK/d.cdimg" --address "$CSOCK" --namespace "$NS" >/dev/null
load_s=$(echo "$(now) - $t" | bc)
t=$(now)
$C images import "$WORK/v2full.tar" >/dev/null
import_s=$(echo "$(now) - $t" | bc)

# cold di3fs: no rebuilt file cached, nothing in the page cache
di3fs_cold() {
	stop_snapshotter
	rm -rf "$ROOT/cache/sha256"
	start_snapshotter
	wait_for 30 $C snapshots --snapshotter di3fs ls || fail "containerd did not reconnect"
	drop_caches
}

run_true() { # SNAPSHOTTER IMAGE
	local t
	t=$(now)
	$C run --rm --snapshotter="$1" "$2" "b$RANDOM$RANDOM" true
	echo "$(now) - $t" | bc
}

echo "container starts ($REPS each, alternating)..." >&2
: >"$WORK/start.di3fs"
: >"$WORK/start.overlay"
for i in $(seq "$REPS"); do
	di3fs_cold
	run_true di3fs bench.local/app:v2 >>"$WORK/start.di3fs"
	drop_caches
	run_true overlayfs bench.local/app:v2-full >>"$WORK/start.overlay"
done
start_d=$(median <"$WORK/start.di3fs")
start_o=$(median <"$WORK/start.overlay")

# SNAPSHOTTER IMAGE: nanoseconds to read the big file once (as the caches
# are), then per read of 4 more (page cache warm)
read_file() {
	$C run --rm --snapshotter="$1" "$2" "r$RANDOM$RANDOM" sh -c '
		s=$(date +%s%N); cat /srv-data.bin >/dev/null; m=$(date +%s%N)
		for i in 1 2 3 4; do cat /srv-data.bin >/dev/null; done; e=$(date +%s%N)
		echo $(( m - s )) $(( (e - m) / 4 ))'
}
echo "sequential reads..." >&2
di3fs_cold
first=$(read_file di3fs bench.local/app:v2) # includes the rebuild
drop_caches
second=$(read_file di3fs bench.local/app:v2) # from the cache file, page cache cold
drop_caches
ovl=$(read_file overlayfs bench.local/app:v2-full)
size=$(stat -c %s "$WORK/t2/srv-data.bin")
mbps() { echo "scale=1; $size * 1000000000 / 1048576 / $1" | bc; }

printf '\n%-52s %12s %12s %8s\n' "measure" "di3fs" "overlayfs" "ratio"
printf '%-52s %11.3fs %11.3fs %8s\n' "container start, cold (median of $REPS)" "$start_d" "$start_o" \
	"$(ratio "$start_d" "$start_o")"
printf '%-52s %10sMB/s %10sMB/s %8s\n' "read 64 MiB file, first (di3fs: rebuild)" \
	"$(mbps "${first% *}")" "$(mbps "${ovl% *}")" "$(ratio "${ovl% *}" "${first% *}")"
printf '%-52s %10sMB/s %10sMB/s %8s\n' "read 64 MiB file, second (cached, page cache cold)" \
	"$(mbps "${second% *}")" "$(mbps "${ovl% *}")" "$(ratio "${ovl% *}" "${second% *}")"
printf '%-52s %10sMB/s %10sMB/s %8s\n' "read 64 MiB file, page cache warm" \
	"$(mbps "${second#* }")" "$(mbps "${ovl#* }")" "$(ratio "${ovl#* }" "${second#* }")"
printf '%-52s %11.3fs %11.3fs %8s\n' "cdimg load vs ctr images import (full target)" \
	"$load_s" "$import_s" "$(ratio "$load_s" "$import_s")"
printf '%-52s %11sB %11sB %8s\n' "transfer: .cdimg vs image archive" "$(stat -c %s "$WORK/d.cdimg")" \
	"$(stat -c %s "$WORK/v2.tar")" "$(ratio "$(stat -c %s "$WORK/d.cdimg")" "$(stat -c %s "$WORK/v2.tar")")"
echo "(start and load: ratio = di3fs / overlayfs, lower is better; reads: ratio = di3fs speed / overlayfs speed)"
