#!/bin/bash
# cdimg copy with docker:// (Debian's docker-registry on loopback): an
# index of two platforms pushed whole and pulled back with the same digests
# (skopeo agrees), a second push sends no blob, a copy to another
# repository of the same registry mounts every blob, a pull cut every time
# at 500000 bytes fails and keeps its partial download in the cache, which
# the next run resumes from there; bytes that do not match are exit 3
# naming the blob, nothing written, the bad blob not kept; cdimg diff
# reads docker://.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.inc"
command -v skopeo >/dev/null || fail "skopeo is not installed: run install/deps.sh"

reg_start up
U=$PORT_up
R=127.0.0.1:$U
IMG=$(nginx_layout)
make_image "$WORK/small" 3000
digest() {
	skopeo inspect --tls-verify=false --raw "$1" | sha256sum | cut -d' ' -f1
}

# An index, whole, both ways.
"$CDIMG" copy --json --all-platforms "oci:$IMG" "docker://$R/lib/nginx:v1" >"$WORK/push.json"
copy_summary "$WORK/push.json" copied=4 existing=0
[ "$(digest "docker://$R/lib/nginx:v1")" = "$(digest "oci:$IMG")" ] || fail "the pushed index differs"
"$CDIMG" copy --json --all-platforms "oci:$IMG" "docker://$R/lib/nginx:v1" >"$WORK/push2.json"
copy_summary "$WORK/push2.json" copied=0 existing=4
"$CDIMG" copy -q --all-platforms "docker://$R/lib/nginx:v1" "oci:$WORK/back"
same_blobs "$WORK/back" "$IMG"
[ "$(digest "oci:$WORK/back")" = "$(digest "oci:$IMG")" ] || fail "the pulled index differs"
"$CDIMG" copy -q "docker://$R/lib/nginx:v1" "oci-archive:$WORK/host.tar"
INDEX=$(json_get "$IMG/index.json" 'd["manifests"][0]["digest"]')
AMD64=$(json_get "$IMG/blobs/sha256/${INDEX#sha256:}" \
	'[m["digest"] for m in d["manifests"] if m["platform"]["architecture"] == "amd64"][0]')
[ "sha256:$(digest "oci-archive:$WORK/host.tar")" = "$AMD64" ] || fail "not this machine's manifest"

# Another repository of the same registry: mounted, not sent.
"$CDIMG" copy --json --all-platforms "docker://$R/lib/nginx:v1" "docker://$R/mirror/nginx:v1" >"$WORK/m.json"
copy_summary "$WORK/m.json" mounted=4 copied=0
[ "$(count_requests up POST mirror/nginx/blobs/uploads/?mount=)" -ge 4 ] || fail "no mount requests"
[ "$(count_requests up PATCH mirror/nginx/blobs/uploads/)" -eq 0 ] || fail "blobs were uploaded"

# Resumable downloads: cut every time at 500000 bytes, then complete.
"$CDIMG" copy -q "oci:$WORK/small" "docker://$R/test/app:v1"
MAN=$(json_get "$WORK/small/index.json" 'd["manifests"][0]["digest"]')
LAYER=$(json_get "$WORK/small/blobs/sha256/${MAN#sha256:}" 'd["layers"][0]["digest"]')
proxy_start trunc "$U" --truncate-blob "$LAYER:500000"
C=$WORK/cache
expect_exit 1 "$CDIMG" copy --cache-dir "$C" "docker://127.0.0.1:$PORT_trunc/test/app:v1" "oci:$WORK/p"
grep -q "$LAYER" "$WORK/err.txt" || fail "the cut blob is not named: $(cat "$WORK/err.txt")"
[ ! -e "$WORK/p" ] || fail "a failed pull left a layout"
part=$C/sha256/${LAYER#sha256:}.partial
have=$(stat -c %s "$part") || fail "no partial download kept"
[ "$have" -ge 500000 ] || fail "the partial download holds $have bytes"
"$CDIMG" copy --json --cache-dir "$C" "docker://$R/test/app:v1" "oci:$WORK/p" >"$WORK/r.json"
copy_summary "$WORK/r.json" resumed_bytes="$have"
grep -q "\"status\":\"copied\",\"resumed\":$have,\"digest\":\"$LAYER\"" "$WORK/r.json" ||
	fail "the layer's event does not say it resumed"
same_blobs "$WORK/p" "$WORK/small"
[ -z "$(ls "$C/sha256")" ] || fail "the cache kept blobs after the copy: $(ls "$C/sha256")"

# Wrong bytes: exit 3 naming the blob, nothing kept.
proxy_start bad "$U" --corrupt-blob "$LAYER"
expect_exit 3 "$CDIMG" copy --cache-dir "$C" "docker://127.0.0.1:$PORT_bad/test/app:v1" "oci:$WORK/q"
grep -q "$LAYER" "$WORK/err.txt" || fail "the corrupt blob is not named: $(cat "$WORK/err.txt")"
[ ! -e "$WORK/q" ] || fail "a corrupt pull left a layout"
ls "$C/sha256" | grep -q "${LAYER#sha256:}" && fail "the cache kept the corrupt blob"
# (blobs that checked stay for the next run, and go once a copy commits)
"$CDIMG" copy -q --cache-dir "$C" "docker://$R/test/app:v1" "oci:$WORK/q"
[ -z "$(ls "$C/sha256")" ] || fail "the cache kept blobs after the copy: $(ls "$C/sha256")"

# diff reads images from a registry.
"$CDIMG" diff -q "docker://$R/test/app:v1" "oci:$WORK/small" -o "$WORK/d.dimg"
"$CDIMG" diff -q "$WORK/small" "$WORK/small" -o "$WORK/d2.dimg"
cmp "$WORK/d.dimg" "$WORK/d2.dimg" || fail "diff by docker:// and by path differ"
echo "copy_registry: ok"
