#!/bin/bash
# bench-bsdiff.sh - our bsdiff codec against Debian's bsdiff 4.3 on real
# executables of two releases (tests/assets/binpairs.sh fetches them).
#
#   bench/bench-bsdiff.sh [--cache DIR] [--pairs "A B ..."] [--before CDIMG]
#                         [--zstdref] [--fresh]
#
#   --cache DIR     pairs cache (default /var/cache/di3fs/bin-pairs)
#   --pairs LIST    pair names (default: all that binpairs.sh knows)
#   --before CDIMG  a second cdimg (e.g. a build of main) measured the same
#                   way, in its own columns
#   --zstdref       also cdimg's zstdref codec alone, and zstd -19
#                   --long --patch-from, with a window over the whole old file
#   --fresh         run Debian's bsdiff again (its patch and times are kept
#                   in the cache, next to the pair, and reused otherwise)
#
# Ours is `cdimg diff --codecs bsdiff` on two one-file trees: the size is
# the file's blob (cdimg show --json), the times are the whole diff. Every
# delta is applied and compared with the new file. Times: wall seconds and
# CPU (user + system) seconds, from GNU time; the machine may be shared, so
# CPU is the steadier figure. Exit status 1 when a delta does not apply
# byte-exact.
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
CACHE=/var/cache/di3fs/bin-pairs
PAIRS=
BEFORE=
ZSTDREF=0
FRESH=0
while [ $# -gt 0 ]; do
	case $1 in
	--cache) CACHE=$2 && shift 2 ;;
	--pairs) PAIRS=$2 && shift 2 ;;
	--before) BEFORE=$2 && shift 2 ;;
	--zstdref) ZSTDREF=1 && shift ;;
	--fresh) FRESH=1 && shift ;;
	*)
		sed -n '2,/^set -eu/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2
		exit 2
		;;
	esac
done
CDIMG=${CDIMG:-}
for c in ./build/ctr-tools/cdimg "$SRC/build/ctr-tools/cdimg"; do
	[ -z "$CDIMG" ] && [ -x "$c" ] && CDIMG=$(realpath "$c")
