#!/bin/bash
# The Debian package: builds it with dpkg-buildpackage from a copy of the
# source tree (compiler cache under /var/cache/di3fs/deb; the build cleans
# up after itself), checks its files, conffile, lintian, the unit with
# systemd-analyze verify, the extracted programs (dpkg -x), and runs its
# real maintainer scripts against a private containerd config (DPKG_ROOT
# for debhelper's systemd steps): install, install again (no change),
# remove, purge (containerd's config back byte for byte), and the cases
# where the admin changed it, it is broken, or DPKG_ROOT alone is set.
. "$(dirname "$0")/lib.sh"

skip() {
	[ -z "${CI:-}" ] || fail "(CI) $*"
	echo "SKIP: $*"
	exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root (maintainer scripts, the snapshotter)"
for tool in dpkg-buildpackage dh fakeroot containerd systemd-analyze lintian; do
	command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed (install/deps.sh)"
done
step() { echo "== $*"; }

VERSION=$(sed -n 's/^project(di3fs VERSION \([0-9.]*\) .*/\1/p' "$SRC/CMakeLists.txt")
expect_eq() { [ "$2" = "$3" ] || fail "$1: expected [$2], got [$3]"; }
expect_eq "debian/changelog version" "$VERSION" "$(dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version)"
ARCH=$(dpkg --print-architecture)
CACHE=${DI3FS_DEB_CACHE:-/var/cache/di3fs/deb}
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock 9

step "copy the source tree (the files git knows) to $CACHE/src/di3fs-$VERSION"
TREE=$CACHE/src/di3fs-$VERSION
rm -rf "$CACHE/src"
mkdir -p "$TREE"
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
	git -C "$SRC" ls-files -z --cached --others --exclude-standard |
		(cd "$SRC" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
		tar -C "$SRC" --null -T - -cf - | tar -C "$TREE" -xf -
else
	tar -C "$SRC" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$TREE" -xf -
fi
(cd "$TREE" && find . | sort) >"$WORK/tree-before"

step "dpkg-buildpackage -b -us -uc -tc"
export CCACHE_DIR=$CACHE/ccache
command -v ccache >/dev/null 2>&1 && export PATH=/usr/lib/ccache:$PATH
t0=$(date +%s)
(cd "$TREE" && DEB_BUILD_OPTIONS=parallel=$(nproc) dpkg-buildpackage -b -us -uc -tc) \
	>"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log"; fail "dpkg-buildpackage failed"; }
build_s=$(($(date +%s) - t0))
echo "   built in $build_s s"
DEB=$CACHE/src/di3fs_${VERSION}_$ARCH.deb
[ -f "$DEB" ] || fail "no $DEB: $(ls "$CACHE/src")"
(cd "$TREE" && find . | sort) >"$WORK/tree-after"
diff "$WORK/tree-before" "$WORK/tree-after" >"$WORK/tree.diff" || fail "the build left files in the tree: $(cat "$WORK/tree.diff")"

step "dpkg -c: programs, unit, drop-in and installer, conffile, man pages"
dpkg -c "$DEB" | awk '{ print $6 }' >"$WORK/files"
for f in ./usr/bin/cdimg ./usr/bin/cdimg-load ./usr/bin/di3fs-snapshotter \
	./lib/systemd/system/di3fs-snapshotter.service ./usr/share/di3fs/containerd-di3fs.toml \
	./usr/share/di3fs/install-containerd-config.sh ./etc/di3fs/snapshotter.conf \
	./usr/share/man/man1/cdimg.1.gz ./usr/share/man/man1/cdimg-load.1.gz \
	./usr/share/man/man8/di3fs-snapshotter.8.gz ./usr/share/doc/di3fs/copyright \
	./usr/lib/di3fs/di3fs-xport-containerd.so; do
	grep -qx -- "$f" "$WORK/files" || fail "$f is not in the package"
done
# (the containerd transport is a module cdimg loads, not a library)
if grep -v '^\./usr/lib/di3fs/di3fs-xport-containerd\.so$' "$WORK/files" |
	grep -E '\.so(\.|$)|/include/|\.a$'; then
	fail "the package ships a library or headers"
fi
dpkg-deb -e "$DEB" "$WORK/ctl"
expect_eq "conffiles" "/etc/di3fs/snapshotter.conf" "$(cat "$WORK/ctl/conffiles")"
# an upgrade restarts the daemon after unpacking (the holder keeps the FUSE
# connection meanwhile), never stops it before; removing it ends the holder
grep -q '_dh_action=restart' "$WORK/ctl/postinst" || fail "postinst does not restart the unit on upgrade"
grep -q 'deb-systemd-invoke stop' "$WORK/ctl/prerm" || fail "prerm does not stop the unit on remove"
grep -q '"$1" = remove \] && \[ -d /run/systemd/system \]' "$WORK/ctl/prerm" ||
	fail "prerm stops the unit for something else than remove: $(grep -B1 'deb-systemd-invoke stop' "$WORK/ctl/prerm")"
grep -q -- '--unmount' "$WORK/ctl/prerm" || fail "prerm does not end the fd holder on remove"
dpkg-deb -f "$DEB" Depends | grep -q 'libfuse3-3' || fail "Depends lacks libfuse3: $(dpkg-deb -f "$DEB" Depends)"

step "lintian"
lintian --fail-on error,warning --tag-display-limit 0 "$DEB" >"$WORK/lintian" 2>&1 ||
	fail "lintian: $(grep -v 'root privileges' "$WORK/lintian")"

step "dpkg -x: the programs run from the extracted root"
ROOTFS=$WORK/root
dpkg -x "$DEB" "$ROOTFS"
env -u LD_LIBRARY_PATH "$ROOTFS/usr/bin/cdimg" --help | grep -q '^usage: cdimg COMMAND' || fail "cdimg --help"
"$ROOTFS/usr/bin/cdimg" load --help 2>&1 | grep -q '^usage: cdimg load' || fail "cdimg load --help (cdimg-load)"
"$ROOTFS/usr/bin/cdimg-load" --help 2>&1 | grep -q '^usage: cdimg load' || fail "cdimg-load --help"
"$ROOTFS/usr/bin/cdimg" copy -a "$WORK/no.sock" containerd:app:v1 "oci:$WORK/none" 2>"$WORK/err" &&
	fail "a copy from no containerd succeeded"
grep -q "no.sock" "$WORK/err" || fail "cdimg did not load its containerd module: $(cat "$WORK/err")"
"$ROOTFS/usr/bin/di3fs-snapshotter" --help | grep -q '^Usage: di3fs-snapshotter' || fail "di3fs-snapshotter --help"
MANPATH=$ROOTFS/usr/share/man man -w cdimg >/dev/null || fail "man cdimg not found"

step "the packaged daemon starts with the packaged config; SIGTERM leaves the fd holder, --unmount ends it"
SNAP=("$ROOTFS/usr/bin/di3fs-snapshotter" --config "$ROOTFS/etc/di3fs/snapshotter.conf"
	--root "$WORK/state" --address "$WORK/run/snap.sock")
# whatever fails below, neither the daemon nor its fd holder outlives the
# test (they would keep ctest's output pipe and a FUSE mount in $WORK)
trap '[ -z "${pid:-}" ] || { kill "$pid"; wait "$pid"; } 2>/dev/null
	"${SNAP[@]}" --unmount >/dev/null 2>&1; rm -rf "$WORK"' EXIT
"${SNAP[@]}" 2>"$WORK/daemon.log" &
pid=$!
for _ in $(seq 100); do
	grep -q 'serving on' "$WORK/daemon.log" && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
grep -q "serving on unix:$WORK/run/snap.sock" "$WORK/daemon.log" || {
	kill "$pid" 2>/dev/null
	fail "the packaged daemon did not serve: $(cat "$WORK/daemon.log")"
}
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" -eq 0 ] || fail "the packaged daemon exited $rc on SIGTERM"
fuse_mounted() { awk -v m="$WORK/state/fuse" '$2 == m' /proc/mounts | grep -q .; }
if [ -c /dev/fuse ]; then
	# restart survival, which the unit's KillMode=process and the restart on
	# upgrade rely on: the holder keeps the connection for the next daemon
	holder=$(cat "$WORK/state/fuse.sock.pid" 2>/dev/null) || fail "no fd holder pid after SIGTERM"
	kill -0 "$holder" 2>/dev/null || fail "the fd holder $holder did not outlive the daemon"
	fuse_mounted || fail "SIGTERM took the FUSE mount down"
fi
# what prerm does on remove
"${SNAP[@]}" --unmount 2>>"$WORK/daemon.log" || fail "--unmount failed: $(tail -n 5 "$WORK/daemon.log")"
if fuse_mounted; then fail "--unmount left $WORK/state/fuse mounted"; fi
if [ -n "${holder:-}" ]; then
	for _ in $(seq 50); do
		kill -0 "$holder" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$holder" 2>/dev/null; then fail "--unmount left the fd holder $holder running"; fi
fi

step "the unit: paths, notify, root-only dirs, no mount namespace; systemd-analyze verify"
UNIT=$ROOTFS/lib/systemd/system/di3fs-snapshotter.service
grep -qx 'ExecStart=/usr/bin/di3fs-snapshotter --config /etc/di3fs/snapshotter.conf $DI3FS_SNAPSHOTTER_OPTS' "$UNIT" ||
	fail "ExecStart: $(grep ExecStart "$UNIT")"
# KillMode=process: a stop or restart spares the fd holder (restart survival)
for l in Type=notify RuntimeDirectoryMode=0700 StateDirectoryMode=0700 KillMode=process; do
	grep -qx -- "$l" "$UNIT" || fail "the unit lacks $l"
done
# each of these gives the service a mount namespace of its own: its FUSE
# mounts would no longer reach containerd
if grep -E '^(PrivateTmp|PrivateDevices|PrivateMounts|ProtectSystem|ProtectHome|ProtectKernelTunables|ProtectKernelModules|ProtectKernelLogs|ProtectControlGroups|ProtectHostname|ProtectClock|ProtectProc|ProcSubset|ReadOnlyPaths|ReadWritePaths|InaccessiblePaths|ExecPaths|NoExecPaths|TemporaryFileSystem|BindPaths|BindReadOnlyPaths|MountFlags|RootDirectory|RootImage|DevicePolicy|DeviceAllow)=' "$UNIT"; then
	fail "the unit sets an option that hides its mounts from containerd or /dev/fuse from it"
fi
# verify checks ExecStart's binary and the man: page: point both into the root
sed "s|/usr/bin/|$ROOTFS/usr/bin/|g" "$UNIT" >"$WORK/di3fs-snapshotter.service"
MANPATH=$ROOTFS/usr/share/man systemd-analyze verify "$WORK/di3fs-snapshotter.service" >"$WORK/verify" 2>&1 ||
	fail "systemd-analyze verify: $(cat "$WORK/verify")"
[ ! -s "$WORK/verify" ] || fail "systemd-analyze verify warns: $(cat "$WORK/verify")"
# control: verify does report a bad key here (it runs without systemd as PID 1)
sed 's/^Type=notify/Type=notify\nNoSuchKey=1/' "$WORK/di3fs-snapshotter.service" >"$WORK/bad.service"
MANPATH=$ROOTFS/usr/share/man systemd-analyze verify "$WORK/bad.service" 2>&1 | grep -q NoSuchKey ||
	fail "systemd-analyze verify did not notice a bad key: it checks nothing here"

step "maintainer scripts against a private containerd config"
CTD=$WORK/ctd
mkdir -p "$CTD"
if [ -f /etc/containerd/config.toml ]; then
	cp /etc/containerd/config.toml "$CTD/config.toml"
else
	printf 'version = 2\n\n[plugins]\n  [plugins."io.containerd.internal.v1.opt"]\n    path = "/var/lib/containerd/opt"\n' >"$CTD/config.toml"
fi
cp "$CTD/config.toml" "$WORK/original.toml"
host_sums() { cat /etc/containerd/config.toml /etc/containerd/conf.d/di3fs.toml 2>/dev/null | cksum; }
host_before=$(host_sums)
wants=etc/systemd/system/multi-user.target.wants/di3fs-snapshotter.service
host_enabled=0
[ -e "/$wants" ] && host_enabled=1
# maint SCRIPT ARGS...: one maintainer script, as dpkg runs it, on the private config
maint() {
	local script=$1
	shift
	DPKG_ROOT=$ROOTFS DI3FS_CONTAINERD_CONFIG=$CTD/config.toml DI3FS_CONTAINERD_DROPIN_DIR=$CTD/conf.d \
		DPKG_MAINTSCRIPT_PACKAGE=di3fs DPKG_MAINTSCRIPT_NAME=$script sh "$WORK/ctl/$script" "$@" \
		>>"$WORK/maint.log" 2>&1 || fail "$script $* exited $?: $(tail -n 20 "$WORK/maint.log")"
}
loads_di3fs() { containerd --config "$CTD/config.toml" config dump 2>&1 | grep -q '^ *\[proxy_plugins\.di3fs\]'; }

maint postinst configure
[ -f "$CTD/conf.d/di3fs.toml" ] || fail "postinst wrote no drop-in"
grep -q 'address = "/run/di3fs/snapshotter.sock"' "$CTD/conf.d/di3fs.toml" || fail "drop-in address"
loads_di3fs || fail "containerd's config does not load the drop-in after postinst"
[ -L "$ROOTFS/$wants" ] || fail "the unit was not enabled (deb-systemd-helper under DPKG_ROOT)"
cp "$CTD/config.toml" "$WORK/installed.toml"
cp "$CTD/conf.d/di3fs.toml" "$WORK/installed-dropin.toml"

maint postinst configure "$VERSION"
cmp -s "$CTD/config.toml" "$WORK/installed.toml" || fail "a second postinst changed config.toml"
cmp -s "$CTD/conf.d/di3fs.toml" "$WORK/installed-dropin.toml" || fail "a second postinst changed the drop-in"
expect_eq "imports lines" 1 "$(grep -c '^imports' "$CTD/config.toml")"

maint prerm remove
maint postrm remove
[ -f "$CTD/conf.d/di3fs.toml" ] || fail "remove (not purge) took the drop-in away"
maint postrm purge
[ ! -e "$CTD/conf.d" ] || fail "purge left $CTD/conf.d: $(ls -A "$CTD/conf.d")"
cmp -s "$CTD/config.toml" "$WORK/original.toml" || fail "purge did not give containerd's config back: $(diff "$WORK/original.toml" "$CTD/config.toml")"
[ ! -e "$CTD/config.toml.di3fs-backup" ] || fail "purge left the backup"
[ ! -e "$ROOTFS/$wants" ] || fail "purge left the unit enabled"
if loads_di3fs; then fail "di3fs still in containerd's config after purge"; fi

step "purge after the admin changed containerd's config: the change and the glob stay"
maint postinst configure
printf '\n[debug]\n  level = "info"\n' >>"$CTD/config.toml"
maint postrm purge
[ ! -e "$CTD/conf.d/di3fs.toml" ] || fail "purge left the drop-in"
grep -q '^  level = "info"' "$CTD/config.toml" || fail "purge undid the admin's change"
if loads_di3fs; then fail "di3fs still loaded after purge"; fi
cp "$WORK/original.toml" "$CTD/config.toml"
rm -f "$CTD/config.toml.di3fs-backup"

step "a broken containerd config: postinst warns, succeeds, changes nothing"
printf 'version = 2\n[grpc\n' >"$CTD/config.toml"
cp "$CTD/config.toml" "$WORK/broken.toml"
maint postinst configure
cmp -s "$CTD/config.toml" "$WORK/broken.toml" || fail "postinst changed a broken config"
grep -q "warning: containerd's config is unchanged" "$WORK/maint.log" || fail "no warning for a broken config"
maint postrm purge

step "DPKG_ROOT alone: containerd's config is left to the booted system"
DPKG_ROOT=$ROOTFS sh "$WORK/ctl/postinst" configure >"$WORK/root-only.log" 2>&1 || fail "postinst under DPKG_ROOT failed"
grep -q 'register the snapshotter with containerd there' "$WORK/root-only.log" || fail "$(cat "$WORK/root-only.log")"
[ ! -e "$ROOTFS/etc/containerd" ] || fail "postinst wrote into $ROOTFS/etc/containerd"
DPKG_ROOT=$ROOTFS sh "$WORK/ctl/postrm" purge >/dev/null 2>&1 || fail "postrm purge under DPKG_ROOT failed"
expect_eq "the host's containerd config" "$host_before" "$(host_sums)"
[ "$host_enabled" -eq 1 ] || [ ! -e "/$wants" ] || fail "the maintainer scripts enabled the unit on the host"
echo "PASS (dpkg-buildpackage took $build_s s)"
