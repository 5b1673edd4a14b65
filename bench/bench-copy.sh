#!/bin/bash
# bench-copy.sh - `cdimg copy` against skopeo and ctr on the same images
# (see bench/README.md).
#
#   bench/bench-copy.sh [--cache DIR] [--big-mib N] [--runs N]
#
# Runs as root. Two images: nginx (the two-layer image of the nginx trees of
# tests/assets/mktrees.sh, built by tests/assets/mkimages.py, gzip layers)
# and big (one gzip layer of N MiB of random data, 1024 by default), both
# built once and cached under CACHE/bench-copy. Starts Debian's
# docker-registry on 127.0.0.1 behind bench/tcpcount.py (which counts the
# bytes on the wire) and a private containerd (own root and socket, content
# isolated per namespace), then, for each image:
#   push   oci: layout -> docker:// (an empty registry each time)
#   pull   docker:// -> oci: layout (a new directory each time)
#   ctrd   docker:// -> containerd (a new namespace each time):
#          cdimg copy, ctr images pull (fetch and unpack), ctr content fetch
# Each step is timed with /usr/bin/time (wall, peak RSS of the client);
# the table gives the median of --runs runs and each tool's ratio to the
# baseline (skopeo, or ctr images pull) measured in the same run. Finds
# cdimg via $CDIMG, else ./build/ctr-tools/cdimg of the source tree.
set -eu

PROG=${0##*/}
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
usage() {
	cat >&2 <<EOF
usage: $PROG [--cache DIR] [--big-mib N] [--runs N]
  --cache DIR    trees and images cache (default /var/cache/di3fs)
  --big-mib N    size of the big image's layer in MiB (default 1024)
  --runs N       runs of every step, the median reported (default 1)
EOF
	exit 2
}

HERE=$(cd "$(dirname "$0")" && pwd -P)
SRC=$(cd "$HERE/.." && pwd -P)
CACHE=/var/cache/di3fs
BIG_MIB=1024
RUNS=1
while [ $# -gt 0 ]; do
	case $1 in
	--cache) [ $# -ge 2 ] || usage; CACHE=$2; shift 2 ;;
	--big-mib) [ $# -ge 2 ] || usage; BIG_MIB=$2; shift 2 ;;
	--runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
	-h|--help) usage ;;
	*) say "unknown argument: $1"; usage ;;
	esac
done
case $RUNS in ''|*[!0-9]*|0) die "--runs needs a positive number" ;; esac
case $BIG_MIB in ''|*[!0-9]*|0) die "--big-mib needs a positive number" ;; esac
[ "$(id -u)" = 0 ] || die "must run as root (containerd, the trees' files)"
CDIMG=${CDIMG:-$SRC/build/ctr-tools/cdimg}
[ -x "$CDIMG" ] || die "no cdimg at $CDIMG (build first, or set CDIMG)"
for t in skopeo docker-registry containerd ctr python3 gzip /usr/bin/time; do
	command -v "$t" >/dev/null || die "$t is not installed (install/deps.sh)"
done

