#!/bin/bash
# A copy killed with SIGKILL halfway through a 512 MiB blob leaves nothing a
# reader could take for an image (no archive at the destination, an existing
# layout's index and blobs unchanged); the next run sweeps what it left and
# completes, with the same bytes as an uninterrupted run. Memory stays flat:
# peak RSS under 64 MiB copying that blob between layouts and archives.
. "$(dirname "$0")/lib.sh"

MKIMAGES="python3 $SRC/tests/assets/mkimages.py"
OCIMOD="python3 $SRC/tests/tools/ocimod.py"
[ "$(id -u)" = 0 ] || fail "must run as root (device nodes in the synthetic trees)"
command -v skopeo >/dev/null || fail "skopeo is not installed: run install/deps.sh"

W=$WORK
$MKIMAGES synth "$W/t"
$MKIMAGES oci "$W/t/base" "$W/t/new" "$W/big" --layout-dir --ref example.org/big:v1
$OCIMOD bigblob "$W/big" 512
$MKIMAGES oci "$W/t/base" "$W/t/base" "$W/other" --layout-dir --ref example.org/app:v1

# rss CMD...: runs CMD, fails unless it succeeds; prints its peak RSS in KiB.
rss() {
	python3 - "$@" <<'PY'
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:])
if r.returncode:
    sys.exit("exit %d: %s" % (r.returncode, " ".join(sys.argv[1:])))
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
}
limit=$((64 * 1024))
for step in "oci:$W/big oci-archive:$W/b.tar" "oci-archive:$W/b.tar oci:$W/b2" \
	"oci:$W/big docker-archive:$W/bd.tar" "docker-archive:$W/bd.tar oci-archive:$W/b3.tar"; do
	# shellcheck disable=SC2086
	kib=$(rss "$CDIMG" copy -q -j 4 $step)
	echo "  peak RSS $kib KiB: $step"
	[ "$kib" -lt $limit ] || fail "peak RSS $kib KiB >= 64 MiB: $step"
done
cmp "$W/b.tar" "$W/b3.tar" || fail "the archive through docker-archive differs"

# stage_bytes GLOB: bytes under the staging directories matching GLOB.
stage_bytes() {
	du -sb $1 2>/dev/null | awk '{ n += $1 } END { print n + 0 }'
}
# killed GLOB CMD...: starts CMD, SIGKILLs it once 128 MiB are staged.
killed() {
	local glob=$1 pid i
	shift
	"$@" &
	pid=$!
	for i in $(seq 600); do
		[ "$(stage_bytes "$glob")" -ge $((128 << 20)) ] && break
		kill -0 $pid 2>/dev/null || fail "the copy ended before it could be killed: $*"
		sleep 0.05
	done
	kill -9 $pid
	wait $pid 2>/dev/null && fail "the killed copy exited 0"
	echo "  killed at $(stage_bytes "$glob") staged bytes: $*"
}

# Into an archive.
killed "$W/.k.tar.di3fs-stage-*" "$CDIMG" copy -q -j 1 "oci:$W/big" "oci-archive:$W/k.tar"
[ ! -e "$W/k.tar" ] || fail "a killed copy left an archive"
ls -d "$W"/.k.tar.di3fs-stage-* >/dev/null || fail "the killed copy staged nothing"
"$CDIMG" copy -q "oci:$W/big" "oci-archive:$W/k.tar"
ls -d "$W"/.k.tar.di3fs-stage-* 2>/dev/null && fail "the rerun did not sweep the killed run's staging"
cmp "$W/k.tar" "$W/b.tar" || fail "the rerun's archive differs from an uninterrupted one"

# Into an existing layout.
cp -a "$W/other" "$W/L"
killed "$W/L/.di3fs-stage-*" "$CDIMG" copy -q -j 1 "oci:$W/big" "oci:$W/L"
cmp "$W/L/index.json" "$W/other/index.json" || fail "a killed copy changed the index"
diff <(ls "$W/L/blobs/sha256") <(ls "$W/other/blobs/sha256") >/dev/null ||
	fail "a killed copy added blobs to the layout"
"$CDIMG" copy -q "oci:$W/big" "oci:$W/L"
ls -d "$W"/L/.di3fs-stage-* 2>/dev/null && fail "the rerun did not sweep the layout's staging"
skopeo copy -q "oci:$W/L:example.org/big:v1" "oci:$W/check" || fail "the completed layout"
skopeo copy -q "oci:$W/L:example.org/app:v1" "oci:$W/check1" || fail "the layout lost its image"

# Into a new layout: nothing at the destination until the end.
killed "$W/.N.di3fs-stage-*" "$CDIMG" copy -q -j 1 "oci:$W/big" "oci:$W/N"
[ ! -e "$W/N" ] || fail "a killed copy left a layout"
"$CDIMG" copy -q "oci:$W/big" "oci:$W/N"
diff -r "$W/N" "$W/b2" >/dev/null || fail "the rerun's layout differs"
echo "copy_kill: ok"
