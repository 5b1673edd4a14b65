#!/bin/sh
# Writes a man page from a program's --help with help2man (run by the build,
# install/CMakeLists.txt). For cdimg, each command's own --help becomes a
# section of the page.
# Usage: mkman.sh PROGRAM SECTION VERSION DESCRIPTION OUT
set -eu
[ $# -eq 5 ] || { echo "usage: mkman.sh PROGRAM SECTION VERSION DESCRIPTION OUT" >&2; exit 2; }
prog=$1 section=$2 version=$3 desc=$4 out=$5
name=$(basename "$prog")
inc=$out.include
trap 'rm -f "$inc"' EXIT
: >"$inc"
if [ "$name" = cdimg ]; then
	cmds=$("$prog" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }')
	[ -n "$cmds" ] || { echo "mkman.sh: no commands in '$prog --help'" >&2; exit 1; }
	for c in $cmds; do
		printf '[COMMAND %s]\n' "$(echo "$c" | tr a-z A-Z)"
		# roff: a leading dot or quote would start a request
		"$prog" "$c" --help | sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/" -e 's/^$/.PP/' \
			-e '1s/^/.nf\n/' -e '$s/$/\n.fi/'
	done >"$inc"
fi
cat >>"$inc" <<SEE
[SEE ALSO]
cdimg(1), cdimg-load(1), di3fs-snapshotter(8), containerd(8), ctr(8);
/usr/share/doc/di3fs/README.md
SEE
help2man --no-info --no-discard-stderr --section="$section" --version-string="$version" \
	--name="$desc" --include="$inc" --output="$out.tmp" "$prog"
mv "$out.tmp" "$out"
