#!/bin/bash
# bench-snapshotter.sh - di3fs delta images in containerd against the same
# target imported in full into containerd's overlayfs snapshotter, measured
# in the same run (private containerd and di3fs-snapshotter, as the e2e
# tests start them). Run by hand as root after a build:
#
#   bench/bench-snapshotter.sh [--only one-hop|chain] [BUILD_DIR] [REPEATS]
#
# Two sections, both by default:
#
# one-hop: nginx v1 / v2 trees (tests/assets/mktrees.sh), each with a 64 MiB
# data file of which the target changes 1% (a rebuilt file of 50+ MB).
# Prints a table: container start (ctr run --rm IMAGE true, page cache and
# di3fs cache dropped before each run), sequential reads of the big file,
# and loading the delta vs importing the full target.
#
# chain: cold read latency of a file 3 deltas deep. Images v1..v4 (nginx v1
# tree, then the nginx v2 tree), each step changing ~1% of a 64 MiB data
# file (4 KiB runs) and 4 spots of 8 bytes in a 200 KiB binary file (the
# head of nginx-v1's /usr/sbin/nginx). v1 is imported in full into di3fs,
# the v1->v2, v2->v3, v3->v4 deltas (cdimg diff of consecutive images) are
# `cdimg load`ed, and v4 is imported in full into overlayfs. The files are
# read on the host, not in containers (a container start would add ~0.8 s
# of noise to a few-ms read): `ctr snapshots view --mounts` says what a
# read-only view of each image mounts (one bind mount: the layer's dir for
# overlayfs, the delta image's lazyfs tree for di3fs); that directory is
# bind-mounted read-only here (ctr's own view is garbage-collected as ctr
# exits) and a small Python reader times open + read to EOF in 1 MiB reads,
# so no process start is in the figure either. Each of
# REPEATS rounds: restart di3fs with its rebuilt-file cache emptied, mount
# the views again, drop the page cache, read v4's small then big file (first
# read: rebuilt through 3 patches, intermediates cached), drop the page
# cache, read them again (from di3fs's cache file); the same for v2 (1 delta
# deep) after another emptied-cache restart; then drop the page cache and
# read them from the full v4 on overlayfs. Medians of REPEATS; ratios
# against that same-run overlayfs median.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
ONLY=
if [ "${1:-}" = --only ]; then
	ONLY=${2:?--only one-hop or --only chain}
	case $ONLY in one-hop | chain) ;; *) echo "--only: one-hop or chain, not $ONLY" >&2; exit 2 ;; esac
	shift 2
fi
BUILD=${1:-$SRC/build}
REPS=${2:-5}
export SNAPSHOTTER=$BUILD/snapshotter/di3fs-snapshotter
export SNAPCTL=$BUILD/tests/e2e/di3fs-snapctl
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
# cold di3fs: no rebuilt file cached, nothing in the page cache
di3fs_cold() {
	stop_snapshotter
	rm -rf "$ROOT/cache/sha256"
	start_snapshotter
	wait_for 30 $C snapshots --snapshotter di3fs ls || fail "containerd did not reconnect"
	drop_caches
}

# ---- one-hop: v1 -> v2, container start and reads in containers ----
one_hop() {
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

	$C images import --snapshotter=di3fs "$WORK/v1.tar" >/dev/null

	t=$(now)
	"$CDIMG" load "$WORK/d.cdimg" --address "$CSOCK" --namespace "$NS" >/dev/null
	load_s=$(echo "$(now) - $t" | bc)
	t=$(now)
	$C images import "$WORK/v2full.tar" >/dev/null
	import_s=$(echo "$(now) - $t" | bc)

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
}

# ---- chain: a file 3 deltas deep (v1 -> v2 -> v3 -> v4) ----

