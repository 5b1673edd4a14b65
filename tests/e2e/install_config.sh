#!/bin/bash
# install/install-containerd-config.sh on the config.toml shapes it meets:
# none, Debian's default, version 1, imports on one line or several, ours
# already there, and a broken file. Every result must load the drop-in in
# `containerd config dump`; a second run must change nothing.
set -eu
SRC=${DI3FS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
INSTALL=$SRC/install/install-containerd-config.sh
command -v containerd >/dev/null 2>&1 || {
	[ -z "${CI:-}" ] || { echo "FAIL (CI): containerd is not installed" >&2; exit 1; }
	echo "SKIP: containerd is not installed"
	exit 77
}
WORK=$(mktemp -d /tmp/di3fs-install.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# run_case NAME [CONTENT]: installs into $WORK/NAME (config from CONTENT,
# none when absent), checks containerd loads it, and that a rerun is a no-op.
run_case() {
	local dir=$WORK/$1 cfg=$WORK/$1/config.toml
	mkdir -p "$dir"
	[ $# -lt 2 ] || printf '%s\n' "$2" >"$cfg"
	sh "$INSTALL" --config "$cfg" --dropin-dir "$dir/conf.d" --address "$dir/snap.sock" \
		>"$dir/out" 2>&1 || { cat "$dir/out"; fail "$1: install failed"; }
	containerd --config "$cfg" config dump >"$dir/dump" 2>&1 || fail "$1: containerd rejects it"
	grep -q '^ *\[proxy_plugins\.di3fs\]' "$dir/dump" || fail "$1: drop-in not loaded"
	grep -q "address = \"$dir/snap.sock\"" "$dir/dump" || fail "$1: wrong address"
	cp "$cfg" "$dir/first"
	sh "$INSTALL" --config "$cfg" --dropin-dir "$dir/conf.d" --address "$dir/snap.sock" \
		>"$dir/out2" 2>&1 || fail "$1: second run failed"
	cmp -s "$cfg" "$dir/first" || fail "$1: second run changed the config"
	grep -q "already imports" "$dir/out2" || fail "$1: second run did not notice"
	[ "$(grep -c 'imports' "$cfg")" -eq 1 ] || fail "$1: imports appears more than once"
}

run_case none
[ "$(head -n1 "$WORK/none/config.toml")" = "version = 2" ] || fail "new config lacks version 2"

if [ -f /etc/containerd/config.toml ]; then
	run_case debian "$(cat /etc/containerd/config.toml)"
else
	run_case debian 'version = 2
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"'
fi
[ -f "$WORK/debian/config.toml.di3fs-backup" ] || fail "no backup of the original"
sed -n 2p "$WORK/debian/config.toml" | grep -q '^imports = ' || fail "imports not after version"

run_case v1 '# a version 1 config: no version key
[grpc]
  address = "/run/x.sock"'

mkdir -p "$WORK/other"
printf 'version = 2\n[proxy_plugins.other]\n  type = "snapshot"\n  address = "/x"\n' \
	>"$WORK/other/extra.toml"
run_case one-line "version = 2
imports = [\"$WORK/other/extra.toml\"]
oom_score = 0"
grep -q "^imports = \[\"$WORK/one-line/conf.d/\*.toml\", \"$WORK/other/extra.toml\"\]" \
	"$WORK/one-line/config.toml" || fail "one-line imports not extended"
grep -q 'proxy_plugins.other' "$WORK/one-line/dump" || fail "existing import lost"

run_case multi-line "version = 2
imports = [
  \"$WORK/other/extra.toml\", # a comment
]
[debug]
  level = \"info\""
grep -q 'proxy_plugins.other' "$WORK/multi-line/dump" || fail "multi-line import lost"

mkdir -p "$WORK/present"
run_case present "version = 2
imports = [\"$WORK/present/conf.d/*.toml\"]"
[ ! -e "$WORK/present/config.toml.di3fs-backup" ] || fail "an unchanged config was backed up"

mkdir -p "$WORK/broken"
printf 'version = 2\n[grpc\n' >"$WORK/broken/config.toml"
cp "$WORK/broken/config.toml" "$WORK/broken/orig"
if sh "$INSTALL" --config "$WORK/broken/config.toml" --dropin-dir "$WORK/broken/conf.d" \
	>/dev/null 2>&1; then
	fail "a broken config was accepted"
fi
cmp -s "$WORK/broken/config.toml" "$WORK/broken/orig" || fail "a broken config was modified"

sh "$INSTALL" --config "$WORK/debian/config.toml" --dropin-dir "$WORK/debian/conf.d" --remove \
	>/dev/null
[ ! -e "$WORK/debian/conf.d/di3fs.toml" ] || fail "--remove left the drop-in"
containerd --config "$WORK/debian/config.toml" config dump >"$WORK/dump" 2>&1 ||
	fail "config no longer loads after --remove"
if grep -q 'proxy_plugins.di3fs' "$WORK/dump"; then
	fail "di3fs still configured after --remove"
fi
echo PASS