WORK=$(mktemp -d /tmp/di3fs-bench-copy.XXXXXX)
PIDS=""
REG_PID=""
CTD_PID=""
cleanup() {
	for p in $REG_PID $CTD_PID $PIDS; do
		kill "$p" 2>/dev/null || true
	done
	for p in $REG_PID $CTD_PID $PIDS; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
# no credentials or registries configuration of the machine's user
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
IMG=$CACHE/bench-copy
mkdir -p "$IMG"
NGINX=$IMG/nginx
if [ ! -f "$NGINX/index.json" ]; then
	say "building the nginx image (once)"
	bash "$SRC/tests/assets/mktrees.sh" --out "$CACHE/trees" nginx >/dev/null
	python3 "$SRC/tests/assets/mkimages.py" oci "$CACHE/trees/nginx-v1" \
		"$CACHE/trees/nginx-v2" "$NGINX.tmp" --layout-dir --ref bench/nginx:v1 >/dev/null
	mv "$NGINX.tmp" "$NGINX"
fi
BIG=$IMG/big-${BIG_MIB}m
if [ ! -f "$BIG/index.json" ]; then
	say "building the big image (once): $BIG_MIB MiB of random data, gzip -1"
	rm -rf "$BIG.tmp"
	mkdir -p "$BIG.tmp/rootfs" "$BIG.tmp/blobs/sha256"
	head -c "$((BIG_MIB << 20))" /dev/urandom >"$BIG.tmp/rootfs/big.bin"
	tar --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$BIG.tmp/rootfs" -cf - big.bin |
		tee >(sha256sum | cut -d' ' -f1 >"$BIG.tmp/diffid") | gzip -1 -n >"$BIG.tmp/layer"
	sleep 1 # the process substitution's sha256sum
	rm -rf "$BIG.tmp/rootfs"
	python3 - "$BIG.tmp" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
def blob(data=None, path=None):
    h = hashlib.sha256()
    if path:
        with open(path, "rb") as f:
            for c in iter(lambda: f.read(1 << 20), b""):
                h.update(c)
        size = os.path.getsize(path)
        os.rename(path, "%s/blobs/sha256/%s" % (d, h.hexdigest()))
    else:
        h.update(data)
        size = len(data)
        open("%s/blobs/sha256/%s" % (d, h.hexdigest()), "wb").write(data)
    return {"digest": "sha256:" + h.hexdigest(), "size": size}
arch = {"x86_64": "amd64", "aarch64": "arm64", "s390x": "s390x"}.get(os.uname().machine, "amd64")
layer = dict(blob(path=d + "/layer"), mediaType="application/vnd.oci.image.layer.v1.tar+gzip")
diffid = "sha256:" + open(d + "/diffid").read().strip()
cfg = {"architecture": arch, "os": "linux", "config": {},
       "rootfs": {"type": "layers", "diff_ids": [diffid]}}
config = dict(blob(json.dumps(cfg, sort_keys=True).encode()),
              mediaType="application/vnd.oci.image.config.v1+json")
man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
       "config": config, "layers": [layer]}
m = dict(blob(json.dumps(man, sort_keys=True).encode()),
         mediaType="application/vnd.oci.image.manifest.v1+json",
         annotations={"org.opencontainers.image.ref.name": "bench/big:v1"})
json.dump({"schemaVersion": 2, "manifests": [m]}, open(d + "/index.json", "w"))
open(d + "/oci-layout", "w").write('{"imageLayoutVersion": "1.0.0"}')
os.unlink(d + "/diffid")
PY
	mv "$BIG.tmp" "$BIG"
fi

# ---- the registry (restarted empty for each push) behind the counter
RPORT=$(free_port)
PPORT=$(free_port)
WIRE=$WORK/wire.log
R=127.0.0.1:$PPORT
reg_start() {
	if [ -n "$REG_PID" ]; then
		kill "$REG_PID"
		wait "$REG_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK/reg"
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
	REG_PID=$!
	wait_for curl -sf "http://127.0.0.1:$RPORT/v2/" || die "the registry did not start"
}
python3 "$HERE/tcpcount.py" --port "$PPORT" --upstream "$RPORT" --log "$WIRE" &
PIDS="$PIDS $!"

# ---- a private containerd: content isolated per namespace, so that every
# run in a new namespace fetches every blob
CTD=$WORK/ctd
CSOCK=$CTD/containerd.sock
mkdir -p "$CTD"
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
EOF
containerd --config "$CTD/config.toml" >"$CTD/log" 2>&1 &
CTD_PID=$!
wait_for ctr -a "$CSOCK" version || die "containerd did not start"