# chain_images: trees c1..c4, images bench.local/chain:v1..v4 (+ v4-full),
# deltas d2..d4.cdimg (each against the previous image)
chain_images() {
	echo "chain: building v1..v4 (64 MiB file ~1% changed per step, 200 KiB binary 4x8 bytes per step)..." >&2
	cp -al "$TREES/nginx-v1" "$WORK/c1"
	for v in 2 3 4; do
		cp -al "$TREES/nginx-v2" "$WORK/c$v"
	done
	python3 - "$WORK" "$TREES/nginx-v1/usr/sbin/nginx" <<'PY'
import random, sys
work, binary = sys.argv[1], sys.argv[2]
rng = random.Random(4242)
size = 64 << 20
big = bytearray(rng.randbytes(size))
small = bytearray(open(binary, "rb").read()[:200 << 10])
assert len(small) == 200 << 10, "nginx binary shorter than 200 KiB"
for v in range(1, 5):
    if v > 1:
        for _ in range(size // 100 // 4096):   # ~1% of the bytes, 4 KiB runs
            off = rng.randrange(0, size - 4096)
            big[off:off + 4096] = rng.randbytes(4096)
        for _ in range(4):                      # a few small edits
            off = rng.randrange(0, len(small) - 8)
            small[off:off + 8] = rng.randbytes(8)
    for name, data in (("srv-data.bin", big), ("srv-small.bin", small), ("srv-warm.txt", b"same\n")):
        with open("%s/c%d/%s" % (work, v, name), "wb") as f:
            f.write(data)
PY
	for v in 1 2 3 4; do
		$MKOCI --ref bench.local/chain:v$v "$WORK/c$v" "$WORK/c$v.tar" >/dev/null
	done
	$MKOCI --ref bench.local/chain:v4-full "$WORK/c4" "$WORK/c4full.tar" >/dev/null
	for v in 2 3 4; do
		"$CDIMG" diff "$WORK/c$((v - 1)).tar" "$WORK/c$v.tar" -o "$WORK/d$v.cdimg" >/dev/null
		# both files must be patches, else the chain measures nothing
		"$CDIMG" show --json "$WORK/d$v.cdimg" | python3 -c '
import json, sys
p = {e["path"]: e.get("payload") for e in json.load(sys.stdin)["stored_entries"]}
for f in ("srv-data.bin", "srv-small.bin"):
    if p.get(f) != "patch":
        sys.exit("delta %s stores %s as %s, not a patch" % (sys.argv[1], f, p.get(f)))
' "d$v.cdimg" || fail "chain delta d$v.cdimg"
	done
}

# view_source SNAPSHOTTER CHAINID: the directory a read-only view of the
# committed snapshot CHAINID is bind-mounted from (what containerd would
# mount for it; ctr's view is garbage-collected when ctr exits, the
# directory stays as long as the image)
view_source() {
	$C snapshots --snapshotter "$1" view --mounts "v$RANDOM$RANDOM" "$2" | python3 -c '
import json, sys
m = [{k.lower(): v for k, v in x.items()} for x in json.load(sys.stdin)]
if len(m) != 1 or m[0]["type"] != "bind":
    sys.exit("expected one bind mount for the view, got %r" % m)
print(m[0]["source"])'
}

# view_mount SRC DIR: a read-only bind mount
view_mount() {
	mkdir -p "$2"
	mount -o bind,ro "$1" "$2"
}

# chain_cold: di3fs restarted with an empty cache, its views mounted again,
# page cache dropped. A file the same in every version is opened first, so
# that the daemon's one-time work at its first open after a start (it
# widens the mount's readahead) is not counted as the rebuild's: in a
# container, the entrypoint's own files are opened before any data file.
chain_cold() {
	umount "$WORK/mnt-v4" "$WORK/mnt-v2"
	di3fs_cold
	view_mount "$SRC_V4" "$WORK/mnt-v4"
	view_mount "$SRC_V2" "$WORK/mnt-v2"
	cat "$WORK/mnt-v4/srv-warm.txt" "$WORK/mnt-v2/srv-warm.txt" >/dev/null
	drop_caches
}

# chain_read DIR OUT: ms to open and read to EOF the small then the big
# file under DIR, appended to OUT.small and OUT.big
chain_read() {
	python3 - "$1/srv-small.bin" "$1/srv-data.bin" >"$WORK/rd.out" <<'PY'
import sys, time
buf = bytearray(1 << 20)
for p in sys.argv[1:]:
    t = time.perf_counter()
    with open(p, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass
    print("%.3f" % ((time.perf_counter() - t) * 1000))
PY
	sed -n 1p "$WORK/rd.out" >>"$2.small"
	sed -n 2p "$WORK/rd.out" >>"$2.big"
}

# chain_check DIR TREE: the files read under DIR are TREE's
chain_check() {
	cmp "$1/srv-small.bin" "$2/srv-small.bin" || fail "$1/srv-small.bin differs from $2"
	cmp "$1/srv-data.bin" "$2/srv-data.bin" || fail "$1/srv-data.bin differs from $2"
}

chain() {
	chain_images
	$C images import --snapshotter=di3fs "$WORK/c1.tar" >/dev/null
	for v in 2 3 4; do
		"$CDIMG" load --json "$WORK/d$v.cdimg" --address "$CSOCK" --namespace "$NS" \
			>"$WORK/load$v.json" || fail "cdimg load d$v.cdimg"
	done
	local id2 id4 i
	id2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["chain_id"])' "$WORK/load2.json")
	id4=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["chain_id"])' "$WORK/load4.json")
	$C images import "$WORK/c4full.tar" >/dev/null # overlayfs; same chain id as v4
	SRC_V4=$(view_source di3fs "$id4") && SRC_V2=$(view_source di3fs "$id2") &&
		SRC_OVL=$(view_source overlayfs "$id4") || fail "no view of the chain's images"
	echo "chain: di3fs v4 at $SRC_V4, v2 at $SRC_V2; overlayfs v4 at $SRC_OVL" >&2
	view_mount "$SRC_V4" "$WORK/mnt-v4"
	view_mount "$SRC_V2" "$WORK/mnt-v2"
	view_mount "$SRC_OVL" "$WORK/mnt-ovl"

	echo "chain: reads ($REPS rounds)..." >&2
	rm -f "$WORK"/r.*
	for i in $(seq "$REPS"); do
		chain_cold
		chain_read "$WORK/mnt-v4" "$WORK/r.first3"
		# v4, v3 and v2 of both files rebuilt, nothing else
		[ "$(find "$ROOT/cache/sha256" -type f | wc -l)" -eq 6 ] ||
			fail "a 3-deep read left $(find "$ROOT/cache/sha256" -type f | wc -l) cache files, not 6"
		drop_caches
		chain_read "$WORK/mnt-v4" "$WORK/r.cached3"
		chain_check "$WORK/mnt-v4" "$WORK/c4"
		chain_cold
		chain_read "$WORK/mnt-v2" "$WORK/r.first1"
		drop_caches
		chain_read "$WORK/mnt-v2" "$WORK/r.cached1"
		chain_check "$WORK/mnt-v2" "$WORK/c2"
		drop_caches
		chain_read "$WORK/mnt-ovl" "$WORK/r.ovl"
		[ "$i" -gt 1 ] || chain_check "$WORK/mnt-ovl" "$WORK/c4"
	done
	chain_table
}

