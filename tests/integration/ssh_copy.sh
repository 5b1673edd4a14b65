#!/bin/bash
# cdimg copy to and from ssh://, against Debian's sshd on a loopback port
# with keys made here (its own sshd_config, stopped by PID at the end) and
# the built cdimg as the remote agent. A layout copied to a remote oci:
# is byte-identical, blobs and manifest; a second copy sends no blob; the
# copy back too. A remote agent of another protocol version is an error
# naming both versions; a byte flipped in transit is refused (exit 3, the
# blob named), nothing committed, nothing kept to resume; a connection cut
# mid-blob (the ssh process killed) resumes: the rerun sends less than a
# fresh copy. Frames the agent must refuse: oversized, unknown, cut short.
. "$(dirname "$0")/lib.sh"

MKIMAGES="python3 $SRC/tests/assets/mkimages.py"
OCIMOD="python3 $SRC/tests/tools/ocimod.py"
SSHPIPE="python3 $SRC/tests/tools/sshpipe.py"
[ "$(id -u)" = 0 ] || fail "must run as root (device nodes in the synthetic trees, sshd)"
[ -x /usr/sbin/sshd ] || fail "sshd is not installed: run install/deps.sh (openssh-server)"
command -v ssh >/dev/null || fail "ssh is not installed: run install/deps.sh (openssh-client)"

W=$WORK
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ssh-keygen -q -t ed25519 -N '' -f "$W/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$W/id"
cp "$W/id.pub" "$W/authorized_keys"
echo "[127.0.0.1]:$PORT $(cat "$W/hostkey.pub")" >"$W/known_hosts"
cat >"$W/sshd_config" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $W/hostkey
AuthorizedKeysFile $W/authorized_keys
StrictModes no
UsePAM no
PidFile $W/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
LogLevel ERROR
CONF
mkdir -p /run/sshd # Debian's sshd wants its privilege separation directory
/usr/sbin/sshd -f "$W/sshd_config" -E "$W/sshd.log"
stop_sshd() {
	[ -s "$W/sshd.pid" ] && kill "$(cat "$W/sshd.pid")" 2>/dev/null
	rm -rf "$WORK"
}
trap stop_sshd EXIT
for i in $(seq 50); do
	[ -s "$W/sshd.pid" ] && break
	sleep 0.1
done
[ -s "$W/sshd.pid" ] || fail "sshd did not start: $(cat "$W/sshd.log")"

HOST="ssh://root@127.0.0.1:$PORT"
SSHOPTS=(--ssh-opt "UserKnownHostsFile=$W/known_hosts" --ssh-opt StrictHostKeyChecking=yes
	--ssh-opt "IdentityFile=$W/id" --ssh-opt IdentitiesOnly=yes --ssh-opt BatchMode=yes)
export DI3FS_CACHE_DIR=$W/lcache
REMOTE="env DI3FS_CACHE_DIR=$W/rcache ASAN_OPTIONS=${ASAN_OPTIONS:-} $CDIMG"

# sshcopy COUNTFILE [PIPE OPTIONS...] -- COPY ARGS...: cdimg copy --json over
# ssh through sshpipe.py, counting the bytes at the channel into COUNTFILE.
sshcopy() {
	local count=$1 pipe=()
	shift
	while [ "$1" != -- ]; do
		pipe+=("$1")
		shift
	done
	shift
	"$CDIMG" copy --json -j 1 "${SSHOPTS[@]}" --remote-cdimg "$REMOTE" \
		--ssh-command "$SSHPIPE --count $count ${pipe[*]} ssh -F /dev/null" "$@"
}
# up COUNTFILE: the bytes cdimg sent.
up() { cut -d' ' -f1 "$1"; }
no_sanitizer_report() {
	! grep -E "AddressSanitizer|LeakSanitizer|runtime error" "$@" || fail "sanitizer report: $*"
}
blobs_same() {
	diff <(ls "$1/blobs/sha256") <(ls "$2/blobs/sha256") || fail "$1 and $2: other blobs"
	for b in "$1"/blobs/sha256/*; do
		cmp "$b" "$2/blobs/sha256/${b##*/}" || fail "$b differs"
	done
}

$MKIMAGES synth "$W/t" >/dev/null
$MKIMAGES oci "$W/t/base" "$W/t/new" "$W/app" --layout-dir --ref example.org/app:v2 >/dev/null
cp -a "$W/app" "$W/big"
$OCIMOD bigblob "$W/big" 24

# To a remote layout: byte-identical blobs and manifest digest.
sshcopy "$W/c1" -- "oci:$W/app" "$HOST/oci:$W/r1:example.org/app:v2" >"$W/j1" 2>"$W/e1"
no_sanitizer_report "$W/e1"
copy_summary "$W/j1" copied=3 existing=0
blobs_same "$W/app" "$W/r1"
want=$(skopeo inspect --raw "oci:$W/app" | sha256sum | cut -d' ' -f1)
got=$(skopeo inspect --raw "oci:$W/r1:example.org/app:v2" | sha256sum | cut -d' ' -f1)
[ "$want" = "$got" ] || fail "the remote manifest differs"
copy_summary "$W/j1" manifest_digest="sha256:$want"
echo "  to ssh: $(up "$W/c1") bytes up"

