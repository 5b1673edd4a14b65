#!/bin/bash
# bench-pull.sh - `cdimg pull` (a delta from the registry) against
# `ctr images pull` (the layers) on a device that holds v1
# (see bench/README.md).
#
#   bench/bench-pull.sh [--cache DIR] [--runs N]
#
# Runs as root. The nginx pair of tests/assets/mktrees.sh as two-layer
# images (the Debian minbase, then what nginx v1 or v2 adds: the layer
# shared by both is what a layer-level pull saves), built once under
# CACHE/bench-pull. Starts Debian's docker-registry on 127.0.0.1 behind
# bench/tcpcount.py (the bytes on the wire), pushes v1, v2 and the v1 -> v2
# .cdimg, and starts a private containerd (content isolated per namespace)
# with di3fs-snapshotter. Then, each in a new namespace holding v1 (imported
# into di3fs):
#   cdimg pull --insecure-unsigned   the delta, loaded lazily
#   cdimg pull                       unsigned deltas refused: the layers
#   ctr images pull                  the layers v1 lacks, unpacked into di3fs
#   ctr images pull (nothing held)   the whole image
# and the time from the start of `cdimg pull` to the first output of a
# container of v2 (against the first output of the unpacked image). The table gives medians of --runs runs and the ratios
# to ctr images pull with v1 held, measured in the same run. Finds cdimg
# and the snapshotter in ./build of the source tree (or $CDIMG,
# $SNAPSHOTTER).
set -eu

PROG=${0##*/}
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
usage() {
	cat >&2 <<EOF
usage: $PROG [--cache DIR] [--runs N]
  --cache DIR    trees and images cache (default /var/cache/di3fs)
  --runs N       runs of every step, the median reported (default 1)
EOF
	exit 2
}

HERE=$(cd "$(dirname "$0")" && pwd -P)
SRC=$(cd "$HERE/.." && pwd -P)
CACHE=/var/cache/di3fs
RUNS=1
while [ $# -gt 0 ]; do
	case $1 in
	--cache) [ $# -ge 2 ] || usage; CACHE=$2; shift 2 ;;
	--runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
	-h|--help) usage ;;
	*) say "unknown argument: $1"; usage ;;
	esac
done
case $RUNS in ''|*[!0-9]*|0) die "--runs needs a positive number" ;; esac
[ "$(id -u)" = 0 ] || die "must run as root (containerd, FUSE, the trees' files)"
CDIMG=${CDIMG:-$SRC/build/ctr-tools/cdimg}
SNAPSHOTTER=${SNAPSHOTTER:-$SRC/build/snapshotter/di3fs-snapshotter}
[ -x "$CDIMG" ] || die "no cdimg at $CDIMG (build first, or set CDIMG)"
[ -x "$SNAPSHOTTER" ] || die "no snapshotter at $SNAPSHOTTER (build first, or set SNAPSHOTTER)"
for t in docker-registry containerd ctr runc python3 curl /usr/bin/time; do
	command -v "$t" >/dev/null || die "$t is not installed (install/deps.sh)"
done