done
[ -n "$CDIMG" ] || {
	echo "bench-bsdiff: no cdimg (set CDIMG or build ./build)" >&2
	exit 2
}
command -v bsdiff >/dev/null || {
	echo "bench-bsdiff: Debian's bsdiff is missing (apt-get install bsdiff)" >&2
	exit 2
}
# shellcheck disable=SC2086
dirs=$(bash "$SRC/tests/assets/binpairs.sh" --cache "$CACHE" $PAIRS)
WORK=$(mktemp -d /tmp/bench-bsdiff.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
status=0

# timed OUT CMD...: runs CMD; OUT gets "wall cpu maxrss_kb".
timed() {
	local out=$1
	shift
	/usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$@"
	awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' "$WORK/time" >"$out"
}

# ours CDIMG CODECS PAIRDIR TAG: prints "bytes codec wall cpu rss" of the
# file's blob and the diff; fails when the delta does not apply byte-exact.
# (Run in $(...): failures are returned, status is set by the caller.)
ours() {
	local d=$WORK/$4
	rm -rf "$d" && mkdir -p "$d/a" "$d/b"
	ln "$3/old" "$d/a/f" 2>/dev/null || cp "$3/old" "$d/a/f"
	ln "$3/new" "$d/b/f" 2>/dev/null || cp "$3/new" "$d/b/f"
	timed "$d/t" "$1" diff -q -j 1 --codecs "$2" --no-dict --no-layers "$d/a" "$d/b" -o "$d/x.dimg" ||
		return 1
	"$1" apply -q "$d/a" "$d/x.dimg" -o "$d/out"
	if ! cmp -s "$d/out/f" "$3/new"; then
		echo "bench-bsdiff: $4: applied file differs from new" >&2
		return 1
	fi
	bytes=$("$1" show --json "$d/x.dimg" | python3 -c '
import json, sys
e = [e for e in json.load(sys.stdin)["stored_entries"] if e["path"] == "f"][0]
print(e.get("blob_size", 0), e.get("codec", e["payload"]))')
	echo "$bytes $(cat "$d/t")"
	rm -rf "$d"
}

# debian PAIRDIR: Debian's bsdiff, cached; prints "bytes wall cpu rss".
debian() {
	if [ "$FRESH" = 1 ] || [ ! -s "$1/debian.patch" ] || [ "$1/versions" -nt "$1/debian.patch" ]; then
		# (set -e does not reach into $(...): a killed bsdiff must not
		# leave its partial patch behind as the cached one)
		timed "$1/debian.time" bsdiff "$1/old" "$1/new" "$1/debian.patch.tmp" ||
			return 1
		mv "$1/debian.patch.tmp" "$1/debian.patch"
	fi
	bspatch "$1/old" "$WORK/deb.out" "$1/debian.patch"
	cmp -s "$WORK/deb.out" "$1/new" || {
		echo "bench-bsdiff: $1: Debian's patch does not apply" >&2
		return 1
	}
	rm -f "$WORK/deb.out"
	echo "$(stat -c %s "$1/debian.patch") $(cat "$1/debian.time")"
}

# patchfrom PAIRDIR: zstd -19 --long --patch-from with a window over old.
patchfrom() {
	local w
	w=$(python3 -c 'import os,sys; n=max(os.path.getsize(sys.argv[1]),1); print(min(max((n-1).bit_length(),10),31))' "$1/old")
	timed "$WORK/t" zstd -q -19 --long="$w" --patch-from="$1/old" "$1/new" -o "$WORK/pf.zst" -f
	echo "$(stat -c %s "$WORK/pf.zst") $(cat "$WORK/t")"
	rm -f "$WORK/pf.zst"
}

ratio() { python3 -c "import sys; print('%.3f' % (int(sys.argv[1]) / max(int(sys.argv[2]), 1)))" "$1" "$2"; }

hdr="| pair | old MB | new MB | Debian bsdiff B | ours B | ours/Debian |"
sep="|---|---:|---:|---:|---:|---:|"
[ -n "$BEFORE" ] && hdr="$hdr before B | before/Debian |" && sep="$sep---:|---:|"
[ "$ZSTDREF" = 1 ] && hdr="$hdr zstdref B | zstdref/Debian | patch-from B | patch-from/Debian |" &&
	sep="$sep---:|---:|---:|---:|"
hdr="$hdr Debian s (cpu) | ours s (cpu) | ours MB RSS |"
sep="$sep---:|---:|---:|"
[ -n "$BEFORE" ] && hdr="$hdr before s (cpu) |" && sep="$sep---:|"
echo "$hdr"
echo "$sep"
for dir in $dirs; do
	name=${dir##*/}
	deb=$(debian "$dir") || {
		echo "bench-bsdiff: $name: Debian's bsdiff failed" >&2
		status=1
		continue
	}
	read -r db dw dc _ <<<"$deb"
	o=$(ours "$CDIMG" bsdiff "$dir" ours) || {
		echo "bench-bsdiff: $name: cdimg diff failed" >&2
		status=1
		continue
	}
	read -r ob _ ow oc orss <<<"$o"
	mb() { python3 -c "import os,sys; print('%.1f' % (os.path.getsize(sys.argv[1]) / 1e6))" "$1"; }
	row="| $name | $(mb "$dir/old") | $(mb "$dir/new") | $db | $ob | $(ratio "$ob" "$db") |"
	if [ -n "$BEFORE" ]; then
		o=$(ours "$BEFORE" bsdiff "$dir" before) || status=1
		read -r bb _ bw bc _ <<<"$o"
		row="$row $bb | $(ratio "$bb" "$db") |"
	fi
	if [ "$ZSTDREF" = 1 ]; then
		o=$(ours "$CDIMG" zstdref "$dir" zstdref) || status=1
		read -r zb _ <<<"$o"
		read -r pb _ <<<"$(patchfrom "$dir")"
		row="$row $zb | $(ratio "$zb" "$db") | $pb | $(ratio "$pb" "$db") |"
	fi
	row="$row $dw ($dc) | $ow ($oc) | $((orss / 1024)) |"
	[ -n "$BEFORE" ] && row="$row $bw ($bc) |"
	echo "$row"
done
exit $status
