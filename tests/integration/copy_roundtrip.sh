#!/bin/bash
# cdimg copy between oci:, oci-archive: and docker-archive: on real images
# (nginx, two layers): gzip layers, a zstd layer, an index of two
# platforms, a Docker schema 2 image; and a docker save. Every round trip keeps
# the manifest digest and skopeo agrees (inspect --raw on what cdimg wrote,
# cdimg on what skopeo wrote); the platform's manifest is picked from an
# index; archives are the same bytes whatever -j and however often made;
# several images go into one archive sharing their blobs, each under its
# name; bad names and bad combinations are usage errors.
. "$(dirname "$0")/lib.sh"

MKIMAGES="python3 $SRC/tests/assets/mkimages.py"
OCIMOD="python3 $SRC/tests/tools/ocimod.py"
TREES=${DI3FS_TREES:-/var/cache/di3fs/trees}
[ "$(id -u)" = 0 ] || fail "must run as root (the real trees' files)"
for t in skopeo zstd; do
	command -v $t >/dev/null || fail "$t is not installed: run install/deps.sh"
done
bash "$SRC/tests/assets/mktrees.sh" --out "$TREES" nginx >/dev/null

W=$WORK
$MKIMAGES oci "$TREES/nginx-v1" "$TREES/nginx-v2" "$W/gz" --layout-dir --ref example.org/nginx:v2
# v1: the first layer only, shared with v2
cp -a "$W/gz" "$W/v1" && $OCIMOD droplast "$W/v1" && $OCIMOD ref "$W/v1" example.org/nginx:v1
# a docker save (uncompressed layers) of the small synthetic trees
$MKIMAGES synth "$W/t"
$MKIMAGES oci "$W/t/base" "$W/t/new" "$W/save.tar" --docker-save --ref example.org/app:v2
cp -a "$W/gz" "$W/zst" && $OCIMOD zstd "$W/zst" 1
cp -a "$W/zst" "$W/idx" && $OCIMOD multiarch "$W/idx" s390x
cp -a "$W/gz" "$W/dock" && $OCIMOD docker "$W/dock"

# The digest of the manifest (or index) a name shows skopeo.
digest() {
	skopeo inspect --raw "$1" | sha256sum | cut -d' ' -f1
}

# roundtrip NAME: oci -> oci-archive -> docker-archive -> oci keeps the
# manifest; skopeo reads each and copies the archive, cdimg reads that.
roundtrip() {
	local n=$1 want
	want=$(digest "oci:$W/$n")
	"$CDIMG" copy -q "oci:$W/$n" "oci-archive:$W/$n.tar"
	[ "$(digest "oci-archive:$W/$n.tar")" = "$want" ] || fail "$n: oci-archive changed the manifest"
	"$CDIMG" copy -q "oci-archive:$W/$n.tar" "docker-archive:$W/$n-d.tar"
	skopeo inspect --config "docker-archive:$W/$n-d.tar" >/dev/null ||
		fail "$n: skopeo cannot read the docker-archive cdimg wrote"
	"$CDIMG" copy -q "docker-archive:$W/$n-d.tar" "oci:$W/$n-o"
	[ "$(digest "oci:$W/$n-o")" = "$want" ] || fail "$n: docker-archive changed the manifest"
	skopeo copy -q "oci-archive:$W/$n.tar" "oci:$W/$n-s"
	"$CDIMG" copy -q "oci:$W/$n-s" "oci-archive:$W/$n-s.tar"
	[ "$(digest "oci-archive:$W/$n-s.tar")" = "$(digest "oci:$W/$n-s")" ] ||
		fail "$n: cdimg changed the manifest skopeo wrote"
	echo "  $n: sha256:$want kept through oci-archive, docker-archive, skopeo"
}
roundtrip gz
roundtrip zst
roundtrip dock
mt=$(skopeo inspect --raw "oci-archive:$W/dock.tar" | python3 -c 'import json,sys; print(json.load(sys.stdin)["mediaType"])')
[ "$mt" = application/vnd.docker.distribution.manifest.v2+json ] || fail "dock: media type $mt"