# measure KEY CMD...: runs CMD under /usr/bin/time; appends
# "KEY wall_s wire_bytes rss_kib" to $WORK/results.
measure() {
	local key=$1
	shift
	: >"$WIRE"
	/usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/out" 2>&1 || {
		cat "$WORK/out" >&2
		die "failed: $*"
	}
	sleep 0.5 # the relay logs a connection once both sides closed
	local wire
	wire=$(awk '{ s += $1 + $2 } END { print s + 0 }' "$WIRE")
	read -r wall rss <"$WORK/time"
	echo "$key $wall $wire $rss" >>"$WORK/results"
	say "$key: ${wall}s, $wire bytes, ${rss} KiB"
}

SK=(skopeo copy -q --src-tls-verify=false --dest-tls-verify=false)
CP=("$CDIMG" copy -q --cache-dir "$WORK/blobcache")
: >"$WORK/results"
n=0
for run in $(seq "$RUNS"); do
	for name in nginx big; do
		lay=$NGINX
		[ $name = big ] && lay=$BIG
		ref=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])' "$lay/index.json")
		say "run $run: $name"
		reg_start
		measure "push $name skopeo" "${SK[@]}" "oci:$lay:$ref" "docker://$R/bench/$name:v1"
		reg_start
		measure "push $name cdimg" "${CP[@]}" "oci:$lay:$ref" "docker://$R/bench/$name:v1"
		measure "pull $name skopeo" "${SK[@]}" "docker://$R/bench/$name:v1" "oci:$WORK/pull-s:v1"
		measure "pull $name cdimg" "${CP[@]}" "docker://$R/bench/$name:v1" "oci:$WORK/pull-c:v1"
		rm -rf "$WORK/pull-s" "$WORK/pull-c"
		for tool in ctr-pull ctr-fetch cdimg; do
			n=$((n + 1))
			ns=bench$n
			case $tool in
			ctr-pull) measure "ctrd $name $tool" ctr -a "$CSOCK" -n $ns images pull \
				--plain-http "$R/bench/$name:v1" ;;
			ctr-fetch) measure "ctrd $name $tool" ctr -a "$CSOCK" -n $ns content fetch \
				--plain-http "$R/bench/$name:v1" ;;
			cdimg) measure "ctrd $name $tool" "${CP[@]}" -a "$CSOCK" -n $ns \
				"docker://$R/bench/$name:v1" "containerd:bench/$name:v1" ;;
			esac
		done
	done
done

# ---- the table: medians, ratios to the group's baseline
python3 - "$WORK/results" "$BIG_MIB" "$RUNS" <<'PY'
import statistics, sys
rows = {}
order = []
for line in open(sys.argv[1]):
    op, img, tool, wall, wire, rss = line.split()
    k = (op, img, tool)
    if k not in rows:
        rows[k] = []
        order.append(k)
    rows[k].append((float(wall), int(wire), int(rss)))
base = {"push": "skopeo", "pull": "skopeo", "ctrd": "ctr-pull"}
what = {"push": "oci: -> docker://", "pull": "docker:// -> oci:",
        "ctrd": "docker:// -> containerd"}
label = {"skopeo": "skopeo copy", "cdimg": "cdimg copy", "ctr-pull": "ctr images pull",
         "ctr-fetch": "ctr content fetch"}
med = {k: tuple(statistics.median(v[i] for v in rows[k]) for i in range(3)) for k in order}
print("big: %s MiB of random data, one gzip layer; median of %s run(s)" % (sys.argv[2], sys.argv[3]))
print("| operation | image | tool | wall s | wire MB | peak RSS MB | wall ratio | wire ratio | RSS ratio |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|")
for k in order:
    op, img, tool = k
    w, b, r = med[k]
    bw, bb, br = med[(op, img, base[op])]
    print("| %s | %s | %s | %.2f | %.1f | %.1f | %.2f | %.3f | %.2f |" % (
        what[op], img, label[tool], w, b / 1e6, r / 1024, w / bw if bw else 0,
        b / bb if bb else 0, r / br if br else 0))
PY
