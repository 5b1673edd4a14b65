#!/bin/bash
# bench-diff.sh - delta size and speed of cdimg against simple baselines on
# real Debian image trees (see bench/README.md).
#
#   bench/bench-diff.sh [--cache DIR] [--runs N] [--pairs "nginx redis openssl:2:3"]
#
# Runs as root (tests/assets/mktrees.sh builds the trees). Finds cdimg via
# $CDIMG, else ./build/ctr-tools/cdimg (current directory, then the source
# tree); without it only the baselines are measured.
# shellcheck disable=SC2317 # functions called via measure and bash -c
set -eu

PROG=${0##*/}
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
usage() {
	cat >&2 <<EOF
usage: $PROG [--cache DIR] [--runs N] [--pairs LIST]
  --cache DIR  cache of mktrees.sh (default /var/cache/di3fs)
  --runs N     run every timed step N times, report the median (default 3)
  --pairs LIST pairs to measure (default "nginx redis"): NAME compares the
               trees NAME-v1 and NAME-v2, NAME:A:B NAME-vA and NAME-vB
EOF
	exit 2
}

HERE=$(cd "$(dirname "$0")" && pwd -P)
SRC=$(cd "$HERE/.." && pwd -P)
CACHE=/var/cache/di3fs
RUNS=3
PAIRS=(nginx redis)
while [ $# -gt 0 ]; do
	case $1 in
	--cache) [ $# -ge 2 ] || usage; CACHE=$2; shift 2 ;;
	--cache=*) CACHE=${1#*=}; shift ;;
	--runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
	--runs=*) RUNS=${1#*=}; shift ;;
	--pairs) [ $# -ge 2 ] || usage; read -r -a PAIRS <<<"$2"; shift 2 ;;
	--pairs=*) read -r -a PAIRS <<<"${1#*=}"; shift ;;
	-h|--help) usage ;;
	*) say "unknown argument: $1"; usage ;;
	esac
done

case $RUNS in ''|*[!0-9]*|0) die "--runs needs a positive number" ;; esac
[ "$(id -u)" = 0 ] || die "must run as root (the trees hold device nodes and files of other owners)"
/usr/bin/time --version 2>&1 | grep -q 'GNU' || die "GNU time is needed at /usr/bin/time (apt-get install time)"
for c in zstd bsdiff tar python3 sha256sum find xargs awk; do
	command -v "$c" >/dev/null 2>&1 || die "'$c' not found (apt-get install zstd bsdiff tar python3)"
done
MKTREES=$SRC/tests/assets/mktrees.sh
TREECMP=$SRC/tests/tools/treecmp.py
[ -f "$MKTREES" ] || die "$MKTREES not found"
[ -f "$TREECMP" ] || die "$TREECMP not found"

# cdimg
CDIMG=${CDIMG:-}
if [ -z "$CDIMG" ]; then
	for c in "$PWD/build/ctr-tools/cdimg" "$SRC/build/ctr-tools/cdimg"; do
		if [ -x "$c" ]; then CDIMG=$c; break; fi
	done
fi
if [ -n "$CDIMG" ] && [ ! -x "$CDIMG" ]; then
	say "warning: CDIMG=$CDIMG is not executable"
	CDIMG=
fi

say "building/reusing trees (mktrees.sh)"
mapfile -t NAMES < <(printf '%s\n' "${PAIRS[@]}" | sed 's/:.*//' | sort -u)
if ! bash "$MKTREES" --cache "$CACHE" "${NAMES[@]}" >"${TMPDIR:-/tmp}/bench-diff.versions.$$"; then
	# A pair this mktrees.sh does not know may still have its trees there.
	for p in "${PAIRS[@]}"; do
		IFS=: read -r name a b <<<"$p"
		[ -d "$CACHE/trees/$name-v${a:-1}" ] && [ -d "$CACHE/trees/$name-v${b:-2}" ] ||
			die "mktrees.sh failed"
	done
	say "warning: mktrees.sh failed; using the trees already in $CACHE/trees"
fi
VERSIONS=$(cat "${TMPDIR:-/tmp}/bench-diff.versions.$$")
rm -f "${TMPDIR:-/tmp}/bench-diff.versions.$$"
TREES=$(cd "$CACHE/trees" && pwd -P)

