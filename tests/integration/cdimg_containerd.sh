#!/bin/bash
# End to end on real Debian trees: nginx v1 and v2 (tests/assets/mktrees.sh)
# as OCI images -> .cdimg -> apply onto v1 -> OCI image tar, imported into a
# PRIVATE containerd (own root, state, socket; CRI off) and run with runc:
# the container sees the target's bytes (a changed binary, an unchanged
# file, a file only the target has), metadata and environment.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || fail "must run as root (containerd, runc, real trees)"
for tool in containerd ctr runc; do
	command -v $tool >/dev/null || fail "$tool is not installed: run install/deps.sh"
done
TREES=${DI3FS_TREES:-/var/cache/di3fs/trees}
bash "$SRC/tests/assets/mktrees.sh" --out "$TREES" nginx >/dev/null
MKOCI="python3 $SRC/tests/tools/mkoci.py"
NS=di3fs-test
CID=di3fs-oci-$$-$RANDOM
CTD=$WORK/containerd
SOCK=$CTD/containerd.sock
CTD_PID=

cleanup() {
	rc=$?
	set +e
	if [ -n "$CTD_PID" ]; then
		timeout 30 ctr -a "$SOCK" -n $NS tasks kill -s SIGKILL "$CID" >/dev/null 2>&1
		timeout 30 ctr -a "$SOCK" -n $NS tasks rm -f "$CID" >/dev/null 2>&1
		timeout 30 ctr -a "$SOCK" -n $NS containers rm "$CID" >/dev/null 2>&1
		kill "$CTD_PID" 2>/dev/null
		wait "$CTD_PID" 2>/dev/null
		for f in "$CTD"/state/io.containerd.runtime.v2.task/$NS/*/shim.pid; do
			[ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
		done
	fi
	awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r m; do umount -l "$m"; done
	rm -rf "/run/containerd/runc/$NS/$CID"
	[ "$rc" -ne 0 ] && [ -f "$CTD/containerd.log" ] && tail -n 20 "$CTD/containerd.log" >&2
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

secs() { date +%s.%N; }
took() { printf '%.1f s' "$(echo "$(secs) - $1" | bc)"; }

# The target: nginx-v2 plus a file only it has (hardlinked copy: cheap).
cp -al "$TREES/nginx-v2" "$WORK/v2tree"
head -c 100000 /dev/urandom >"$WORK/v2tree/usr/share/di3fs-only-in-v2.bin"
ONLY=usr/share/di3fs-only-in-v2.bin
# A name no locale converts: the layer then carries raw bytes (hdrcharset).
printf 'latin-1' >"$WORK/v2tree/usr/share/di3fs-caf$(printf '\351')"
CHANGED=usr/sbin/nginx
SAME=etc/debian_version
! cmp -s "$TREES/nginx-v1/$CHANGED" "$TREES/nginx-v2/$CHANGED" || fail "$CHANGED did not change"
cmp -s "$TREES/nginx-v1/$SAME" "$TREES/nginx-v2/$SAME" || fail "$SAME changed"

t=$(secs)
$MKOCI --ref example.org/nginx:v1 "$TREES/nginx-v1" "$WORK/v1.tar" >/dev/null
$MKOCI --ref example.org/nginx:v2 --env DI3FS_E2E=hello --label org.example.v=2 \
	--cmd '["nginx","-g","daemon off;"]' "$WORK/v2tree" "$WORK/v2.tar" >/dev/null
echo "images: $(took "$t") (v1 $(stat -c %s "$WORK/v1.tar") B, v2 $(stat -c %s "$WORK/v2.tar") B)"

t=$(secs)
"$CDIMG" diff -q "$WORK/v1.tar" "$WORK/v2.tar" -o "$WORK/nginx.cdimg"
echo "diff -> .cdimg: $(took "$t")"
"$CDIMG" diff -q "$WORK/v1.tar" "$WORK/v2.tar" -o "$WORK/nginx.dimg"
cs=$(stat -c %s "$WORK/nginx.cdimg")
ds=$(stat -c %s "$WORK/nginx.dimg")
echo "sizes: .cdimg $cs B, .dimg $ds B, OCI wrapping $((cs - ds)) B"
"$CDIMG" show "$WORK/nginx.cdimg" | head -n 8

t=$(secs)
"$CDIMG" apply -q "$WORK/v1.tar" "$WORK/nginx.cdimg" -o "$WORK/nginx-v2.tar"
echo "apply -> OCI tar: $(took "$t") ($(stat -c %s "$WORK/nginx-v2.tar") B)"
# The original layer and config come back (that image is the one imported);
# --squash gives the one-layer image.
python3 "$SRC/tests/tools/ocicheck.py" layers "$WORK/v2.tar" "$WORK/nginx-v2.tar"
"$CDIMG" apply -q --squash "$WORK/v1.tar" "$WORK/nginx.cdimg" -o "$WORK/nginx-v2-squashed.tar"
python3 "$SRC/tests/tools/ocicheck.py" image "$WORK/nginx-v2-squashed.tar" "$WORK/v2tree" \
	"$WORK/v2.tar" example.org/nginx:v2

# A private containerd, config version 2, CRI disabled.
mkdir -p "$CTD"
cat >"$CTD/config.toml" <<CONF
version = 2
root = "$CTD/root"
state = "$CTD/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$SOCK"

[ttrpc]
  address = "$SOCK.ttrpc"
CONF
containerd --config "$CTD/config.toml" >>"$CTD/containerd.log" 2>&1 &
CTD_PID=$!
for _ in $(seq 300); do
	ctr -a "$SOCK" version >/dev/null 2>&1 && break
	kill -0 "$CTD_PID" 2>/dev/null || fail "containerd exited"
	sleep 0.1
done
C="timeout 300 ctr -a $SOCK -n $NS"

t=$(secs)
$C images import "$WORK/nginx-v2.tar" >"$WORK/import.txt"
echo "ctr images import: $(took "$t")"
$C images ls | grep -q "example.org/nginx:v2" || fail "image not listed: $($C images ls)"

$C run --rm example.org/nginx:v2 "$CID" sh -c \
	"echo env=\$DI3FS_E2E; stat -c '%a %u %g' /usr/bin/passwd; cd / && sha256sum $CHANGED $SAME $ONLY usr/share/di3fs-caf*" \
	>"$WORK/run.txt"
echo "--- ctr run output"
cat "$WORK/run.txt"
(
	echo "env=hello"
	stat -c '%a %u %g' "$WORK/v2tree/usr/bin/passwd"
	cd "$WORK/v2tree" && sha256sum $CHANGED $SAME $ONLY usr/share/di3fs-caf*
) >"$WORK/want.txt"
diff -u "$WORK/want.txt" "$WORK/run.txt" || fail "the container does not see the target image"
kill "$CTD_PID"
wait "$CTD_PID" || true
CTD_PID=
echo "cdimg_containerd: ok"
