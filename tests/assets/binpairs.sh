#!/bin/bash
# binpairs.sh - fetch pairs of real executables of two releases (old, new)
# for the bsdiff benchmark and test, cached outside the repository.
#
#   tests/assets/binpairs.sh [--cache DIR] [PAIR...]
#
#   --cache DIR  where pairs are kept (default /var/cache/di3fs/bin-pairs);
#                pair NAME is DIR/NAME/old and DIR/NAME/new
#   PAIR         one of the names below (default: all)
#
# npm pairs are pinned versions (the registry never changes a published
# version); apt pairs are the oldest and newest version apt lists, so they
# move as the archive moves. Every file is written under a temporary name
# and renamed when complete, so an interrupted run is simply redone. Prints
# each pair's directory.
set -eu

PROG=${0##*/}
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

# name: source, package, file inside the package, old version, new version
# (apt pairs: the versions come from apt-cache madison)
pair_spec() {
	case $1 in
	esbuild-0.25.11-0.25.12) echo "npm @esbuild/linux-x64 package/bin/esbuild 0.25.11 0.25.12" ;;
	esbuild-0.27.6-0.27.7) echo "npm @esbuild/linux-x64 package/bin/esbuild 0.27.6 0.27.7" ;;
	esbuild-0.25.12-0.27.7) echo "npm @esbuild/linux-x64 package/bin/esbuild 0.25.12 0.27.7" ;;
	biome-2.6.8-2.6.9) echo "npm @biomejs/cli-linux-x64 package/biome 2.6.8 2.6.9" ;;
	containerd) echo "apt containerd usr/bin/containerd" ;;
	ctr) echo "apt containerd usr/bin/ctr" ;;
	libxul) echo "apt firefox-esr usr/lib/firefox-esr/libxul.so" ;;
	*) return 1 ;;
	esac
}
ALL="esbuild-0.25.11-0.25.12 esbuild-0.27.6-0.27.7 esbuild-0.25.12-0.27.7 ctr containerd biome-2.6.8-2.6.9 libxul"

CACHE=/var/cache/di3fs/bin-pairs
PAIRS=()
while [ $# -gt 0 ]; do
	case $1 in
	--cache)
		CACHE=${2:?--cache needs a directory}
		shift 2
		;;
	-h | --help)
		sed -n '2,/^set -eu/p' "$0" | sed -n 's/^# \{0,1\}//p'
		echo "pairs: $ALL"
		exit 0
		;;
	-*) die "unknown option $1" ;;
	*)
		pair_spec "$1" >/dev/null || die "unknown pair $1 (known: $ALL)"
		PAIRS+=("$1")
		shift
		;;
	esac
done
[ ${#PAIRS[@]} -gt 0 ] || read -r -a PAIRS <<<"$ALL"
mkdir -p "$CACHE/dl"

# fetch_npm PKG VERSION: the package's tarball, cached; prints its path.
fetch_npm() {
	local name=${1#@}
	local tgz="$CACHE/dl/${name//\//-}-$2.tgz" tmp
	if [ ! -s "$tgz" ]; then
		tmp=$(mktemp -d "$CACHE/dl/.npm.XXXXXX")
		(cd "$tmp" && npm pack --silent "$1@$2" >/dev/null) || die "npm pack $1@$2 failed"
		mv "$tmp"/*.tgz "$tgz.tmp" && mv "$tgz.tmp" "$tgz"
		rm -rf "$tmp"
	fi
	echo "$tgz"
}

# fetch_apt PKG VERSION: the .deb, cached; prints its path.
fetch_apt() {
	local deb="$CACHE/dl/$1_$2.deb" tmp
	if [ ! -s "$deb" ]; then
		tmp=$(mktemp -d "$CACHE/dl/.apt.XXXXXX")
		(cd "$tmp" && apt-get download -q "$1=$2" >/dev/null 2>&1) ||
			die "apt-get download $1=$2 failed"
		mv "$tmp"/*.deb "$deb.tmp" && mv "$deb.tmp" "$deb"
		rm -rf "$tmp"
	fi
	echo "$deb"
}

# extract KIND ARCHIVE MEMBER OUT: one file of a package, written via a
# temporary name.
extract() {
	local tmp
	tmp=$(mktemp -d "$CACHE/dl/.x.XXXXXX")
	if [ "$1" = npm ]; then
		tar -xzf "$2" -C "$tmp" "$3"
	else
		dpkg-deb -x "$2" "$tmp"
	fi
	[ -f "$tmp/$3" ] || die "$3 not in $2"
	mv "$tmp/$3" "$4.tmp" && mv "$4.tmp" "$4"
	rm -rf "$tmp"
}

# apt_versions PKG: the oldest and the newest version apt lists (dpkg's
# order).
apt_versions() {
	local v lo= hi=
	v=$(apt-cache madison "$1" | awk -F'|' '{gsub(/[ \t]/, "", $2); print $2}' | sort -u)
	[ -n "$v" ] || die "apt lists no $1 (run apt-get update)"
	for x in $v; do
		if [ -z "$lo" ] || dpkg --compare-versions "$x" lt "$lo"; then lo=$x; fi
		if [ -z "$hi" ] || dpkg --compare-versions "$x" gt "$hi"; then hi=$x; fi
	done
	echo "$lo $hi"
}

for name in "${PAIRS[@]}"; do
	read -r kind pkg member v1 v2 <<<"$(pair_spec "$name")"
	[ "$kind" = apt ] && read -r v1 v2 <<<"$(apt_versions "$pkg")"
	[ "$v1" != "$v2" ] || die "$pkg: only one version ($v1) is listed"
	dir=$CACHE/$name
	mkdir -p "$dir"
	# An apt pair whose versions moved is fetched again.
	if [ "$(cat "$dir/versions" 2>/dev/null)" != "$v1 $v2" ]; then
		rm -f "$dir/old" "$dir/new" "$dir/versions"
	fi
	for side in old new; do
		[ -s "$dir/$side" ] && continue
		v=$v1
		[ $side = new ] && v=$v2
		if [ "$kind" = npm ]; then
			extract npm "$(fetch_npm "$pkg" "$v")" "$member" "$dir/$side"
		else
			extract apt "$(fetch_apt "$pkg" "$v")" "$member" "$dir/$side"
		fi
	done
	echo "$v1 $v2" >"$dir/versions.tmp" && mv "$dir/versions.tmp" "$dir/versions"
	echo "$dir"
done
