#!/bin/bash
# A real image (nginx-v1, an index of two platforms) pushed to Debian's
# docker-registry and pulled back: the same manifest digests and bytes,
# only missing blobs sent, platform selection, the docker:// transport,
# skopeo reading what we pushed, tags, mounts, no referrers API.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.inc"

reg_start plain
R=127.0.0.1:$PORT_plain
IMG=$(nginx_layout)
INDEX=$(json_get "$IMG/index.json" 'd["manifests"][0]["digest"]')
CHILDREN=$IMG/blobs/sha256/${INDEX#sha256:}
AMD64=$(json_get "$CHILDREN" '[m["digest"] for m in d["manifests"] if m["platform"]["architecture"]=="amd64"][0]')
S390X=$(json_get "$CHILDREN" '[m["digest"] for m in d["manifests"] if m["platform"]["architecture"]=="s390x"][0]')
NBLOBS=$(ls "$IMG/blobs/sha256" | wc -l)

# 1. push (chunked: 8 MiB PATCHes for the 89 MB layer), then again: only HEADs
$REGCLI --stats push "$IMG" "$R/library/nginx:v1" >"$WORK/push1" 2>"$WORK/stats1" ||
	fail "push: $(cat "$WORK/push1" "$WORK/stats1")"
grep -q "manifest $INDEX" "$WORK/push1" || fail "push reported another manifest: $(cat "$WORK/push1")"
[ "$(count_requests plain PATCH library/nginx/blobs/uploads/)" -ge 10 ] ||
	fail "the large layer did not go in chunks"
before=$(wc -l <"$WORK/plain/log")
$REGCLI push "$IMG" "$R/library/nginx:v1" >"$WORK/push2" || fail "second push"
grep -q "^pushed 0 blobs, 5 already there" "$WORK/push2" || fail "second push sent blobs: $(cat "$WORK/push2")"
tail -n +"$((before + 1))" "$WORK/plain/log" >"$WORK/log2"
! grep -qE '"(POST|PATCH) /v2/' "$WORK/log2" || fail "second push started uploads"
[ "$(grep -c '"HEAD /v2/library/nginx/blobs/' "$WORK/log2")" -eq 5 ] || fail "not one HEAD a blob"

# 2. pull back: this machine's manifest (amd64 here), byte for byte
$REGCLI pull "$R/library/nginx:v1" "$WORK/out" >"$WORK/pull1" || fail "pull"
grep -q "manifest $AMD64 " "$WORK/pull1" || fail "pulled $(cat "$WORK/pull1"), not $AMD64"
same_blobs "$WORK/out" "$IMG"
[ "$(ls "$WORK/out/blobs/sha256" | wc -l)" -eq 4 ] || fail "pull left other files"
cmp -s "$WORK/out/blobs/sha256/${AMD64#sha256:}" "$IMG/blobs/sha256/${AMD64#sha256:}" ||
	fail "the pulled manifest's bytes differ"
# (into the same layout: the blobs it has are not fetched again)
$REGCLI --platform linux/s390x pull "$R/library/nginx:v1" "$WORK/out" | grep -q "manifest $S390X " ||
	fail "linux/s390x did not select its manifest"
expect_exit 1 $REGCLI --platform linux/arm64/v8 pull "$R/library/nginx:v1" "$WORK/out"
grep -q "linux/arm64/v8: no manifest for this platform in the index (it has: linux/s390x, linux/amd64)" \
	"$WORK/err.txt" || fail "missing platform: $(cat "$WORK/err.txt")"
$REGCLI --all pull "$R/library/nginx:v1" "$WORK/out" | grep -q "manifest $INDEX " || fail "--all"
same_blobs "$WORK/out" "$IMG"
[ "$(ls "$WORK/out/blobs/sha256" | wc -l)" -eq "$NBLOBS" ] || fail "--all pulled not all"

# 3. the docker:// transport backend, both ways
$REGCLI --transport push "$IMG" "$R/mirror/nginx:v1" >/dev/null || fail "transport push"
$REGCLI --transport pull "$R/mirror/nginx:v1" "$WORK/tout" | grep -q "manifest $AMD64 " ||
	fail "transport pull"
same_blobs "$WORK/tout" "$IMG"
$REGCLI --transport manifest "$R/mirror/nginx@$INDEX" | cmp -s - "$IMG/blobs/sha256/${INDEX#sha256:}" ||
	fail "transport: a manifest by digest"

# 4. skopeo reads what we pushed, to the byte
skopeo inspect --raw --tls-verify=false "docker://$R/library/nginx:v1" >"$WORK/skopeo.json" ||
	fail "skopeo inspect"
cmp -s "$WORK/skopeo.json" "$IMG/blobs/sha256/${INDEX#sha256:}" || fail "skopeo sees other bytes"
skopeo inspect --raw --tls-verify=false "docker://$R/mirror/nginx@$AMD64" >"$WORK/skopeo2.json"
cmp -s "$WORK/skopeo2.json" "$IMG/blobs/sha256/${AMD64#sha256:}" || fail "skopeo: amd64 manifest"

# 5. manifests, tags, blobs one by one
$REGCLI manifest --head "$R/library/nginx:v1" | grep -q "^$INDEX application/vnd.oci.image.index.v1+json " ||
	fail "manifest HEAD"
[ "$($REGCLI manifest --head "$R/library/nginx:nope")" = absent ] || fail "HEAD of a missing tag"
expect_exit 1 $REGCLI manifest "$R/library/nginx:nope"
grep -q "library/nginx:nope: manifest unknown" "$WORK/err.txt" || fail "$(cat "$WORK/err.txt")"
$REGCLI manifest "$R/library/nginx:v1" | cmp -s - "$IMG/blobs/sha256/${INDEX#sha256:}" ||
	fail "manifest GET bytes"
for t in v2 v3 latest; do
	$REGCLI push "$IMG" "$R/library/nginx:$t" >/dev/null
done
[ "$($REGCLI tags "$R/library/nginx" | sort | tr '\n' ' ')" = "latest v1 v2 v3 " ] || fail "tags"
CONFIG=$(json_get "$IMG/blobs/sha256/${AMD64#sha256:}" 'd["config"]["digest"]')
CSIZE=$(json_get "$IMG/blobs/sha256/${AMD64#sha256:}" 'd["config"]["size"]')
$REGCLI blob "$R/library/nginx@$CONFIG" "$CSIZE" | cmp -s - "$IMG/blobs/sha256/${CONFIG#sha256:}" ||
	fail "blob GET"
$REGCLI blob "$R/library/nginx@$CONFIG" "$CSIZE" 100 | cmp -s - <(tail -c +101 "$IMG/blobs/sha256/${CONFIG#sha256:}") ||
	fail "blob GET from an offset"
[ "$($REGCLI has "$R/library/nginx@$CONFIG")" = yes ] || fail "has"
[ "$($REGCLI has "$R/library/other@$CONFIG")" = no ] || fail "has (another repository)"

# 6. cross-repository mount: 201 when the source has it, else nothing left behind
[ "$($REGCLI mount "$R/team/copy@$CONFIG" library/nginx)" = mounted ] || fail "mount"
[ "$($REGCLI has "$R/team/copy@$CONFIG")" = yes ] || fail "mounted blob missing"
ABSENT=sha256:$(printf 'not here' | sha256sum | cut -d' ' -f1)
[ "$($REGCLI mount "$R/team/copy@$ABSENT" library/nginx)" = "not mounted" ] || fail "mount of nothing"
grep -q '"DELETE /v2/team/copy/blobs/uploads/' "$WORK/plain/log" || fail "the started upload stayed"

# 7. distribution 2.8 has no referrers API
expect_exit 3 $REGCLI referrers "$R/library/nginx@$INDEX"
grep -q "no referrers API" "$WORK/err.txt" || fail "referrers: $(cat "$WORK/err.txt")"
echo "registry_push_pull: ok"