WORK=$(mktemp -d "$CACHE/.bench.XXXXXX")
trap 'rm -rf --one-file-system -- "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# timed CMD...: run CMD under GNU time; sets T_SEC (wall seconds), T_CPU
# (user + system seconds of CMD and all its children) and T_MIB (peak RSS
# of CMD or its largest child, MiB). Returns CMD's status.
timed() {
	local rc=0 kb u s
	/usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$@" || rc=$?
	# On failure GNU time writes a status line first; ours is the last.
	read -r T_SEC u s kb < <(tail -n 1 "$WORK/time")
	T_CPU=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
	T_MIB=$(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }')
	return $rc
}
# measure PREP CMD...: RUNS times, PREP (a function removing the outputs
# of an earlier run) then CMD under timed. T_SEC is the median wall time,
# T_CPU the median CPU time, T_MIB the largest peak RSS. Stops at the
# first failing run.
median() { sort -n | awk '{ t[NR] = $1 } END { print t[int((NR + 1) / 2)] }'; }
measure() {
	local prep=$1 i times=() cpus=() mib=0
	shift
	for ((i = 0; i < RUNS; i++)); do
		"$prep"
		sync # write back the previous run, so it does not slow this one
		timed "$@" || return $?
		times+=("$T_SEC")
		cpus+=("$T_CPU")
		mib=$(awk -v a="$mib" -v b="$T_MIB" 'BEGIN { print (b > a) ? b : a }')
	done
	T_SEC=$(printf '%s\n' "${times[@]}" | median)
	T_CPU=$(printf '%s\n' "${cpus[@]}" | median)
	T_MIB=$mib
}
# Output removers for measure; $w is the pair's work directory.
prep_tz() { rm -f "$w/changed.tar.zst"; }
prep_bs() { rm -rf "$w/bsdiff"; mkdir "$w/bsdiff"; }
prep_zp() { rm -rf "$w/zpatch" "$w/zpatch.log"; mkdir "$w/zpatch"; }
prep_tx() { rm -rf --one-file-system "$w/tarx"; mkdir "$w/tarx"; }
prep_diff() { rm -f "$w/x.dimg"; }
prep_nogz() { rm -f "$w/nogz.dimg"; }
prep_apply() { rm -rf --one-file-system "$w/applied"; }
# total size in bytes of the files in directory $1
dir_bytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# The per-file baselines, run under one GNU time each. Lists hold one
# path per line, relative to the tree ("./usr/...").
per_file_bsdiff() { # V1 V2 CHANGED NEW OUTDIR
	set -eu
	local n=0 p
	while IFS= read -r p; do
		n=$((n + 1))
		bsdiff "$1/$p" "$2/$p" "$5/$n.bsdiff"
	done <"$3"
	while IFS= read -r p; do
		n=$((n + 1))
		zstd -q -19 -T1 "$2/$p" -o "$5/$n.zst"
	done <"$4"
}
per_file_zstd() { # V1 V2 CHANGED NEW OUTDIR
	set -eu
	local n=0 p
	while IFS= read -r p; do
		n=$((n + 1))
		zstd -q -19 -T1 --long=31 --patch-from="$1/$p" "$2/$p" -o "$5/$n.zst" 2>>"$5.log"
	done <"$3"
	while IFS= read -r p; do
		n=$((n + 1))
		zstd -q -19 -T1 "$2/$p" -o "$5/$n.zst"
	done <"$4"
}
tar_zstd() { # V2 LIST OUT
	set -eu -o pipefail
	tar -C "$1" --numeric-owner --xattrs --xattrs-include='*' --format=posix \
		--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
		--no-recursion --verbatim-files-from -T "$2" -cf - | zstd -q -19 -T1 -o "$3"
}
export -f per_file_bsdiff per_file_zstd tar_zstd

TAR_META=(--xattrs --xattrs-include='*' --acls --numeric-owner)
ROWFMT='  %-34s %12s %9s %8s %8s %8s %9s\n'
STATUS=0
REPORT=$WORK/report
: >"$REPORT"
# shellcheck disable=SC2059 # out takes a printf format
out() { printf "$@" >>"$REPORT"; }