# An index: whole with --all-platforms, else this machine's manifest.
want=$(digest "oci:$W/idx")
"$CDIMG" copy -q --all-platforms "oci:$W/idx" "oci-archive:$W/idx-all.tar"
[ "$(digest "oci-archive:$W/idx-all.tar")" = "$want" ] || fail "idx: the index changed"
skopeo copy -q --all "oci-archive:$W/idx-all.tar" "oci:$W/idx-s" || fail "idx: skopeo copy --all"
[ "$(digest "oci:$W/idx-s")" = "$want" ] || fail "idx: skopeo changed the index"
for plat in amd64 s390x; do
	child=$(skopeo inspect --raw "oci:$W/idx" | python3 -c '
import json, sys
for m in json.load(sys.stdin)["manifests"]:
    if m["platform"]["architecture"] == sys.argv[1]:
        print(m["digest"].split(":")[1])' $plat)
	"$CDIMG" copy -q --platform "linux/$plat" "oci:$W/idx" "oci:$W/idx-$plat"
	[ "$(digest "oci:$W/idx-$plat")" = "$child" ] || fail "idx: not the $plat manifest"
	blobs=$(ls "$W/idx-$plat/blobs/sha256" | wc -l)
	[ "$blobs" -eq 4 ] || fail "idx-$plat: $blobs blobs, want manifest, config, 2 layers"
done
"$CDIMG" copy -q "oci:$W/idx" "oci:$W/idx-host"
[ "$(digest "oci:$W/idx-host")" = "$(digest "oci:$W/idx-amd64")" ] || fail "idx: not this machine's"

# docker save: the manifest skopeo makes for it, byte for byte.
"$CDIMG" copy -q "docker-archive:$W/save.tar" "oci-archive:$W/save-o.tar"
[ "$(digest "oci-archive:$W/save-o.tar")" = "$(digest "docker-archive:$W/save.tar")" ] ||
	fail "docker save: another manifest than skopeo's"
"$CDIMG" copy -q "$W/save.tar" "oci:$W/save-bare"
[ "$(digest "oci:$W/save-bare")" = "$(digest "docker-archive:$W/save.tar")" ] ||
	fail "docker save as a bare path"

# Deterministic: the same archive whatever -j, run after run.
"$CDIMG" copy -q -j 1 --all-platforms "oci:$W/idx" "oci-archive:$W/j1.tar"
"$CDIMG" copy -q -j 8 --all-platforms "oci:$W/idx" "oci-archive:$W/j8.tar"
cmp "$W/j1.tar" "$W/j8.tar" || fail "-j 1 and -j 8 archives differ"
cmp "$W/j1.tar" "$W/idx-all.tar" || fail "archives differ between runs"
"$CDIMG" copy -q -j 1 "oci:$W/gz" "docker-archive:$W/dj1.tar"
"$CDIMG" copy -q -j 4 "oci:$W/gz" "docker-archive:$W/dj4.tar"
cmp "$W/dj1.tar" "$W/dj4.tar" || fail "docker-archives differ between -j 1 and -j 4"

# Several images into one archive: shared blobs once, each under its name.
"$CDIMG" copy --json "oci:$W/v1" "oci:$W/gz" "oci-archive:$W/both.tar" >"$W/both.json"
python3 - "$W/both.json" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
s = ev[-1]
assert s["event"] == "summary" and s["images"] == 2, s
# v1: config, layer 1; v2: config, the same layer 1, layer 2
assert s["blobs"] == 4 and s["copied"] == 4, s
names = sorted(e["ref"] for e in ev if e["event"] == "manifest")
assert names == ["example.org/nginx:v1", "example.org/nginx:v2"], names
PY
n=$(tar tf "$W/both.tar" | grep -c '^blobs/sha256/.')
[ "$n" -eq 6 ] || fail "both.tar holds $n blobs, want 4 + 2 manifests"
for v in v1 gz; do
	ref=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])' "$W/$v/index.json")
	[ "$(digest "oci-archive:$W/both.tar:$ref")" = "$(digest "oci:$W/$v")" ] ||
		fail "both.tar: $ref is not $v"
done
expect_exit 2 "$CDIMG" copy "oci:$W/v1" "oci:$W/gz" "oci-archive:$W/both2.tar:x"
grep -q "without one" "$WORK/err.txt" || fail "several images into a named destination"
[ ! -e "$W/both2.tar" ] || fail "a refused copy left an archive"

# The output rule of every command: an archive is replaced only with
# --force, never when it is an input (by inode, whatever the name); a
# layout takes another image beside the ones it has.
cp "$W/both.tar" "$W/both.keep"
expect_exit 1 "$CDIMG" copy -q "oci:$W/v1" "oci-archive:$W/both.tar"
grep -q "exists: give --force" "$WORK/err.txt" || fail "an existing archive: no word of --force"
cmp -s "$W/both.tar" "$W/both.keep" || fail "copy replaced an archive without --force"
ln "$W/both.tar" "$W/both.link"
expect_exit 2 "$CDIMG" copy -q --force "oci-archive:$W/both.link:example.org/nginx:v1" \
	"docker-archive:$W/both.tar"
grep -q "is the same file as" "$WORK/err.txt" || fail "an input as DST not refused"
cmp -s "$W/both.tar" "$W/both.keep" || fail "copy wrote over its input"
"$CDIMG" copy -q --force "oci:$W/v1" "oci-archive:$W/both.tar"
[ "$(digest "oci-archive:$W/both.tar")" = "$(digest "oci:$W/v1")" ] || fail "--force did not replace"
"$CDIMG" copy -q "oci:$W/v1" "oci:$W/lay:a" && "$CDIMG" copy -q "oci:$W/gz" "oci:$W/lay:b"
[ "$(digest "oci:$W/lay:a")" = "$(digest "oci:$W/v1")" ] || fail "a layout lost an image"
[ "$(digest "oci:$W/lay:b")" = "$(digest "oci:$W/gz")" ] || fail "a layout did not take an image"

# Names: foreign transports, bad digests, a missing image.
expect_exit 2 "$CDIMG" copy dir:/tmp "oci:$W/x"
grep -q "not one di3fs reads" "$WORK/err.txt" || fail "dir: not named as foreign"
expect_exit 2 "$CDIMG" copy "containerd:app@sha256:12" "oci:$W/x"
expect_exit 2 "$CDIMG" copy "oci:$W/gz"
expect_exit 1 "$CDIMG" copy "oci:$W/gz:nosuch" "oci:$W/x"
grep -q "nosuch" "$WORK/err.txt" || fail "a missing ref is not named"
[ ! -e "$W/x" ] || fail "a failed copy left a destination"
echo "copy_roundtrip: ok"
