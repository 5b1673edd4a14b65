#!/bin/bash
# bench-restart.sh - what a running container sees of a snapshotter
# restart. Run by hand as root after a build:
#
#   bench/bench-restart.sh [BUILD_DIR] [REPEATS]
#
# Private containerd and di3fs-snapshotter (the e2e tests' setup), the
# delta image of tests/e2e/restart.inc (a trimmed nginx v2 with an 8 MiB
# file). One container reads 4 KiB of that file with O_DIRECT in a loop
# (every read reaches the daemon; a dd process each, so a few ms apart)
# and logs each read's end. REPEATS times for each way of restarting
# (kill -9 then start at once; SIGTERM then start): restart, wait for the
# reads to go on, then from the log: the longest gap between two reads
# around the restart (the longest stall the container saw) and the time
# from the kill (or the TERM) to the read that ended it (the first one the
# new daemon served). The reads' usual gap, measured before, is the floor
# of both. From the
# daemon's log: when the new daemon had taken the FUSE connection over, and
# when it had loaded the delta images again (requests for them wait until
# then). Prints a table of medians and maxima.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
REPS=${2:-5}
export SNAPSHOTTER=$BUILD/snapshotter/di3fs-snapshotter
export SNAPCTL=$BUILD/tests/e2e/di3fs-snapctl
export CDIMG=$BUILD/ctr-tools/cdimg
export DI3FS_SRC=$SRC
[ -x "$CDIMG" ] || { echo "build first: no $CDIMG" >&2; exit 1; }
. "$SRC/tests/e2e/lib.sh"
. "$SRC/tests/e2e/restart.inc"
write_snap_config
sed -i 's/^log_level = debug/log_level = info/' "$WORK/snap.conf"

# median / max of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
max() { sort -g | tail -n 1; }

echo "building the images..." >&2
build_images 10
start_snapshotter
start_containerd
load_images
PROBE='i=0; while [ ! -e /ctl/stop ]; do
	dd if=/opt/big.bin iflag=direct bs=4k count=1 skip=$((i % 2048)) status=none >/dev/null &&
		echo "ok $(date +%s%N)"
	i=$((i + 1))
done'
run_loop probe "$PROBE"
wait_oks probe 50 120

# gaps NAME FROM_NS TO_NS: the gaps (ms) between consecutive reads in range
gaps() {
	awk -v a="$2" -v b="$3" '$1 == "ok" && $2 + 0 >= a + 0 && $2 + 0 <= b + 0 {
		if (p) printf "%.1f\n", ($2 - p) / 1e6; p = $2 }' "$CTL/$1.log"
}

t=$(now_ns)
sleep 3
usual=$(gaps probe "$t" "$(now_ns)" | median)

# log_ms PATTERN AFTER_NS: ms from AFTER_NS to the first line of the
# daemon's log matching PATTERN logged after it
log_ms() {
	local ts
	while read -r ts _; do
		ts=$(date -d "$ts" +%s%N)
		if [ "$ts" -ge "$2" ]; then
			echo $(((ts - $2) / 1000000))
			return
		fi
	done < <(grep -E "$1" "$WORK/snap.log")
	echo "?"
}

# one_restart SIG: restarts with SIG, appends "first_ms stall_ms takeover_ms
# loaded_ms" to $WORK/SIG.res (not in a subshell: the daemon's pid must stay
# ours)
one_restart() {
	local down before
	sleep 1
	before=$(now_ns)
	sleep 1
	down=$(now_ns)
	stop_snapshotter "$1"
	start_snapshotter
	wait_oks probe 20 60 "$down"
	# the stall: the longest gap around the restart; the read ending it is
	# the first the new daemon served (a read logged just after the kill
	# may have been served before it: each is logged by a new process)
	awk -v a="$before" -v d="$down" '$1 == "ok" && $2 + 0 >= a + 0 {
		if (p && $2 - p > g) { g = $2 - p; e = $2 } p = $2 }
		END { printf "%.1f %.1f ", (e - d) / 1e6, g / 1e6 }' "$CTL/probe.log" >>"$WORK/$1.res"
	printf "%s %s\n" "$(log_ms 'took over the FUSE connection' "$((down - 1000000))")" \
		"$(log_ms 'delta images again' "$((down - 1000000))")" >>"$WORK/$1.res"
}

for sig in KILL TERM; do
	for _ in $(seq "$REPS"); do
		one_restart "$sig"
	done
done
touch "$CTL/stop"
wait $LOOP_PIDS
if grep -v '^ok ' "$CTL/probe.log" | grep -q .; then
	fail "the reads failed: $(grep -v '^ok ' "$CTL/probe.log" | head -n 3)"
fi

echo
echo "restart of di3fs-snapshotter under a container reading 4 KiB O_DIRECT in a loop ($REPS runs each)"
echo "usual gap between two reads: ${usual} ms; medians (max) in ms, from the kill or the TERM"
printf "| %-15s | %-18s | %-18s | %-18s | %-18s |\n" "restart" "first read" \
	"longest stall" "FUSE taken over" "images loaded"
printf "| %-15s | %-18s | %-18s | %-18s | %-18s |\n" "---" "---" "---" "---" "---"
# col SIG N: "median (max)" of column N
col() {
	local v
	v=$(awk -v n="$2" '{ print $n }' "$WORK/$1.res" | grep -v '?')
	echo "$(echo "$v" | median) ($(echo "$v" | max))"
}
for sig in KILL TERM; do
	name=$([ "$sig" = KILL ] && echo "kill -9, start" || echo "SIGTERM, start")
	printf "| %-15s | %-18s | %-18s | %-18s | %-18s |\n" "$name" "$(col "$sig" 1)" \
		"$(col "$sig" 2)" "$(col "$sig" 3)" "$(col "$sig" 4)"
done
