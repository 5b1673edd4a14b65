#!/bin/sh
# Registers di3fs-snapshotter with containerd 1.6: installs the drop-in
# containerd-di3fs.toml as <dropin-dir>/di3fs.toml and makes config.toml
# import <dropin-dir>/*.toml through its top-level `imports` list. Idempotent:
# a second run changes nothing. config.toml is edited in place of its
# `imports` (or next to `version`), never appended to, checked with
# `containerd config dump` before it replaces the old file, and backed up once.
#
# Usage: install-containerd-config.sh [--config FILE] [--dropin-dir DIR]
#                                     [--address SOCK] [--remove]
#   --config FILE      containerd's config (default $DI3FS_CONTAINERD_CONFIG,
#                      else /etc/containerd/config.toml)
#   --dropin-dir DIR   where drop-ins live (default $DI3FS_CONTAINERD_DROPIN_DIR,
#                      else /etc/containerd/conf.d)
#   --address SOCK     the snapshotter's socket (default /run/di3fs/snapshotter.sock)
#   --remove           delete the drop-in (the imports glob, harmless, stays)
# Restart containerd afterwards: systemctl restart containerd
set -eu

CONFIG=${DI3FS_CONTAINERD_CONFIG:-/etc/containerd/config.toml}
DROPIN_DIR=${DI3FS_CONTAINERD_DROPIN_DIR:-/etc/containerd/conf.d}
ADDRESS=/run/di3fs/snapshotter.sock
REMOVE=0
HERE=$(cd "$(dirname "$0")" && pwd)
TEMPLATE=$HERE/containerd-di3fs.toml
[ -f "$TEMPLATE" ] || TEMPLATE=$HERE/../share/di3fs/containerd-di3fs.toml

die() {
	echo "install-containerd-config.sh: $*" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case $1 in
	--config) CONFIG=$2; shift 2 ;;
	--dropin-dir) DROPIN_DIR=$2; shift 2 ;;
	--address) ADDRESS=$2; shift 2 ;;
	--remove) REMOVE=1; shift ;;
	-h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done
case $DROPIN_DIR$ADDRESS in
*\"* | *\\* | *\&* | *\|*) die "paths must not contain quotes, backslashes, '&' or '|'" ;;
esac
DROPIN=$DROPIN_DIR/di3fs.toml
GLOB=$DROPIN_DIR/*.toml

if [ "$REMOVE" -eq 1 ]; then
	rm -f "$DROPIN"
	echo "removed $DROPIN; restart containerd to unload the di3fs snapshotter"
	exit 0
fi
[ -f "$TEMPLATE" ] || die "cannot find containerd-di3fs.toml next to this script"

# 1. The drop-in first: an import naming a missing file stops containerd.
mkdir -p "$DROPIN_DIR"
tmp=$(mktemp "$DROPIN_DIR/.di3fs.toml.XXXXXX")
trap 'rm -f "$tmp"' EXIT
sed "s|^\\( *address = \\).*|\\1\"$ADDRESS\"|" "$TEMPLATE" >"$tmp"
if cmp -s "$tmp" "$DROPIN"; then
	rm -f "$tmp"
	echo "$DROPIN is up to date"
else
	chmod 0644 "$tmp"
	mv "$tmp" "$DROPIN"
	echo "wrote $DROPIN"
fi

# 2. config.toml: add the glob to the top-level imports (keys after the
# first [table] header belong to that table, so only lines before it count).
edit_config() {
	has_imports=$(awk '/^[ \t]*\[/ { exit } /^[ \t]*imports[ \t]*=/ { print 1; exit }' "$1")
	awk -v glob="$GLOB" -v file="$DROPIN" -v has_imports="${has_imports:-0}" '
	function ours() { print "imports = [\"" glob "\"]"; done = 1 }
	# The existing imports statement: kept if it names ours, else ours is
	# made its first element (so no comma after another element to fix).
	function emit(stmt) {
		if (index(stmt, "\"" glob "\"") || index(stmt, "\"" file "\""))
			;
		else if (stmt ~ /\[[ \t]*\n/)
			sub(/\[[ \t]*/, "[\"" glob "\",", stmt)
		else
			sub(/\[/, "[\"" glob "\", ", stmt)
		print stmt
		done = 1
	}
	{
		line = $0
		if (in_imports) {
			buf = buf "\n" line
			if (line ~ /\]/) { in_imports = 0; emit(buf) }
			next
		}
		if (!in_table && line ~ /^[ \t]*\[/) {
			if (!done) ours()
			in_table = 1
		}
		if (!in_table && has_imports && line ~ /^[ \t]*imports[ \t]*=/) {
			buf = line
			if (line ~ /\]/) emit(buf); else in_imports = 1
			next
		}
		print line
		if (!in_table && !has_imports && !done && line ~ /^[ \t]*version[ \t]*=/) ours()
	}
	END { if (!done) ours() }
	' "$1"
}

if [ ! -e "$CONFIG" ]; then
	mkdir -p "$(dirname "$CONFIG")"
	new=$(mktemp "$(dirname "$CONFIG")/.config.toml.XXXXXX")
	printf 'version = 2\nimports = ["%s"]\n' "$GLOB" >"$new"
else
	new=$(mktemp "$(dirname "$CONFIG")/.config.toml.XXXXXX")
	edit_config "$CONFIG" >"$new"
fi
trap 'rm -f "$tmp" "$new"' EXIT
if [ -e "$CONFIG" ] && cmp -s "$new" "$CONFIG"; then
	echo "$CONFIG already imports $GLOB"
	exit 0
fi
if command -v containerd >/dev/null 2>&1; then
	dump=$(containerd --config "$new" config dump 2>&1) ||
		die "containerd rejects the edited config, $CONFIG left unchanged: $dump"
	echo "$dump" | grep -q '^ *\[proxy_plugins\.di3fs\]' ||
		die "the edited config does not load the drop-in, $CONFIG left unchanged"
fi
if grep -q '^[ \t]*\[proxy_plugins\.\(di3fs\|"di3fs"\)\]' "$CONFIG" 2>/dev/null; then
	echo "warning: $CONFIG defines proxy_plugins.di3fs itself; the drop-in overrides it" >&2
fi
if [ -e "$CONFIG" ]; then
	[ -e "$CONFIG.di3fs-backup" ] || cp -p "$CONFIG" "$CONFIG.di3fs-backup"
	chmod --reference="$CONFIG" "$new"
else
	chmod 0644 "$new"
fi
mv "$new" "$CONFIG"
echo "$CONFIG now imports $GLOB; restart containerd: systemctl restart containerd"
