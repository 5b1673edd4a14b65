#!/bin/bash
# bench-prefetch.sh - the first run of a delta image's own program right
# after `cdimg load`, with and without the snapshotter's prefetch, against
# the same image imported in full into containerd's overlayfs snapshotter
# (private containerd and di3fs-snapshotter, as the e2e tests start them).
# Run by hand as root after a build:
#
#   bench/bench-prefetch.sh [BUILD_DIR] [REPEATS]
#
# Image: the nginx v1 tree (tests/assets/mktrees.sh) as the base; the
# target has Entrypoint ["/usr/bin/apt-get", "--version"] and changes
# apt-get and every library it loads (ld.so, libc, libstdc++, libapt-pkg
# ...: a tail appended to each, so each is a patch to rebuild). Each round,
# for di3fs: restart the daemon with its rebuilt-file cache emptied (prefetch
# off, then on), remove the image (ctr images rm --sync), drop the page
# cache, `cdimg load`, and at once `ctr run --rm` the image; for overlayfs:
# drop the page cache and run the full image. With prefetch on, the run
# races the prefetch, as a user's `cdimg load && ctr run` would; the
# image's removal in the round before noted the files its run opened, so
# from the second round on those are seeds too. Also timed: the run once
# the prefetch is done. Medians of REPEATS; ratios against overlayfs.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
REPS=${2:-5}
export SNAPSHOTTER=$BUILD/snapshotter/di3fs-snapshotter
export SNAPCTL=$BUILD/tests/e2e/di3fs-snapctl
export DI3FS_SRC=$SRC
CDIMG=$BUILD/ctr-tools/cdimg
[ -x "$CDIMG" ] || { echo "build first: no $CDIMG" >&2; exit 1; }
. "$SRC/tests/e2e/lib.sh"
write_snap_config
sed -i 's/^log_level = debug/log_level = info/' "$WORK/snap.conf"

TREES=${DI3FS_TREES:-/var/cache/di3fs/trees}
bash "$SRC/tests/assets/mktrees.sh" --out "$TREES" nginx >/dev/null
MKOCI="python3 $SRC/tests/tools/mkoci.py"
IMG=bench.local/app:v2
FULL=bench.local/app:v2-full
PROG=/usr/bin/apt-get

