#!/bin/bash
# End-to-end: the daemon as install/di3fs-snapshotter.service runs it.
# Type=notify: READY=1 reaches $NOTIFY_SOCKET (a path, then an abstract
# name) from the main pid only once the socket answers calls and, after a
# restart, once the delta images are mounted again; STOPPING=1 on SIGTERM.
# The unit's sandbox (its CapabilityBoundingSet and NoNewPrivileges,
# applied with setpriv as systemd would) still mounts FUSE and serves a
# delta image containerd runs. Socket and state are root's alone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/delta_image.inc"

CDIMG=${CDIMG:-$SRC/build/ctr-tools/cdimg}
[ -x "$CDIMG" ] || fail "no cdimg binary at $CDIMG"
command -v setpriv >/dev/null 2>&1 || skip "setpriv is not installed (util-linux)"
UNIT=$SRC/install/di3fs-snapshotter.service
REAL=$SNAPSHOTTER
LISTENERS=
trap 'rc=$?; [ -z "$LISTENERS" ] || kill $LISTENERS 2>/dev/null; (exit $rc); e2e_cleanup' EXIT
step() { echo "== $*"; }

grep -qx 'Type=notify' "$UNIT" || fail "the unit is not Type=notify"
grep -qx 'NotifyAccess=main' "$UNIT" || fail "the unit does not limit notifications to the main pid"

# listen ADDRESS LOG: one line per datagram ("PID STATE STATE..."), the
# sender's pid from its credentials (what systemd checks for NotifyAccess=main)
listen() {
	python3 - "$1" "$2" <<'PY' &
import os, socket, struct, sys
addr, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
open(log + ".bound", "w").close()
while True:
    data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = [struct.unpack("iII", d)[0] for lvl, typ, d in anc if typ == socket.SCM_CREDENTIALS]
    with open(log, "a") as f:
        f.write("%s %s\n" % (pid[0] if pid else "?", data.decode().replace("\n", " ")))
PY
	LISTENERS="$LISTENERS $!"
	wait_for 10 test -e "$2.bound" || fail "notify listener on $1 did not start"
}

# The unit's capability bounding set as setpriv's --bounding-set argument.
bset=$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT" | tr 'A-Z' 'a-z' | sed 's/cap_//g')
case $bset in
"") fail "the unit sets no CapabilityBoundingSet" ;;
~*) bset=$(echo "${bset#\~}" | tr -s ' ' '\n' | sed 's/^/-/' | paste -sd, -) ;;
*) bset=-all,$(echo "$bset" | tr -s ' ' '\n' | sed 's/^/+/' | paste -sd, -) ;;
esac
nnp=
grep -qx 'NoNewPrivileges=yes' "$UNIT" && nnp=--no-new-privs
cat >"$WORK/as-unit.sh" <<SH
#!/bin/sh
exec setpriv $nnp --bounding-set $bset -- "$REAL" "\$@"
SH
chmod +x "$WORK/as-unit.sh"
SNAPSHOTTER=$WORK/as-unit.sh

# start_notified LOG: starts the daemon; at READY=1 (at most 30 s) one call
# must be answered at once, and the message must come from the daemon's pid
start_notified() {
	write_snap_config
	"$SNAPSHOTTER" --config "$WORK/snap.conf" 2>>"$WORK/snap.log" &
	SNAP_PID=$!
	wait_for 30 grep -q 'READY=1' "$1" || fail "no READY=1 within 30 s: $(cat "$1")"
	"$SNAPCTL" --address "$SOCK" list >/dev/null || fail "READY=1 came before the socket answered"
	expect_eq "READY=1 sender" "$SNAP_PID READY=1" "$(grep READY=1 "$1")"
}

step "a delta image (busybox base, target with /etc/version changed)"
make_delta_image example.org/notify:v1 example.org/notify:v2

step "start under the unit's sandbox ($nnp --bounding-set $bset), NOTIFY_SOCKET a path"
listen "$WORK/notify.sock" "$WORK/notify1.log"
export NOTIFY_SOCKET=$WORK/notify.sock
start_notified "$WORK/notify1.log"
grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$SNAP_PID/status" || [ -z "$nnp" ] || fail "no_new_privs not set"
bnd=$(awk '/^CapBnd:/ { print $2 }' "/proc/$SNAP_PID/status")
(( (0x$bnd >> 16) & 1 )) && fail "CAP_SYS_MODULE still in the bounding set ($bnd)"
(( (0x$bnd >> 21) & 1 )) || fail "CAP_SYS_ADMIN missing from the bounding set ($bnd)"
expect_eq "socket mode" 660 "$(stat -c %a "$SOCK")"
expect_eq "state directory mode" 700 "$(stat -c %a "$ROOT")"

step "containerd runs the delta image through the sandboxed daemon"
start_containerd
$C images import --snapshotter=di3fs "$WORK/base.tar" >/dev/null
"$CDIMG" load -q -a "$CSOCK" -n "$NS" "$WORK/delta.cdimg" || fail "cdimg load failed"
out=$($C run --rm --snapshotter=di3fs example.org/notify:v2 n1 cat /etc/version /etc/added)
expect_eq "container output" "version 2
new in v2" "$out"

step "SIGTERM: STOPPING=1"
stop_snapshotter TERM
grep -q "^[0-9]* STOPPING=1" "$WORK/notify1.log" || fail "no STOPPING=1: $(cat "$WORK/notify1.log")"

step "restart, NOTIFY_SOCKET an abstract name: at READY=1 the delta image is mounted"
listen "@di3fs-e2e-notify-$$" "$WORK/notify2.log"
export NOTIFY_SOCKET=@di3fs-e2e-notify-$$
start_notified "$WORK/notify2.log"
awk -v m="$ROOT/fuse" '$2 == m && $3 ~ /^fuse/' /proc/mounts | grep -q . || fail "FUSE not mounted at READY=1"
found=$(cat "$ROOT"/fuse/*/etc/version 2>/dev/null || true)
expect_eq "delta image tree at READY=1" "version 2" "$found"
wait_for 30 $C snapshots --snapshotter di3fs ls || fail "containerd did not reconnect"
out=$($C run --rm --snapshotter=di3fs example.org/notify:v2 n2 cat /etc/version)
expect_eq "container output after the restart" "version 2" "$out"

step "without NOTIFY_SOCKET nothing is sent and the daemon still starts"
stop_snapshotter TERM
unset NOTIFY_SOCKET
start_snapshotter
grep -q 'cannot notify' "$WORK/snap.log" && fail "a notification failure was logged"
stop_containerd
stop_snapshotter TERM
echo PASS