# Again: no blob sent.
sshcopy "$W/c2" -- "oci:$W/app" "$HOST/oci:$W/r1:example.org/app:v2" >"$W/j2" 2>"$W/e2"
no_sanitizer_report "$W/e2"
copy_summary "$W/j2" copied=0 existing=3 copied_bytes=0
[ "$(up "$W/c2")" -lt 4096 ] || fail "a second copy sent $(up "$W/c2") bytes"
echo "  again: $(up "$W/c2") bytes up, no blob"

# Back from ssh: the same image.
sshcopy "$W/c3" -- "$HOST/oci:$W/r1:example.org/app:v2" "oci:$W/back" >"$W/j3" 2>"$W/e3"
no_sanitizer_report "$W/e3"
copy_summary "$W/j3" copied=3 manifest_digest="sha256:$want"
blobs_same "$W/app" "$W/back"
echo "  from ssh: $(cut -d' ' -f2 "$W/c3") bytes down"

# Another protocol version on the remote side.
expect_exit 1 "$CDIMG" copy "${SSHOPTS[@]}" --ssh-command "ssh -F /dev/null" \
	--remote-cdimg "env DI3FS_AGENT_PROTO_VERSION=9 $CDIMG" "oci:$W/app" "$HOST/oci:$W/rv"
grep -q "version 9.*version 1" "$WORK/err.txt" || {
	cat "$WORK/err.txt" >&2
	fail "a version mismatch does not name both versions"
}
[ ! -e "$W/rv" ] || fail "a version mismatch left a layout"
no_sanitizer_report "$WORK/err.txt"
echo "  version mismatch: $(grep -o 'the remote.*version 1' "$WORK/err.txt")"

# A fresh copy of the big image, for the byte counts.
sshcopy "$W/cf" -- "oci:$W/big" "$HOST/oci:$W/rfresh" >/dev/null 2>"$W/ef"
no_sanitizer_report "$W/ef"
fresh=$(up "$W/cf")
big=$(ls -S "$W/big/blobs/sha256" | head -1)

# A flipped byte in the big blob: refused, nothing committed or kept.
set +e
sshcopy "$W/cx" --flip 8000000 -- "oci:$W/big" "$HOST/oci:$W/rflip" >/dev/null 2>"$W/ex"
rc=$?
set -e
[ $rc = 3 ] || fail "a flipped byte: exit $rc, not 3: $(cat "$W/ex")"
no_sanitizer_report "$W/ex"
grep -q "sha256:$big" "$W/ex" || fail "the flipped blob is not named: $(cat "$W/ex")"
[ ! -e "$W/rflip" ] || fail "a flipped byte left a layout"
ls "$W/rcache/sha256" | grep -q "$big" && fail "wrong bytes were kept to resume"
echo "  flipped byte: $(cat "$W/ex")"

# The ssh process killed mid-blob; the rerun resumes.
set +e
sshcopy "$W/ck" --cut-after 12000000 -- "oci:$W/big" "$HOST/oci:$W/rbig" >/dev/null 2>"$W/ek"
rc=$?
set -e
[ $rc != 0 ] || fail "the cut copy exited 0"
no_sanitizer_report "$W/ek"
[ ! -e "$W/rbig" ] || fail "a cut copy left a layout"
for i in $(seq 50); do # the agent ends once sshd sees the channel gone
	pgrep -f "agent --stdio" >/dev/null || break
	sleep 0.1
done
partial=$(stat -c %s "$W/rcache/sha256/$big.partial")
sshcopy "$W/cr" -- "oci:$W/big" "$HOST/oci:$W/rbig" >"$W/jr" 2>"$W/er"
no_sanitizer_report "$W/er"
resumed=$(up "$W/cr")
blobs_same "$W/big" "$W/rbig"
[ "$resumed" -lt $((fresh - 8000000)) ] || fail "the rerun sent $resumed bytes, a fresh copy $fresh"
[ ! -e "$W/rcache/sha256/$big.partial" ] || fail "the partial blob stayed after the commit"
echo "  cut: $(cat "$W/ek")"
echo "  cut at $(up "$W/ck") bytes ($partial kept): rerun sent $resumed bytes, fresh $fresh"

# Frames the agent refuses: each a clear error, nothing opened.
hello='DI3FSAG\0\0\0\0\1'
frames() { printf '\001\000\000\000\014'"$hello$1"; }
for bad in 'oversized:\020\000\020\000\001:more than its limit' \
	'unknown:\077\000\000\000\000:unknown type 0x3f' \
	'cut:\002\000\000\000\100\000\000:cut short' \
	'noopen:\011\000\000\000\000:no OPEN yet'; do
	IFS=: read -r name bytes why <<<"$bad"
	set +e
	frames "$bytes" | "$CDIMG" agent --stdio >/dev/null 2>"$W/ea"
	rc=$?
	set -e
	no_sanitizer_report "$W/ea"
	[ $rc = 1 ] && grep -q "$why" "$W/ea" || fail "agent, $name frame: exit $rc: $(cat "$W/ea")"
	echo "  agent, $name frame: $(cat "$W/ea")"
done
echo "ssh_copy: ok"
