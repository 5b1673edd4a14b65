#!/bin/bash
# A hostile or broken registry (tests/tools/faultproxy.py in front of
# Debian's docker-registry): cut and truncated downloads resume with Range,
# wrong bytes, endless bodies, huge manifests and redirect loops end in
# clear errors naming the registry and the blob, in bounded time and
# memory; credentials never follow a redirect to another host; chunked
# uploads resume after a lost PATCH; a foreign upload Location is refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.inc"

reg_start up
U=$PORT_up
make_image "$WORK/img" 3000
$REGCLI push "$WORK/img" "127.0.0.1:$U/test/app:v1" >/dev/null || fail "push"
MAN=$(json_get "$WORK/img/index.json" 'd["manifests"][0]["digest"]')
MANFILE=$WORK/img/blobs/sha256/${MAN#sha256:}
LAYER=$(json_get "$MANFILE" 'd["layers"][0]["digest"]')
LSIZE=$(json_get "$MANFILE" 'd["layers"][0]["size"]')
CONFIG=$(json_get "$MANFILE" 'd["config"]["digest"]')
CSIZE=$(json_get "$MANFILE" 'd["config"]["size"]')

# cut once mid-blob: the pull resumes where it stopped
proxy_start cut "$U" --cut-blob "$LAYER:1000000"
$REGCLI pull "127.0.0.1:$PORT_cut/test/app:v1" "$WORK/p1" >/dev/null || fail "pull through a cut"
same_blobs "$WORK/p1" "$WORK/img"
grep -q "GET /v2/test/app/blobs/$LAYER range=bytes=1000000-" "$WORK/cut.log" ||
	fail "no Range request after the cut: $(cat "$WORK/cut.log")"

# cut every time (and the resumed answer ignores Range): gives up naming the
# blob, keeps what it got; a later run resumes from the .partial file
proxy_start trunc "$U" --truncate-blob "$LAYER:500000"
expect_exit 1 $REGCLI --retries 2 pull "127.0.0.1:$PORT_trunc/test/app:v1" "$WORK/p2"
grep -q "127.0.0.1:$PORT_trunc/test/app@$LAYER" "$WORK/err.txt" || fail "$(cat "$WORK/err.txt")"
[ "$(stat -c %s "$WORK/p2/blobs/sha256/${LAYER#sha256:}.partial")" -eq 500000 ] ||
	fail "the partial download was not kept"
$REGCLI pull "127.0.0.1:$U/test/app:v1" "$WORK/p2" >/dev/null 2>"$WORK/resume.txt" || fail "resume"
grep -q "resuming .*${LAYER#sha256:}.partial at 500000" "$WORK/resume.txt" || fail "did not resume"
same_blobs "$WORK/p2" "$WORK/img"

# other bytes than the digest says
proxy_start bad "$U" --corrupt-blob "$LAYER"
expect_exit 3 $REGCLI pull "127.0.0.1:$PORT_bad/test/app:v1" "$WORK/p3"
grep -q "127.0.0.1:$PORT_bad/test/app@$LAYER: the content does not match its digest" "$WORK/err.txt" ||
	fail "corrupt blob: $(cat "$WORK/err.txt")"

# an endless chunked body ends at the blob's size
proxy_start endless "$U" --endless-blob "$CONFIG"
start=$(date +%s)
expect_exit 3 $REGCLI blob "127.0.0.1:$PORT_endless/test/app@$CONFIG" "$CSIZE"
grep -q "test/app@$CONFIG: the registry sent more than its $CSIZE bytes" "$WORK/err.txt" ||
	fail "endless body: $(cat "$WORK/err.txt")"
[ $(($(date +%s) - start)) -lt 20 ] || fail "the endless body took too long"

# a manifest over 16 MiB: refused, memory bounded
proxy_start huge "$U" --huge-manifest v1
expect_exit 3 /usr/bin/time -f "maxrss %M" -o "$WORK/rss" $REGCLI manifest "127.0.0.1:$PORT_huge/test/app:v1"
grep -q "test/app:v1: the answer is larger than 16777216 bytes" "$WORK/err.txt" ||
	fail "huge manifest: $(cat "$WORK/err.txt")"
[ "$(awk '/maxrss/ {print $2}' "$WORK/rss")" -lt 100000 ] || fail "memory: $(cat "$WORK/rss")"

# redirect loops are cut
proxy_start loop "$U" --redirect-loop "$CONFIG"
expect_exit 3 $REGCLI blob "127.0.0.1:$PORT_loop/test/app@$CONFIG" "$CSIZE"
grep -q "test/app@$CONFIG: too many redirects" "$WORK/err.txt" || fail "loop: $(cat "$WORK/err.txt")"
[ "$(grep -c "GET /v2/test/app/blobs/$CONFIG" "$WORK/loop.log")" -le 6 ] || fail "loop not capped"

# a 307 to storage on another host: followed without the registry's credentials
proxy_start redir "$U" --require-basic "ann:pw-not-for-storage" --redirect-blob "$LAYER"
$REGCLI --creds ann:pw-not-for-storage pull "127.0.0.1:$PORT_redir/test/app:v1" "$WORK/p4" >/dev/null ||
	fail "pull through a redirect"
same_blobs "$WORK/p4" "$WORK/img"
grep -q "^storage GET /storage/$LAYER?repo=test/app auth=no" "$WORK/redir.log" ||
	fail "storage: $(grep storage "$WORK/redir.log")"
! grep -q "^storage .* auth=yes" "$WORK/redir.log" || fail "credentials went to another host"

# 503s are retried (not 401/403/404: see registry_auth)
proxy_start busy "$U" --fail 2
$REGCLI --stats manifest "127.0.0.1:$PORT_busy/test/app:v1" >/dev/null 2>"$WORK/busy.txt" ||
	fail "503 not retried"
grep -q "retries=2" "$WORK/busy.txt" || fail "$(cat "$WORK/busy.txt")"

# chunked uploads: a lost PATCH is resent from where the registry says it
# stopped; a PATCH cut mid-body (2.8 then drops the session) starts anew
proxy_start drop "$U" --drop-patch 2
$REGCLI --chunk-size 1048576 push "$WORK/img" "127.0.0.1:$PORT_drop/test/up1:v1" >/dev/null ||
	fail "push with a lost PATCH"
grep -A1 "^PATCH /v2/test/up1/blobs/uploads/" "$WORK/drop.log" | grep -q "^GET /v2/test/up1/blobs/uploads/" ||
	fail "no upload status asked: $(cat "$WORK/drop.log")"
proxy_start cutp "$U" --cut-patch 1
$REGCLI --chunk-size 1048576 push "$WORK/img" "127.0.0.1:$PORT_cutp/test/up2:v1" >/dev/null ||
	fail "push with a cut PATCH"
[ "$(grep -c "^POST /v2/test/up2/blobs/uploads/" "$WORK/cutp.log")" -eq 3 ] ||
	fail "the layer's upload did not start anew: $(cat "$WORK/cutp.log")"
for repo in up1 up2; do
	$REGCLI pull "127.0.0.1:$U/test/$repo:v1" "$WORK/$repo" >/dev/null || fail "pull $repo"
	same_blobs "$WORK/$repo" "$WORK/img"
done

# an upload Location on another host is refused
proxy_start foreign "$U" --foreign-location
expect_exit 1 $REGCLI push "$WORK/img" "127.0.0.1:$PORT_foreign/test/up3:v1"
grep -q "test/up3@sha256:.*: the upload location is on another host (refused)" "$WORK/err.txt" ||
	fail "foreign location: $(cat "$WORK/err.txt")"
! grep -q "elsewhere" "$WORK/foreign.log" || fail "a request went elsewhere"

# the referrers API, paged and filtered (a stub: 2.8 has none)
proxy_start refs "$U" --referrers
[ "$($REGCLI referrers "127.0.0.1:$PORT_refs/test/app@$MAN" | wc -l)" -eq 3 ] || fail "referrers pages"
[ "$($REGCLI referrers "127.0.0.1:$PORT_refs/test/app@$MAN" application/vnd.di3fs.delta.v1 | wc -l)" -eq 2 ] ||
	fail "referrers filter"
echo "registry_faults: ok"
