#!/bin/bash
# `cmake --install` gives working programs wherever the prefix is: into a
# temporary prefix (--prefix) and a staging root (DESTDIR), the installed
# cdimg, cdimg-load and di3fs-snapshotter run from there (libdimg is linked
# in: no library path to set; cdimg finds its containerd transport module
# in ../lib/di3fs), the unit names this prefix's binary and
# config, and a second install keeps a config the admin changed.
. "$(dirname "$0")/lib.sh"
BUILD=${DI3FS_BUILD:-$SRC/build}
[ -f "$BUILD/cmake_install.cmake" ] || fail "no build tree at $BUILD"
snapshotter=1
[ -x "$BUILD/snapshotter/di3fs-snapshotter" ] || snapshotter=0 # BUILD_SNAPSHOTTER=OFF

# check_prefix ROOT PREFIX: what an install to PREFIX, found under ROOT, holds
check_prefix() {
	local root=$1 prefix=$2 bin=$1$2/bin
	"$bin/cdimg" --help >"$WORK/help" 2>&1 || fail "$bin/cdimg --help: $(cat "$WORK/help")"
	grep -q '^usage: cdimg COMMAND' "$WORK/help" || fail "cdimg --help printed: $(cat "$WORK/help")"
	if readelf -d "$bin/cdimg" | grep -q 'libdimg'; then
		fail "cdimg still needs a shared libdimg"
	fi
	[ "$snapshotter" -eq 1 ] || return 0
	"$bin/cdimg-load" --help 2>&1 | grep -q '^usage: cdimg load' || fail "$bin/cdimg-load --help"
	"$bin/cdimg" load --help 2>&1 | grep -q '^usage: cdimg load' || fail "cdimg load does not run $bin/cdimg-load"
	# containerd: names load the transport module from ../lib/di3fs
	[ -f "$root$prefix/lib/di3fs/di3fs-xport-containerd.so" ] || fail "no containerd transport module"
	"$bin/cdimg" copy -a "$WORK/no.sock" containerd:app:v1 "oci:$WORK/none" 2>"$WORK/err" &&
		fail "a copy from no containerd succeeded"
	grep -q "no.sock" "$WORK/err" || fail "cdimg copy did not load its containerd module: $(cat "$WORK/err")"
	"$bin/di3fs-snapshotter" --help 2>&1 | grep -q '^Usage: di3fs-snapshotter' ||
		fail "$bin/di3fs-snapshotter --help"
	local unit=$root$prefix/lib/systemd/system/di3fs-snapshotter.service etc=$prefix/etc
	[ "$prefix" != /usr ] || etc=/etc
	[ -f "$unit" ] || fail "no unit at $unit"
	grep -qx "ExecStart=$prefix/bin/di3fs-snapshotter --config $etc/di3fs/snapshotter.conf \\\$DI3FS_SNAPSHOTTER_OPTS" "$unit" ||
		fail "ExecStart of $unit: $(grep ExecStart= "$unit")"
	cmp -s "$root$etc/di3fs/snapshotter.conf" "$SRC/install/snapshotter.conf" || fail "no default config in $root$etc/di3fs"
	"$bin/di3fs-snapshotter" --config "$root$etc/di3fs/snapshotter.conf" --threads 0 >/dev/null 2>"$WORK/err" &&
		fail "--threads 0 was accepted"
	grep -q 'threads' "$WORK/err" || fail "the installed config does not parse: $(cat "$WORK/err")"
	for f in share/di3fs/containerd-di3fs.toml share/di3fs/install-containerd-config.sh; do
		[ -f "$root$prefix/$f" ] || fail "no $prefix/$f"
	done
	"$root$prefix/share/di3fs/install-containerd-config.sh" --help | grep -q '^Usage:' ||
		fail "the installed drop-in installer does not run"
	if command -v help2man >/dev/null; then
		for m in man1/cdimg.1 man1/cdimg-load.1 man8/di3fs-snapshotter.8; do
			[ -s "$root$prefix/share/man/$m" ] || fail "no man page $m"
		done
		MANPATH=$root$prefix/share/man man -w di3fs-snapshotter >/dev/null || fail "man does not find the page"
		grep -q '^\.SH "COMMAND DIFF"' "$root$prefix/share/man/man1/cdimg.1" ||
			fail "cdimg(1) lacks the commands' help"
	fi
}

echo "== cmake --install --prefix $WORK/prefix"
cmake --install "$BUILD" --prefix "$WORK/prefix" >"$WORK/install.log" || fail "install: $(cat "$WORK/install.log")"
# nothing outside the prefix (an absolute destination would land elsewhere)
grep '^-- Installing: ' "$WORK/install.log" | grep -v "Installing: $WORK/prefix/" &&
	fail "files installed outside the prefix"
check_prefix "" "$WORK/prefix"
# moved elsewhere: nothing in the programs names the prefix
mv "$WORK/prefix" "$WORK/moved"
"$WORK/moved/bin/cdimg" --help >/dev/null || fail "cdimg does not run once the prefix moved"
if [ "$snapshotter" -eq 1 ]; then
	"$WORK/moved/bin/cdimg" copy -a "$WORK/no.sock" containerd:app:v1 "oci:$WORK/none" 2>"$WORK/err" &&
		fail "a copy from no containerd succeeded"
	grep -q "no.sock" "$WORK/err" || fail "the moved cdimg lost its containerd module: $(cat "$WORK/err")"
fi

echo "== DESTDIR=$WORK/stage cmake --install --prefix /usr"
DESTDIR=$WORK/stage cmake --install "$BUILD" --prefix /usr >"$WORK/install.log" ||
	fail "install: $(cat "$WORK/install.log")"
check_prefix "$WORK/stage" /usr
if [ "$snapshotter" -eq 1 ]; then
	echo "threads = 2" >>"$WORK/stage/etc/di3fs/snapshotter.conf"
	cp "$WORK/stage/etc/di3fs/snapshotter.conf" "$WORK/changed.conf"
	DESTDIR=$WORK/stage cmake --install "$BUILD" --prefix /usr >"$WORK/install.log"
	cmp -s "$WORK/stage/etc/di3fs/snapshotter.conf" "$WORK/changed.conf" ||
		fail "a second install replaced the changed config"
	grep -q "Kept: $WORK/stage/etc/di3fs/snapshotter.conf" "$WORK/install.log" || fail "no word of the kept config"
fi
echo PASS