now() { date +%s.%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
ratio() { echo "scale=2; $1 / $2" | bc; }

echo "building images (nginx v1 tree; $PROG and its libraries changed)..." >&2
cp -al "$TREES/nginx-v1" "$WORK/t1"
cp -al "$TREES/nginx-v1" "$WORK/t2"
files=$(chroot "$WORK/t1" /usr/bin/ldd "$PROG" | awk '$3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
for f in $PROG $files; do
	f=$(chroot "$WORK/t2" readlink -f "$f")
	{ cat "$WORK/t2$f"; echo "changed in v2"; } >"$WORK/t2$f.new"
	chmod --reference="$WORK/t2$f" "$WORK/t2$f.new"
	mv "$WORK/t2$f.new" "$WORK/t2$f"
done
nchanged=$(echo $PROG $files | wc -w)
ep="[\"$PROG\", \"--version\"]"
$MKOCI --ref bench.local/app:v1 "$WORK/t1" "$WORK/v1.tar" >/dev/null
$MKOCI --ref "$IMG" --entrypoint "$ep" "$WORK/t2" "$WORK/v2.tar" >/dev/null
# another config (a label), or the full image's config would be the delta
# image's, whose gc label keeps the delta snapshot after its image is removed
$MKOCI --ref "$FULL" --entrypoint "$ep" --label bench=full "$WORK/t2" "$WORK/v2full.tar" >/dev/null
"$CDIMG" diff "$WORK/v1.tar" "$WORK/v2.tar" -o "$WORK/d.cdimg" >/dev/null

start_snapshotter
start_containerd
$C images import --snapshotter=di3fs "$WORK/v1.tar" >/dev/null
$C images import "$WORK/v2full.tar" >/dev/null

run() { # SNAPSHOTTER IMAGE: seconds for ctr run --rm
	local t
	t=$(now)
	$C run --rm --snapshotter="$1" "$2" "b$RANDOM$RANDOM" >/dev/null
	echo "$(now) - $t" | bc
}
# di3fs with prefetch yes|no: a fresh daemon and cache, the image loaded
# anew; prints "load_s run_s"
di3fs_round() {
	stop_snapshotter
	sed -i '/^prefetch = /d' "$WORK/snap.conf"
	echo "prefetch = $1" >>"$WORK/snap.conf"
	rm -rf "$ROOT/cache/sha256"
	start_snapshotter
	wait_for 30 $C snapshots --snapshotter di3fs ls || fail "containerd did not reconnect"
	unload
	drop_caches
	local t l
	t=$(now)
	"$CDIMG" load "$WORK/d.cdimg" --address "$CSOCK" --namespace "$NS" >/dev/null
	l=$(echo "$(now) - $t" | bc)
	echo "$l $(run di3fs "$IMG")"
}
prefetched() { grep -c "prefetched" "$WORK/snap.log" || true; }
# the image and its delta snapshot gone (garbage collection), so that the
# next cdimg load commits it anew
unload() {
	$C images rm --sync "$IMG" >/dev/null 2>&1 || true
	wait_for 60 sh -c "! ls '$ROOT/fuse' | grep -q ." || fail "the delta image was not removed"
}

: >"$WORK/off"
: >"$WORK/on"
: >"$WORK/done"
: >"$WORK/ovl"
for i in $(seq "$REPS"); do
	echo "round $i/$REPS..." >&2
	di3fs_round no >>"$WORK/off"
	di3fs_round yes >>"$WORK/on"
	# again, the run once the prefetch has finished
	n=$(prefetched)
	stop_snapshotter
	rm -rf "$ROOT/cache/sha256"
	start_snapshotter
	wait_for 30 $C snapshots --snapshotter di3fs ls || fail "containerd did not reconnect"
	unload
	drop_caches
	"$CDIMG" load "$WORK/d.cdimg" --address "$CSOCK" --namespace "$NS" >/dev/null
	wait_for 60 sh -c "[ \$(grep -c prefetched '$WORK/snap.log') -gt $n ]" || fail "no prefetch"
	drop_caches
	run di3fs "$IMG" >>"$WORK/done"
	drop_caches
	run overlayfs "$FULL" >>"$WORK/ovl"
done

o=$(median <"$WORK/ovl")
load_off=$(cut -d' ' -f1 <"$WORK/off" | median)
load_on=$(cut -d' ' -f1 <"$WORK/on" | median)
off=$(cut -d' ' -f2 <"$WORK/off" | median)
on=$(cut -d' ' -f2 <"$WORK/on" | median)
done_=$(median <"$WORK/done")
echo
echo "first run of $PROG --version right after cdimg load ($nchanged changed files to rebuild), medians of $REPS"
printf '%-46s %10s %10s\n' "measure" "seconds" "vs overlayfs"
printf '%-46s %9.3fs %10s\n' "overlayfs, full image (page cache cold)" "$o" 1.00
printf '%-46s %9.3fs %10s\n' "di3fs, prefetch off" "$off" "$(ratio "$off" "$o")"
printf '%-46s %9.3fs %10s\n' "di3fs, prefetch on, run right after load" "$on" "$(ratio "$on" "$o")"
printf '%-46s %9.3fs %10s\n' "di3fs, prefetch on, run after it finished" "$done_" "$(ratio "$done_" "$o")"
printf '%-46s %9.3fs %9.3fs\n' "cdimg load, prefetch off / on" "$load_off" "$load_on"
grep "prefetched" "$WORK/snap.log" | tail -n 1 | sed 's/^/last prefetch: /'
