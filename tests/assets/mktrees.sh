#!/bin/bash
# mktrees.sh - build pairs and chains of real Debian image trees (package
# versions over one shared minbase bookworm base) for di3fs tests and
# benchmarks.
#
#   tests/assets/mktrees.sh [--cache DIR] [--out DIR] [SET...]
#
#   --cache DIR   cache for the base tarball and the .debs
#                 (default /var/cache/di3fs)
#   --out DIR     where SET-v1, SET-v2, ... are made (default DIR/trees)
#   SET           a pair: nginx, redis (default: both);
#                 a chain: openssl (openssl + libssl3), libc6 (libc6 +
#                 libc-bin)
#
# Pair SET-v1 is the base with the OLDEST archive version of the pair's
# packages unpacked over it, SET-v2 the same with the NEWEST one. A chain
# has one tree per version apt lists for its first package, in dpkg order:
# SET-v1 the oldest, SET-vN the newest (two versions make SET-v1/SET-v2
# like a pair). Every step writes under a temporary name and renames when
# complete, so an interrupted run is simply redone. Must run as root.
set -eu

PROG=${0##*/}
MIRROR=http://deb.debian.org/debian
SUITE=bookworm
# Bump when the way trees are made changes, so old trees get rebuilt.
RECIPE=2

die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }

usage() {
	cat >&2 <<EOF
usage: $PROG [--cache DIR] [--out DIR] [SET...]
  --cache DIR  cache directory (default /var/cache/di3fs)
  --out DIR    output directory for SET-v1, SET-v2, ... (default CACHE/trees)
  SET          pairs (oldest, newest): nginx redis (default: nginx redis)
               chains (every version): openssl libc6
EOF
	exit 2
}

CACHE=/var/cache/di3fs
OUT=
PAIRS=()
while [ $# -gt 0 ]; do
	case $1 in
	--cache) [ $# -ge 2 ] || usage; CACHE=$2; shift 2 ;;
	--cache=*) CACHE=${1#*=}; shift ;;
	--out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
	--out=*) OUT=${1#*=}; shift ;;
	-h|--help) usage ;;
	-*) say "unknown option: $1"; usage ;;
	*) PAIRS+=("$1"); shift ;;
	esac
done
[ ${#PAIRS[@]} -gt 0 ] || PAIRS=(nginx redis)
[ -n "$CACHE" ] || die "--cache needs a directory"
OUT=${OUT:-$CACHE/trees}

# The packages of a set; the first one decides the versions.
pair_pkgs() {
	case $1 in
	nginx) echo "nginx nginx-common" ;;
	redis) echo "redis-server redis-tools" ;;
	openssl) echo "openssl libssl3" ;;
	libc6) echo "libc6 libc-bin" ;;
	*) return 1 ;;
	esac
}
# pair: oldest and newest version; chain: every version.
set_kind() {
	case $1 in
	openssl | libc6) echo chain ;;
	*) echo pair ;;
	esac
}
for p in "${PAIRS[@]}"; do
	pair_pkgs "$p" >/dev/null || die "unknown set '$p' (known: nginx redis openssl libc6)"
done

[ "$(id -u)" = 0 ] || die "must run as root: the base tree holds device nodes and files of other owners (try: sudo $0)"
for c in debootstrap tar dpkg-deb dpkg apt-get apt-cache mktemp; do
	command -v "$c" >/dev/null 2>&1 || die "'$c' not found (apt-get install debootstrap)"
done

mkdir -p "$CACHE" "$CACHE/debs" "$OUT" || die "cannot create $CACHE or $OUT"
CACHE=$(cd "$CACHE" && pwd -P)
OUT=$(cd "$OUT" && pwd -P)