# range FILE: min-max of the numbers in FILE
range() { sort -g "$1" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.1f-%.1f", lo, hi }'; }

chain_table() {
	local f o d row what
	printf '\nchain: cold reads on the host (view mounts), open + read to EOF, median of %s, ms\n' "$REPS"
	printf '%-16s %-44s %10s %15s %10s %8s\n' file read di3fs "(min-max)" overlayfs ratio
	for f in small big; do
		o=$(median <"$WORK/r.ovl.$f")
		what="200 KiB binary"
		[ "$f" = small ] || what="64 MiB data"
		for row in "first3:first read, 3 deltas deep (rebuild x3)" \
			"first1:first read, 1 delta deep (rebuild x1)" \
			"cached3:cached, page cache cold, 3 deep" \
			"cached1:cached, page cache cold, 1 deep"; do
			d=$(median <"$WORK/r.${row%%:*}.$f")
			printf '%-16s %-44s %10.1f %15s %10.1f %7.1fx\n' "$what" "${row#*:}" "$d" \
				"$(range "$WORK/r.${row%%:*}.$f")" "$o" "$(ratio "$d" "$o")"
		done
		printf '%-16s %-44s %10.1f\n' "$what" "cost per extra hop, first read ((3 - 1) / 2)" \
			"$(echo "scale=3; ($(median <"$WORK/r.first3.$f") - $(median <"$WORK/r.first1.$f")) / 2" | bc)"
	done
	echo "overlayfs (min-max): 200 KiB $(range "$WORK/r.ovl.small") ms, 64 MiB $(range "$WORK/r.ovl.big") ms"
	echo "(overlayfs: the same file of the full v4 image, page cache cold; ratio = di3fs / overlayfs, lower is better)"
}

start_snapshotter
start_containerd
[ "$ONLY" = chain ] || one_hop
[ "$ONLY" = one-hop ] || chain
