#!/bin/bash
# bench-merge.sh - cdimg merge against a direct diff: time and size, on the
# real openssl chain (3 trees), a 5-step chain over the same trees (v1 v2 v3
# v1 v2 v3) and a random 5-step chain (6 trees).
# See bench/README.md.
#
#   bench/bench-merge.sh [--cache DIR] [--runs N]
#
# Runs as root (tests/assets/mktrees.sh builds the trees). Finds cdimg via
# $CDIMG, else ./build/ctr-tools/cdimg (current directory, then the source
# tree).
set -eu

PROG=${0##*/}
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
usage() {
	cat >&2 <<EOF
usage: $PROG [--cache DIR] [--runs N]
  --cache DIR  cache of mktrees.sh (default /var/cache/di3fs)
  --runs N     run every timed step N times, report the median (default 3)
EOF
	exit 2
}

HERE=$(cd "$(dirname "$0")" && pwd -P)
SRC=$(cd "$HERE/.." && pwd -P)
CACHE=/var/cache/di3fs
RUNS=3
while [ $# -gt 0 ]; do
	case $1 in
	--cache) [ $# -ge 2 ] || usage; CACHE=$2; shift 2 ;;
	--cache=*) CACHE=${1#*=}; shift ;;
	--runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
	--runs=*) RUNS=${1#*=}; shift ;;
	-h|--help) usage ;;
	*) say "unknown argument: $1"; usage ;;
	esac
done
case $RUNS in ''|*[!0-9]*|0) die "--runs needs a positive number" ;; esac
[ "$(id -u)" = 0 ] || die "must run as root (the trees hold device nodes and files of other owners)"
/usr/bin/time --version 2>&1 | grep -q 'GNU' || die "GNU time is needed at /usr/bin/time (apt-get install time)"

CDIMG=${CDIMG:-}
if [ -z "$CDIMG" ]; then
	for c in "$PWD/build/ctr-tools/cdimg" "$SRC/build/ctr-tools/cdimg"; do
		if [ -x "$c" ]; then CDIMG=$c; break; fi
	done
fi
[ -n "$CDIMG" ] && [ -x "$CDIMG" ] || die "cdimg not found (build it, or set CDIMG)"

say "building/reusing the openssl chain (mktrees.sh)"
VERSIONS=$(bash "$SRC/tests/assets/mktrees.sh" --cache "$CACHE" openssl) || die "mktrees.sh failed"
TREES=$(cd "$CACHE/trees" && pwd -P)
WORK=$(mktemp -d "$CACHE/.bench-merge.XXXXXX")
trap 'rm -rf --one-file-system -- "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# timed CMD...: runs CMD RUNS times; T_SEC (median wall) and T_CPU (median
# user+system seconds).
timed() {
	local i walls=() cpus=() w u s
	for ((i = 0; i < RUNS; i++)); do
		/usr/bin/time -f '%e %U %S' -o "$WORK/time" "$@" >/dev/null || return 1
		read -r w u s < <(tail -n 1 "$WORK/time")
		walls+=("$w")
		cpus+=("$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')")
	done
	T_SEC=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	T_CPU=$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
}

size() { stat -c %s "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

ROWS=()
FAILED=0
# bench_chain NAME TREE...: chain deltas made for merging (bsdiff,gzip:
# every patch composes) and default ones, a direct diff first -> last,
# merges with and without the first tree, checks.
bench_chain() {
	local name=$1 i n total=0 first last
	shift
	local trees=("$@")
	n=$((${#trees[@]} - 1))
	first=${trees[0]} last=${trees[$n]}
	local bs=() df=()
	for ((i = 0; i < n; i++)); do
		"$CDIMG" diff -q --codecs bsdiff,gzip "${trees[$i]}" "${trees[$((i + 1))]}" -o "$WORK/$name-b$i.dimg"
		"$CDIMG" diff -q "${trees[$i]}" "${trees[$((i + 1))]}" -o "$WORK/$name-d$i.dimg"
		bs+=("$WORK/$name-b$i.dimg")
		df+=("$WORK/$name-d$i.dimg")
		total=$((total + $(size "$WORK/$name-d$i.dimg")))
	done
	timed "$CDIMG" diff -q "$first" "$last" -o "$WORK/$name-direct.dimg"
	local dt=$T_SEC dc=$T_CPU ds
	ds=$(size "$WORK/$name-direct.dimg")
	timed "$CDIMG" merge -q "${bs[@]}" -o "$WORK/$name-merged.dimg"
	local mt=$T_SEC mc=$T_CPU ms
	ms=$(size "$WORK/$name-merged.dimg")
	timed "$CDIMG" merge -q "${df[@]}" -o "$WORK/$name-plain.dimg"
	local pt=$T_SEC pc=$T_CPU psz
	psz=$(size "$WORK/$name-plain.dimg")
	timed "$CDIMG" merge -q --base "$first" "${df[@]}" -o "$WORK/$name-based.dimg"
	local bt=$T_SEC bc=$T_CPU bsz
	bsz=$(size "$WORK/$name-based.dimg")
	for m in merged plain based; do
		rm -rf "$WORK/out"
		if ! "$CDIMG" apply -q "$first" "$WORK/$name-$m.dimg" -o "$WORK/out" ||
			! python3 "$SRC/tests/tools/treecmp.py" "$last" "$WORK/out" >/dev/null; then
			say "$name: the $m delta does not rebuild the last tree"
			FAILED=1
		fi
	done
	rm -rf "$WORK/out"
	ROWS+=("$name|$n|direct diff (default codecs)|$dt|$dc|-|$ds|1.00")
	ROWS+=("$name|$n|merge of bsdiff,gzip deltas, no image|$mt|$mc|$(ratio "$dc" "$mc")x|$ms|$(ratio "$ms" "$ds")")
	ROWS+=("$name|$n|merge of default deltas, no image|$pt|$pc|$(ratio "$dc" "$pc")x|$psz|$(ratio "$psz" "$ds")")
	ROWS+=("$name|$n|merge of default deltas, --base|$bt|$bc|$(ratio "$dc" "$bc")x|$bsz|$(ratio "$bsz" "$ds")")
	ROWS+=("$name|$n|chain of default deltas (sum)|-|-|-|$total|$(ratio "$total" "$ds")")
}

bench_chain openssl "$TREES/openssl-v1" "$TREES/openssl-v2" "$TREES/openssl-v3"

# Five real steps: up, up, down to v1, up, up (each a package upgrade or
# downgrade; the merged delta is v1 -> v3 again).
O=$TREES/openssl
bench_chain openssl-5 "$O-v1" "$O-v2" "$O-v3" "$O-v1" "$O-v2" "$O-v3"

say "random 5-step chain (mkrandpair.py --chain 6)"
python3 "$SRC/tests/tools/mkrandpair.py" 2026 "$WORK/rand" --chain 6
bench_chain random5 "$WORK"/rand/v{1,2,3,4,5,6}

printf '%s\n' "$VERSIONS" | head -n 1
printf '| chain | steps | what | wall s | cpu s | cpu speedup | bytes | size vs direct |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for r in "${ROWS[@]}"; do
	IFS='|' read -r a b c d e f g h <<<"$r"
	printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$a" "$b" "$c" "$d" "$e" "$f" "$g" "$h"
done
exit $FAILED