# ---------------------------------------------------------------- cleanup
# Temporary directories to remove on exit. Before removing one, unmount
# anything debootstrap left mounted inside it (proc, sys), and never cross
# into another file system while removing.
TMPS=()
umount_under() {
	local dir=$1 mp
	# /proc/self/mounts escapes blanks as \040; our paths have none.
	awk -v d="$dir/" 'index($2 "/", d) == 1 { print $2 }' /proc/self/mounts |
		sort -r | while read -r mp; do
		umount "$mp" 2>/dev/null || umount -l "$mp" ||
			say "warning: could not unmount $mp"
	done
}
remove_tree() {
	local dir=$1
	[ -e "$dir" ] || return 0
	umount_under "$dir"
	rm -rf --one-file-system -- "$dir"
}
cleanup() {
	local t
	for t in ${TMPS[@]+"${TMPS[@]}"}; do
		remove_tree "$t" || say "warning: could not remove $t"
	done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Leftovers of an earlier interrupted run.
for t in "$CACHE"/.base.* "$CACHE"/debs/.dl.* "$OUT"/.tmp.*; do
	if [ -e "$t" ]; then remove_tree "$t"; fi
done

# ---------------------------------------------------------------- base
BASE_TAR=$CACHE/base-$SUITE-minbase.tar
TAR_META=(--xattrs --xattrs-include='*' --acls --numeric-owner)

if [ -f "$BASE_TAR" ]; then
	say "base: reusing $BASE_TAR"
else
	say "base: debootstrap --variant=minbase $SUITE (takes a few minutes)"
	tmp=$(mktemp -d "$CACHE/.base.XXXXXX")
	TMPS+=("$tmp")
	mkdir -m 755 "$tmp/root"
	if ! debootstrap --variant=minbase "$SUITE" "$tmp/root" "$MIRROR" \
		>"$tmp/debootstrap.log" 2>&1; then
		tail -n 30 "$tmp/debootstrap.log" >&2
		die "debootstrap failed (log above); is $MIRROR reachable?"
	fi
	umount_under "$tmp/root"
	if awk -v d="$tmp/root/" 'index($2 "/", d) == 1 { f = 1 } END { exit !f }' /proc/self/mounts; then
		die "something is still mounted under $tmp/root after debootstrap"
	fi
	# posix format keeps nanosecond mtimes and xattrs; atime and ctime
	# are left out so the tarball depends only on the tree.
	tar -C "$tmp/root" "${TAR_META[@]}" --format=posix \
		--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
		-cf "$tmp/base.tar" . ||
		die "tar of the base tree failed"
	mv -f "$tmp/base.tar" "$BASE_TAR"
	remove_tree "$tmp"
	say "base: wrote $BASE_TAR"
fi
# Identity of the base, for the tree stamps.
BASE_ID=$(stat -c '%s %Y' "$BASE_TAR")

# ---------------------------------------------------------------- versions
APT_UPDATED=0
# All versions of a package known to apt, one per line, unsorted.
madison() {
	apt-cache madison "$1" 2>/dev/null |
		awk -F'|' '{ gsub(/[ \t]/, "", $2); if ($2 != "") print $2 }' | sort -u
}
versions_of() {
	local v
	v=$(madison "$1")
	if [ -z "$v" ] && [ $APT_UPDATED = 0 ]; then
		say "apt-cache madison $1 lists nothing; running apt-get update"
		apt-get -q update >/dev/null || die "apt-get update failed"
		APT_UPDATED=1
		v=$(madison "$1")
	fi
	[ -n "$v" ] || die "apt knows no version of '$1' (check /etc/apt/sources.list.d/)"
	printf '%s\n' "$v"
}
# oldest/newest of the versions on stdin, by dpkg's ordering
pick_version() {
	local which=$1 best='' v
	while read -r v; do
		if [ -z "$best" ]; then
			best=$v
		elif [ "$which" = oldest ] && dpkg --compare-versions "$v" lt "$best"; then
			best=$v
		elif [ "$which" = newest ] && dpkg --compare-versions "$v" gt "$best"; then
			best=$v
		fi
	done
	printf '%s\n' "$best"
}
# the versions on stdin in dpkg order, oldest first (insertion sort: the
# lists are a handful of versions long)
sort_versions() {
	local sorted=() v i j
	while read -r v; do
		i=${#sorted[@]}
		while [ "$i" -gt 0 ] && dpkg --compare-versions "$v" lt "${sorted[$((i - 1))]}"; do
			i=$((i - 1))
		done
		j=${#sorted[@]}
		while [ "$j" -gt "$i" ]; do
			sorted[$j]=${sorted[$((j - 1))]}
			j=$((j - 1))
		done
		sorted[$i]=$v
	done
	[ ${#sorted[@]} -eq 0 ] || printf '%s\n' "${sorted[@]}"
}

# ---------------------------------------------------------------- debs
# Set DEB to the cached .deb of PKG=VERSION, downloading it if needed.
# apt names files PKG_VERSION_ARCH.deb with ':' written as %3a.
fetch_deb() {
	local pkg=$1 ver=$2 enc f dl
	enc=${ver//:/%3a}
	for f in "$CACHE/debs/${pkg}_${enc}"_*.deb; do
		if [ -f "$f" ]; then
			DEB=$f
			return 0
		fi
	done
	dl=$(mktemp -d "$CACHE/debs/.dl.XXXXXX")
	TMPS+=("$dl")
	say "downloading $pkg=$ver"
	# The sandbox user (_apt) cannot write into a root-only temp dir.
	if ! (cd "$dl" && apt-get -q -o APT::Sandbox::User=root download "$pkg=$ver") >"$dl/log" 2>&1; then
		cat "$dl/log" >&2
		die "apt-get download $pkg=$ver failed"
	fi
	f=
	for f in "$dl/${pkg}_${enc}"_*.deb; do :; done
	[ -f "$f" ] || die "apt-get download $pkg=$ver produced no ${pkg}_${enc}_*.deb"
	dpkg-deb --info "$f" >/dev/null 2>&1 || die "downloaded $f is not a valid .deb"
	mv -f "$f" "$CACHE/debs/"
	remove_tree "$dl"
	DEB=$CACHE/debs/${f##*/}
}

# ---------------------------------------------------------------- trees
# make_tree NAME STAMP DEB...: base + the debs' data, as $OUT/NAME.
make_tree() {
	local name=$1 stamp=$2 dest=$OUT/$1 tmp deb
	shift 2
	if [ -d "$dest" ] && [ -f "$OUT/.$name.stamp" ] &&
		[ "$(cat "$OUT/.$name.stamp")" = "$stamp" ]; then
		say "$name: up to date"
		return 0
	fi
	say "$name: building"
	tmp=$(mktemp -d "$OUT/.tmp.$name.XXXXXX")
	TMPS+=("$tmp")
	: >"$tmp.start"
	TMPS+=("$tmp.start")
	tar -C "$tmp" "${TAR_META[@]}" --same-owner -xpf "$BASE_TAR" ||
		die "extracting $BASE_TAR failed"
	for deb in "$@"; do
		# Like dpkg-deb -x, but keeping owners and modes, and keeping the
		# merged-/usr symlinks (/lib -> usr/lib ...) of the base.
		dpkg-deb --fsys-tarfile "$deb" |
			tar -C "$tmp" -x -p --same-owner --numeric-owner \
				--keep-directory-symlink --warning=no-timestamp -f - ||
			die "unpacking $deb failed"
	done
	# Directories that tar made without an archive entry (a deb listing
	# ./usr/share/nginx/html but not ./usr/share/nginx) carry the time of
	# this run; give them the tree root's time so rebuilds are identical.
	find "$tmp" -mindepth 1 -type d -newer "$tmp.start" -exec touch -h -r "$tmp" {} +
	rm -f "$tmp.start"
	# Replace the old tree: stamp first, so a crash in between rebuilds.
	rm -f "$OUT/.$name.stamp"
	remove_tree "$dest"
	mv "$tmp" "$dest"
	printf '%s\n' "$stamp" >"$OUT/.$name.stamp.tmp"
	mv -f "$OUT/.$name.stamp.tmp" "$OUT/.$name.stamp"
}

for pair in "${PAIRS[@]}"; do
	read -r -a pkgs <<<"$(pair_pkgs "$pair")"
	main=${pkgs[0]}
	all=$(versions_of "$main")
	if [ "$(set_kind "$pair")" = chain ]; then
		mapfile -t vers < <(printf '%s\n' "$all" | sort_versions)
	else
		vers=("$(printf '%s\n' "$all" | pick_version oldest)"
			"$(printf '%s\n' "$all" | pick_version newest)")
		[ "${vers[0]}" != "${vers[1]}" ] || vers=("${vers[0]}")
	fi
	if [ ${#vers[@]} -lt 2 ]; then
		die "$pair: apt lists only one version of $main (${vers[0]}); a pair needs two (is the ${SUITE}-security or ${SUITE}-updates suite in the apt sources?)"
	fi
	for pkg in "${pkgs[@]:1}"; do
		others=$(versions_of "$pkg")
		for v in "${vers[@]}"; do
			printf '%s\n' "$others" | grep -qxF -- "$v" ||
				die "$pair: $pkg has no version $v (it has: $(printf '%s\n' "$others" | tr '\n' ' '))"
		done
	done
	summary=
	for i in "${!vers[@]}"; do
		side=v$((i + 1))
		ver=${vers[$i]}
		debs=()
		for pkg in "${pkgs[@]}"; do
			fetch_deb "$pkg" "$ver"
			debs+=("$DEB")
		done
		stamp="recipe=$RECIPE base=$BASE_ID"
		for pkg in "${pkgs[@]}"; do stamp="$stamp $pkg=$ver"; done
		make_tree "$pair-$side" "$stamp" "${debs[@]}"
		summary="$summary${summary:+, }$side = ${pkgs[*]} $ver"
	done
	printf '%s: %s\n' "$pair" "$summary"
	for i in "${!vers[@]}"; do
		printf '  %s\n' "$OUT/$pair-v$((i + 1))"
	done
done