WORK=$(mktemp -d /tmp/di3fs-bench-pull.XXXXXX)
PIDS=""
cleanup() {
	set +e
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r m; do umount -l "$m"; done
	rm -rf "$WORK"
}
trap cleanup EXIT
export HOME=$WORK/home DI3FS_CERTS_D=$WORK/certs.d DI3FS_HOSTS_D=$WORK/hosts.d
unset REGISTRY_AUTH_FILE DOCKER_CONFIG CONTAINERD_ADDRESS CONTAINERD_NAMESPACE
mkdir -p "$HOME" "$DI3FS_CERTS_D" "$DI3FS_HOSTS_D"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() {
	for _ in $(seq 300); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# ---- images, built once
IMG=$CACHE/bench-pull
mkdir -p "$IMG"
if [ ! -f "$IMG/nginx-v2.tar" ]; then
	say "building the nginx images (once)"
	bash "$SRC/tests/assets/mktrees.sh" --out "$CACHE/trees" nginx >/dev/null
	rm -rf "$WORK/minbase"
	mkdir -p "$WORK/minbase"
	tar -C "$WORK/minbase" --same-owner -xpf "$CACHE/base-bookworm-minbase.tar" ||
		die "no minbase in $CACHE (tests/assets/mktrees.sh makes it)"
	for v in v1 v2; do
		python3 "$SRC/tests/assets/mkimages.py" oci --ref "bench/nginx:$v" "$WORK/minbase" \
			"$CACHE/trees/nginx-$v" "$IMG/nginx-$v.tar.tmp" >/dev/null
		mv "$IMG/nginx-$v.tar.tmp" "$IMG/nginx-$v.tar"
	done
	rm -rf --one-file-system "$WORK/minbase"
fi

# ---- the registry behind the counter, with v1, v2 and the delta
RPORT=$(free_port)
PPORT=$(free_port)
WIRE=$WORK/wire.log
R=127.0.0.1:$PPORT
mkdir -p "$WORK/reg/data"
cat >"$WORK/reg/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/reg/data
http:
  addr: 127.0.0.1:$RPORT
  secret: di3fs-bench-secret
EOF
docker-registry serve "$WORK/reg/config.yml" >"$WORK/reg/log" 2>&1 &
PIDS="$PIDS $!"
wait_for curl -sf "http://127.0.0.1:$RPORT/v2/" || die "the registry did not start"
python3 "$HERE/tcpcount.py" --port "$PPORT" --upstream "$RPORT" --log "$WIRE" &
PIDS="$PIDS $!"
wait_for curl -sf "http://$R/v2/" || die "the relay did not start"
for v in v1 v2; do
	"$CDIMG" copy -q "oci-archive:$IMG/nginx-$v.tar" "docker://$R/bench/nginx:$v"
done
"$CDIMG" diff -q "$IMG/nginx-v1.tar" "$IMG/nginx-v2.tar" -o "$WORK/d.cdimg"
"$CDIMG" push -q "$WORK/d.cdimg" "docker://$R/bench/nginx"
CDSIZE=$(stat -c %s "$WORK/d.cdimg")

# ---- a private containerd with di3fs
CTD=$WORK/ctd
CSOCK=$CTD/containerd.sock
SSOCK=$WORK/snap.sock
mkdir -p "$CTD"
cat >"$WORK/snap.conf" <<EOF
root = $WORK/snaproot
address = "$SSOCK"
containerd_address = "$CSOCK"
EOF
"$SNAPSHOTTER" --config "$WORK/snap.conf" 2>"$WORK/snap.log" &
PIDS="$PIDS $!"
cat >"$CTD/config.toml" <<EOF
version = 2
root = "$CTD/root"
state = "$CTD/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CSOCK"
[ttrpc]
  address = "$CSOCK.ttrpc"
[plugins."io.containerd.metadata.v1.bolt"]
  content_sharing_policy = "isolated"
[proxy_plugins.di3fs]
  type = "snapshot"
  address = "$SSOCK"
EOF
containerd --config "$CTD/config.toml" >"$CTD/log" 2>&1 &
PIDS="$PIDS $!"
wait_for ctr -a "$CSOCK" version || die "containerd did not start"

# measure KEY CMD...: appends "KEY wall_s wire_bytes" to $WORK/results.
measure() {
	local key=$1 wire wall
	shift
	: >"$WIRE"
	/usr/bin/time -f "%e" -o "$WORK/time" "$@" >"$WORK/out" 2>&1 || {
		cat "$WORK/out" >&2
		die "failed: $*"
	}
	sleep 0.5 # the relay logs a connection once both sides closed
	wire=$(awk '{ s += $1 + $2 } END { print s + 0 }' "$WIRE")
	read -r wall <"$WORK/time"
	echo "$key $wall $wire" >>"$WORK/results"
	say "$key: ${wall}s, $wire bytes"
}

# $WORK/first.sh NS: cdimg pull, then a container of v2 printing a line
cat >"$WORK/first.sh" <<EOF
set -e
"$CDIMG" pull -q --insecure-unsigned -a "$CSOCK" -n "\$1" --cache "$WORK/cache-\$1" \\
	"docker://$R/bench/nginx:v2" >/dev/null
ctr -a "$CSOCK" -n "\$1" run --rm --snapshotter=di3fs "$R/bench/nginx:v2" "first-\$1" \\
	cat /etc/debian_version
EOF

: >"$WORK/results"
n=0
for run in $(seq "$RUNS"); do
	for tool in cdimg-delta cdimg-layers ctr-pull ctr-full first-output; do
		n=$((n + 1))
		ns=bench$n
		C=(ctr -a "$CSOCK" -n "$ns")
		[ $tool = ctr-full ] || "${C[@]}" images import --snapshotter=di3fs \
			"$IMG/nginx-v1.tar" >/dev/null
		case $tool in
		cdimg-delta) measure "$tool" "$CDIMG" pull -q --insecure-unsigned -a "$CSOCK" -n "$ns" \
			--cache "$WORK/cache-$ns" "docker://$R/bench/nginx:v2" ;;
		cdimg-layers) measure "$tool" "$CDIMG" pull -q -a "$CSOCK" -n "$ns" \
			--cache "$WORK/cache-$ns" "docker://$R/bench/nginx:v2" ;;
		ctr-pull | ctr-full) measure "$tool" "${C[@]}" images pull --plain-http \
			--snapshotter di3fs "$R/bench/nginx:v2" ;;&
		ctr-full) measure full-run "${C[@]}" run --rm --snapshotter=di3fs \
			"$R/bench/nginx:v2" "first-$ns" cat /etc/debian_version ;;
		first-output) measure "$tool" bash "$WORK/first.sh" "$ns" ;;
		esac
	done
done

python3 - "$WORK/results" "$RUNS" "$CDSIZE" <<'PY'
import statistics, sys
rows, order = {}, []
for line in open(sys.argv[1]):
    tool, wall, wire = line.split()
    if tool not in rows:
        rows[tool] = []
        order.append(tool)
    rows[tool].append((float(wall), int(wire)))
label = {"cdimg-delta": "cdimg pull --insecure-unsigned (delta, lazy)",
         "cdimg-layers": "cdimg pull (unsigned deltas refused: layers)",
         "ctr-pull": "ctr images pull (v1 held: missing layers, unpacked)",
         "ctr-full": "ctr images pull (nothing held)",
         "full-run": "first output of a container of that image (unpacked)",
         "first-output": "cdimg pull + first output of a v2 container"}
med = {k: tuple(statistics.median(v[i] for v in rows[k]) for i in range(2)) for k in order}
bw, bb = med["ctr-pull"]
print("nginx v1 -> v2 (two-layer images sharing the minbase); the .cdimg is %s bytes; "
      "median of %s run(s)" % (sys.argv[3], sys.argv[2]))
print("| what | wall s | wire bytes | wall ratio | wire ratio |")
print("|---|---:|---:|---:|---:|")
for k in order:
    w, b = med[k]
    print("| %s | %.2f | %d | %.2f | %.4f |" % (label[k], w, b, w / bw, b / bb))
PY
