#!/bin/bash
# Self-test of tests/tools/treecmp.py: two identical small trees must
# compare equal (exit 0); each single change must be found (exit 1); bad
# usage must give exit 2.
set -eu

here=$(cd "$(dirname "$0")" && pwd -P)
src=${DI3FS_SRC:-$(cd "$here/../.." && pwd -P)}
TREECMP=$src/tests/tools/treecmp.py
[ -f "$TREECMP" ] || { echo "treecmp_selftest: $TREECMP not found" >&2; exit 1; }
command -v python3 >/dev/null || { echo "treecmp_selftest: python3 not found" >&2; exit 1; }

# A temp dir on a file system with user xattrs (tmpfs before Linux 6.6
# has none): $TMPDIR or /tmp, else the build directory.
tmp=
trap 'if [ -n "$tmp" ]; then rm -rf -- "$tmp"; fi' EXIT
for base in "${TMPDIR:-/tmp}" ${DI3FS_BUILD:+"$DI3FS_BUILD"}; do
	[ -d "$base" ] || continue
	tmp=$(mktemp -d "$base/treecmp-selftest.XXXXXX")
	: >"$tmp/probe"
	if python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.probe", b"1")' "$tmp/probe" 2>/dev/null; then
		rm -f "$tmp/probe"
		break
	fi
	rm -rf -- "$tmp"
	tmp=
done
if [ -z "$tmp" ]; then
	echo "treecmp_selftest: no temp directory with user xattrs (tried ${TMPDIR:-/tmp} ${DI3FS_BUILD:-})" >&2
	exit 1
fi

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

is_root=0
[ "$(id -u)" = 0 ] && is_root=1

# Build one tree at $1, every entry with fixed nanosecond mtimes.
mktree() {
	local d=$1
	mkdir -p "$d/dir/sub" "$d/empty"
	printf 'hello world\n' >"$d/dir/file"
	printf 'linked\n' >"$d/dir/hl1"
	ln "$d/dir/hl1" "$d/dir/hl2"
	ln "$d/dir/hl1" "$d/dir/sub/hl3"
	printf 'other\n' >"$d/dir/sub/plain"
	printf '#!/bin/sh\n' >"$d/suid"
	chmod 4755 "$d/suid"
	chmod 1777 "$d/empty"
	ln -s dir/file "$d/link"
	mkfifo "$d/fifo"
	printf 'xattr carrier\n' >"$d/xa"
	python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.x", b"value1")' "$d/xa"
	if [ $is_root = 1 ]; then
		mknod "$d/null" c 1 3
		chown 1234:5678 "$d/dir/sub/plain"
	fi
	# Children before parents, so parents' mtimes stay as set.
	find "$d" -depth -exec touch -h -d '2021-03-04 05:06:07.123456789' {} +
}

mktree "$tmp/a"

run() { python3 "$TREECMP" "$@" >"$tmp/out" 2>&1; }

# expect RC DESC A B
expect() {
	local want=$1 desc=$2 rc=0
	shift 2
	run "$@" || rc=$?
	if [ "$rc" = "$want" ]; then
		ok "$desc (exit $rc)"
	else
		bad "$desc: exit $rc, expected $want"
		sed 's/^/    /' "$tmp/out"
	fi
}

# A fresh copy of tree a at b; cp -a keeps hardlinks, modes, owners,
# mtimes and xattrs.
fresh() {
	rm -rf "$tmp/b"
	cp -a "$tmp/a" "$tmp/b"
}

# A single change to b, then the check that treecmp finds it (exit 1),
# names the changed path, and reports exactly N differences (a broken
# hardlink, for one, is seen from each of its paths).
# change DESC PATH-IN-OUTPUT N COMMAND...
change() {
	local desc=$1 where=$2 n=$3 rc=0
	shift 3
	fresh
	(cd "$tmp/b" && "$@")
	run "$tmp/a" "$tmp/b" || rc=$?
	if [ "$rc" != 1 ]; then
		bad "$desc: exit $rc, expected 1"
		sed 's/^/    /' "$tmp/out"
	elif ! grep -q -- "^$where:" "$tmp/out"; then
		bad "$desc: exit 1 but '$where' not reported"
		sed 's/^/    /' "$tmp/out"
	elif ! grep -q "^treecmp: $n difference(s) " "$tmp/out"; then
		bad "$desc: expected $n difference(s)"
		sed 's/^/    /' "$tmp/out"
	else
		ok "$desc detected: $(head -n 1 "$tmp/out")"
	fi
}
fresh
expect 0 "identical trees" "$tmp/a" "$tmp/b"
expect 0 "tree against itself" "$tmp/a" "$tmp/a"

change "content byte" dir/file 1 \
	sh -c 'printf "hello World\n" >dir/file && touch -d "2021-03-04 05:06:07.123456789" dir/file'
change "setuid bit" suid 1 chmod 0755 suid
change "sticky bit" empty 1 chmod 0777 empty
change "mode bit" dir/sub/plain 1 chmod 0600 dir/sub/plain
change "mtime nanoseconds" dir/file 1 touch -h -d '2021-03-04 05:06:07.123456788' dir/file
change "directory mtime" dir/sub 1 touch -h -d '2021-03-04 05:06:08.123456789' dir/sub
change "root mtime" . 1 touch -h -d '2021-03-04 05:06:08.123456789' .
change "symlink target" link 1 \
	sh -c 'ln -sfn dir/FILE link && touch -h -d "2021-03-04 05:06:07.123456789" link .'
change "symlink mtime" link 1 touch -h -d '2021-03-04 05:06:07.5' link
change "xattr value" xa 1 \
	python3 -c 'import os; os.setxattr("xa", "user.x", b"value2")'
change "xattr added" dir/file 1 \
	python3 -c 'import os; os.setxattr("dir/file", "user.y", b"")'
change "xattr removed" xa 1 \
	python3 -c 'import os; os.removexattr("xa", "user.x")'
change "hardlink broken" dir/hl2 3 \
	sh -c 'cp -p dir/hl2 dir/hl2.new && mv dir/hl2.new dir/hl2 && touch -h -d "2021-03-04 05:06:07.123456789" dir'
change "file removed" dir/sub/plain 1 \
	sh -c 'rm dir/sub/plain && touch -h -d "2021-03-04 05:06:07.123456789" dir/sub'
change "file added" dir/new 1 \
	sh -c ': >dir/new && touch -h -d "2021-03-04 05:06:07.123456789" dir/new dir'
change "fifo became file" fifo 1 \
	sh -c 'rm fifo && : >fifo && touch -h -d "2021-03-04 05:06:07.123456789" fifo .'
if [ $is_root = 1 ]; then
	change "owner" dir/sub/plain 1 chown 1235 dir/sub/plain
	change "group" dir/sub/plain 1 chown :5679 dir/sub/plain
	change "device minor" null 1 \
		sh -c 'rm null && mknod null c 1 5 && touch -h -d "2021-03-04 05:06:07.123456789" null .'
else
	echo "skip: owner, group and device checks need root"
fi

# Same content, different size is impossible; different content, same
# size must still be found (hash, not size).
change "same-size content" dir/sub/hl3 3 \
	sh -c 'printf "LINKED\n" >dir/sub/hl3 && touch -d "2021-03-04 05:06:07.123456789" dir/sub/hl3'

# Usage errors.
expect 2 "one argument" "$tmp/a"
expect 2 "missing directory" "$tmp/a" "$tmp/nonexistent"
expect 2 "file instead of directory" "$tmp/a" "$tmp/a/dir/file"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