# list_tree DIR: "HASH  ./path" of every regular file, sorted by path.
list_tree() {
	(cd "$1" && find . -type f -print0 | xargs -0 -r sha256sum) | LC_ALL=C sort -k 2
}

for spec in "${PAIRS[@]}"; do
	IFS=: read -r name a b <<<"$spec"
	pair=$name-v${a:-1}-v${b:-2}
	[ "$spec" = "$name" ] && pair=$name
	v1=$TREES/$name-v${a:-1}
	v2=$TREES/$name-v${b:-2}
	w=$WORK/$pair
	mkdir -p "$w"
	say "$pair: listing changes"
	list_tree "$v1" >"$w/v1.sum"
	list_tree "$v2" >"$w/v2.sum"
	# sha256sum marks names with backslash or newline by a leading '\';
	# Debian trees have none, but say so if it happens.
	odd=$(cat "$w/v1.sum" "$w/v2.sum" | grep -c '^[\]' || :)
	[ "$odd" = 0 ] || say "warning: $pair: $odd files with odd names left out of the baselines"
	awk -v changed="$w/changed" -v new="$w/new" -v deleted="$w/deleted" '
		/^\\/ { next }
		{ h = substr($0, 1, 64); p = substr($0, 67) }
		FNR == NR { old[p] = h; next }
		{ seen[p] = 1
		  if (!(p in old)) print p > new
		  else if (old[p] != h) print p > changed }
		END { for (p in old) if (!(p in seen)) print p > deleted }
	' "$w/v1.sum" "$w/v2.sum"
	touch "$w/changed" "$w/new" "$w/deleted"
	(cd "$v1" && find . -type l -printf '%p -> %l\n' | LC_ALL=C sort) >"$w/v1.links"
	(cd "$v2" && find . -type l -printf '%p -> %l\n' | LC_ALL=C sort) >"$w/v2.links"
	LC_ALL=C comm -13 "$w/v1.links" "$w/v2.links" | sed 's/ -> .*//' >"$w/links"
	cat "$w/changed" "$w/new" "$w/links" >"$w/tarlist"

	n_entries=$(find "$v2" | wc -l)
	n_files=$(wc -l <"$w/v2.sum")
	tree_bytes=$(dir_bytes "$v2")
	n_changed=$(wc -l <"$w/changed")
	n_gz=$(grep -c '\.gz$' "$w/changed" || :)
	n_new=$(wc -l <"$w/new")
	n_deleted=$(wc -l <"$w/deleted")
	n_links=$(wc -l <"$w/links")
	changed_bytes=$(cd "$v2" && tr '\n' '\0' <"$w/changed" | xargs -0 -r stat -c %s | awk '{ s += $1 } END { print s + 0 }')
	new_bytes=$(cd "$v2" && tr '\n' '\0' <"$w/new" | xargs -0 -r stat -c %s | awk '{ s += $1 } END { print s + 0 }')

	# Baseline: changed and new files (and symlinks) in one tar, zstd -19.
	say "$pair: tar + zstd -19"
	measure prep_tz bash -c 'tar_zstd "$@"' _ "$v2" "$w/tarlist" "$w/changed.tar.zst" ||
		die "$pair: tar | zstd failed"
	tz_bytes=$(stat -c %s "$w/changed.tar.zst"); tz_t=$T_CPU; tz_w=$T_SEC; tz_m=$T_MIB

	say "$pair: per-file bsdiff ($n_changed changed) + zstd -19 ($n_new new)"
	measure prep_bs bash -c 'per_file_bsdiff "$@"' _ "$v1" "$v2" "$w/changed" "$w/new" "$w/bsdiff" ||
		die "$pair: per-file bsdiff failed"
	bs_bytes=$(dir_bytes "$w/bsdiff"); bs_t=$T_CPU; bs_w=$T_SEC; bs_m=$T_MIB

	say "$pair: per-file zstd -19 --long=31 --patch-from + zstd -19 new"
	measure prep_zp bash -c 'per_file_zstd "$@"' _ "$v1" "$v2" "$w/changed" "$w/new" "$w/zpatch" ||
		die "$pair: per-file zstd --patch-from failed (see $w/zpatch.log)"
	zp_bytes=$(dir_bytes "$w/zpatch"); zp_t=$T_CPU; zp_w=$T_SEC; zp_m=$T_MIB

	smallest=$(printf '%s\n' "$tz_bytes" "$bs_bytes" "$zp_bytes" | sort -n | head -n 1)

	# GNU tar extraction of the whole v2 tree, from a tar made beforehand.
	say "$pair: GNU tar extraction of v2"
	tar -C "$v2" "${TAR_META[@]}" --format=posix -cf "$w/v2.tar" . ||
		die "$pair: tar of v2 failed"
	measure prep_tx tar -C "$w/tarx" "${TAR_META[@]}" --same-owner -xpf "$w/v2.tar" ||
		die "$pair: tar extraction failed"
	tx_t=$T_CPU; tx_w=$T_SEC; tx_m=$T_MIB
	if python3 "$TREECMP" "$v2" "$w/tarx" >"$w/tarx.cmp" 2>&1; then
		tarx_check="tar round trip identical (treecmp)"
	else
		tarx_check="tar round trip DIFFERS (treecmp, see below)"
	fi
	tar_bytes=$(stat -c %s "$w/v2.tar")
	rm -rf --one-file-system "$w/tarx" "$w/v2.tar"

	# cdimg
	cd_note='' cd_bytes='' cd_t='' cd_m='' ap_t='' ap_m='' verify='' ng_bytes=''
	if [ -z "$CDIMG" ]; then
		cd_note="cdimg not built (set CDIMG or build ./build/ctr-tools/cdimg)"
	else
		say "$pair: cdimg diff"
		if measure prep_diff "$CDIMG" diff "$v1" "$v2" -o "$w/x.dimg" >"$w/diff.log" 2>&1; then
			cd_bytes=$(stat -c %s "$w/x.dimg"); cd_t=$T_CPU; cd_w=$T_SEC; cd_m=$T_MIB
			say "$pair: cdimg apply"
			if measure prep_apply "$CDIMG" apply "$v1" "$w/x.dimg" -o "$w/applied" >"$w/apply.log" 2>&1; then
				ap_t=$T_CPU; ap_w=$T_SEC; ap_m=$T_MIB
				if python3 "$TREECMP" "$v2" "$w/applied" >"$w/verify.log" 2>&1; then
					verify="identical to v2 (treecmp)"
				else
					verify="DIFFERS from v2 (treecmp)"
					STATUS=1
				fi
			else
				ap_t=; verify="cdimg apply FAILED"
				STATUS=1
			fi
			rm -rf --one-file-system "$w/applied"
			say "$pair: cdimg diff without the gzip codec"
			if measure prep_nogz "$CDIMG" diff --codecs bsdiff,zstdref "$v1" "$v2" \
				-o "$w/nogz.dimg" >"$w/nogz.log" 2>&1; then
				ng_bytes=$(stat -c %s "$w/nogz.dimg"); ng_t=$T_CPU; ng_w=$T_SEC; ng_m=$T_MIB
			fi
		else
			cd_bytes=; cd_note="cdimg diff FAILED"
			STATUS=1
		fi
	fi

	# report
	out '\n== %s %s\n' "$pair" "$(printf '%s\n' "$VERSIONS" | grep "^$pair:" | sed "s/^$pair: //")"
	out '  v2 tree: %d entries, %d regular files, %s bytes\n' "$n_entries" "$n_files" "$tree_bytes"
	out '  regular files changed: %d (%d of them .gz, %s bytes in v2), new: %d (%s bytes), deleted: %d; new or changed symlinks: %d\n' \
		"$n_changed" "$n_gz" "$changed_bytes" "$n_new" "$new_bytes" "$n_deleted" "$n_links"
	out "$ROWFMT" "method" "bytes" "x smallest" "wall s" "cpu s" "x ref" "peak MiB"
	if [ -n "$CDIMG" ] && [ -n "${cd_bytes:-}" ]; then
		out "$ROWFMT" "cdimg diff" "$cd_bytes" "$(ratio "$cd_bytes" "$smallest")" "$cd_w" "$cd_t" "$(ratio "$cd_t" "$bs_t")" "$cd_m"
	else
		out '  %-34s %s\n' "cdimg diff" "${cd_note}"
	fi
	if [ -n "${ng_bytes:-}" ]; then
		out "$ROWFMT" "cdimg diff, no gzip codec" "$ng_bytes" "$(ratio "$ng_bytes" "$smallest")" "$ng_w" "$ng_t" "$(ratio "$ng_t" "$bs_t")" "$ng_m"
	fi
	out "$ROWFMT" "changed files, tar + zstd -19" "$tz_bytes" "$(ratio "$tz_bytes" "$smallest")" "$tz_w" "$tz_t" "$(ratio "$tz_t" "$bs_t")" "$tz_m"
	out "$ROWFMT" "per-file bsdiff (+zstd new)" "$bs_bytes" "$(ratio "$bs_bytes" "$smallest")" "$bs_w" "$bs_t" "1.00" "$bs_m"
	out "$ROWFMT" "per-file zstd --patch-from" "$zp_bytes" "$(ratio "$zp_bytes" "$smallest")" "$zp_w" "$zp_t" "$(ratio "$zp_t" "$bs_t")" "$zp_m"
	if [ -n "$CDIMG" ] && [ -n "${cd_bytes:-}" ]; then
		if [ -n "${ap_t:-}" ]; then
			out "$ROWFMT" "cdimg apply" "-" "-" "$ap_w" "$ap_t" "$(ratio "$ap_t" "$tx_t")" "$ap_m"
		else
			out '  %-34s %s\n' "cdimg apply" "FAILED"
		fi
	fi
	out "$ROWFMT" "GNU tar -x of v2 (tar $tar_bytes B)" "-" "-" "$tx_w" "$tx_t" "1.00" "$tx_m"
	out '  x ref: CPU time (user + system) of diff rows vs per-file bsdiff, of the apply row vs GNU tar -x\n'
	out '  %s\n' "$tarx_check"
	if ! grep -q '^treecmp: identical' "$w/tarx.cmp"; then
		sed 's/^/    /' "$w/tarx.cmp" | head -n 20 >>"$REPORT"
	fi
	if [ -n "$CDIMG" ] && [ -n "${cd_bytes:-}" ]; then
		out '  cdimg apply result: %s\n' "$verify"
		if [ "$verify" != "identical to v2 (treecmp)" ]; then
			sed 's/^/    /' "$w/verify.log" "$w/apply.log" 2>/dev/null | head -n 30 >>"$REPORT"
		fi
		tgt_size=$(awk -v a="$cd_bytes" -v b="$smallest" 'BEGIN { print (a <= b) ? "met" : "MISSED" }')
		tgt_diff=$(awk -v a="$cd_t" -v b="$bs_t" 'BEGIN { print (a * 3 <= b) ? "met" : "MISSED" }')
		out '  targets: size <= smallest baseline: %s; diff CPU <= 1/3 bsdiff: %s' "$tgt_size" "$tgt_diff"
		if [ -n "${ap_t:-}" ]; then
			out '; apply CPU <= 1.5x tar -x: %s' "$(awk -v a="$ap_t" -v b="$tx_t" 'BEGIN { print (a <= 1.5 * b) ? "met" : "MISSED" }')"
		fi
		out '\n'
	elif [ -n "$CDIMG" ]; then
		out '  %s\n' "$cd_note"
		sed 's/^/    /' "$w/diff.log" | tail -n 20 >>"$REPORT"
	fi
	cp "$w/changed" "$WORK/$pair.changed-files"
	rm -rf --one-file-system "$w"
done

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
printf '\ndi3fs diff benchmark (%s)\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
printf 'machine: %s CPUs (nproc), %s, %s GiB RAM\n' "$(nproc)" "${cpu:-unknown CPU}" \
	"$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)"
printf 'cdimg: %s\n' "${CDIMG:-not built}"
printf 'baselines single-threaded (zstd -T1); wall and CPU (user + system) seconds: medians of %d runs (GNU time); x ref and targets use CPU; peak RSS: largest\n' "$RUNS"
cat "$REPORT"
exit $STATUS
