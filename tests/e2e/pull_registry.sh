#!/bin/bash
# End-to-end: cdimg pull from Debian's docker-registry (no referrers API:
# the referrers tag schema) into a private containerd with di3fs. v1, v2, v3
# of a busybox image and the deltas v1->v2, v2->v3 are in the registry.
# - A device holding v1, pulling v3: the plan is the 2-hop chain (found
#   through the tags), but unsigned deltas are not taken without
#   --insecure-unsigned (the dry run says so and chooses the layers).
# - With --insecure-unsigned: it fetches the two deltas (bytes within the
#   .cdimg sizes + 10 KiB), loads them hop by hop, and the container runs v3.
# - Pulling again: "present", nothing fetched.
# - A device holding nothing: the layers; by digest alone, named so.
# - A delta blob damaged in the registry: refused, naming the artifact, and
#   the layers are pulled instead; nothing of the delta reaches containerd.
. "$(dirname "$0")/lib.sh"
REGCLI=${REGCLI:-$(dirname "$SNAPSHOTTER")/../tests/tools/regcli}
. "$SRC/tests/integration/registry.inc"
# registry.inc's trap would drop e2e_cleanup's: stop the registry, then it
trap 'rc=$?; for p in $PIDS; do kill "$p" 2>/dev/null; done; (exit $rc); e2e_cleanup' EXIT

CDIMG=${CDIMG:-$(dirname "$SNAPSHOTTER")/../ctr-tools/cdimg}
[ -x "$CDIMG" ] || fail "no cdimg binary at $CDIMG"
command -v busybox >/dev/null 2>&1 || skip "busybox is not installed (install/deps.sh)"
step() { echo "== $*"; }
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d[sys.argv[2]])' "$@"; }

step "a registry with v1, v2, v3 and the deltas v1->v2, v2->v3"
reg_start reg
R=127.0.0.1:$PORT_reg
t=$WORK/trees
mkdir -p "$t/v1/bin" "$t/v1/etc" "$t/v1/opt"
cp "$(command -v busybox)" "$t/v1/bin/busybox"
for applet in sh cat echo ls sha256sum; do ln -s busybox "$t/v1/bin/$applet"; done
head -c 2000000 /dev/urandom >"$t/v1/opt/data"
echo "version 1" >"$t/v1/etc/version"
cp -a "$t/v1" "$t/v2"
echo "version 2" >"$t/v2/etc/version"
printf 'patched2' | dd of="$t/v2/opt/data" bs=1 seek=5000 conv=notrunc status=none
cp -a "$t/v2" "$t/v3"
echo "version 3" >"$t/v3/etc/version"
echo "new in v3" >"$t/v3/etc/added"
printf 'patched3' | dd of="$t/v3/opt/data" bs=1 seek=900000 conv=notrunc status=none
for v in v1 v2 v3; do
	python3 "$SRC/tests/tools/mkoci.py" --ref "$R/app:$v" "$t/$v" "$WORK/$v.tar" >/dev/null
	"$CDIMG" copy -q "oci-archive:$WORK/$v.tar" "docker://$R/app:$v"
done
"$CDIMG" diff -q "$WORK/v1.tar" "$WORK/v2.tar" -o "$WORK/d12.cdimg"
"$CDIMG" diff -q "$WORK/v2.tar" "$WORK/v3.tar" -o "$WORK/d23.cdimg"
"$CDIMG" push -q "$WORK/d12.cdimg" "docker://$R/app"
"$CDIMG" push -q "$WORK/d23.cdimg" "docker://$R/app"
CHAIN=$(($(stat -c %s "$WORK/d12.cdimg") + $(stat -c %s "$WORK/d23.cdimg")))
echo "   deltas: $CHAIN bytes of .cdimg; v3 is $(stat -c %s "$WORK/v3.tar") bytes"

step "the device holds v1 (imported into di3fs)"
start_snapshotter
start_containerd
$C images import --snapshotter=di3fs "$WORK/v1.tar" >/dev/null
PULL=("$CDIMG" pull --address "$CSOCK" --namespace "$NS" --cache "$WORK/cache")

step "dry run without --insecure-unsigned: the chain is planned, the layers chosen"
"${PULL[@]}" --dry-run --json "docker://$R/app:v3" >"$WORK/dry.json"
python3 - "$WORK/dry.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
assert p["way"] == "layers" and "unsigned" in p["why"], p
assert len(p["deltas"]) == 2 and p["dry_run"] and p["fetched_bytes"] == 0, p
assert p["deltas_found"] >= 2 and p["deltas_skipped"] == 0, p
assert 0 < p["delta_bytes"] < p["layers_bytes"], p
PY
$C images ls -q | grep -qx "$R/app:v3" && fail "a dry run pulled the image"

step "with --insecure-unsigned: two deltas fetched, loaded hop by hop, v3 runs"
"${PULL[@]}" --insecure-unsigned --json "docker://$R/app:v3" >"$WORK/pull.json" ||
	fail "pull failed: $(cat "$WORK/pull.json")"
python3 - "$WORK/pull.json" "$CHAIN" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
chain = int(sys.argv[2])
assert p["way"] == "delta" and p["ok"] and len(p["deltas"]) == 2, p
# the .cdimg files hold the target manifests and configs too; the registry
# path fetches those and the artifact manifests: within 10 KiB
assert p["fetched_bytes"] <= chain + 10240, (p["fetched_bytes"], chain)
assert p["fetched_bytes"] >= p["delta_bytes"] - 10240, p
print("   fetched %d bytes for a %d-byte chain of .cdimg (layers: %d bytes)"
      % (p["fetched_bytes"], chain, p["layers_bytes"]))
PY
$C images ls -q | grep -qx "$R/app:v3" || fail "$R/app:v3 not listed after the pull"
out=$($C run --rm --snapshotter=di3fs "$R/app:v3" pull-v3 cat /etc/version /etc/added)
expect_eq "v3's files" "version 3
new in v3" "$out"
want=$(sha256sum <"$t/v3/opt/data" | cut -c1-64)
got=$($C run --rm --snapshotter=di3fs "$R/app:v3" pull-v3b sha256sum /opt/data | cut -c1-64)
expect_eq "v3's /opt/data" "$want" "$got"

step "pulling again: present, nothing fetched"
"${PULL[@]}" --insecure-unsigned --json "docker://$R/app:v3" >"$WORK/again.json"
[ "$(jget "$WORK/again.json" way)" = present ] || fail "second pull: $(cat "$WORK/again.json")"
[ "$(jget "$WORK/again.json" fetched_bytes)" = 0 ] || fail "second pull fetched bytes"

step "a device holding nothing: the layers"
NS2=$NS-empty
"$CDIMG" pull --address "$CSOCK" --namespace "$NS2" --cache "$WORK/cache2" --insecure-unsigned \
	--json "docker://$R/app:v2" >"$WORK/empty.json" || fail "pull into $NS2 failed"
python3 - "$WORK/empty.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
assert p["way"] == "layers" and p["deltas"] == [] and p["ok"], p
# the layers, their config and the manifest
assert 0 < p["layers_bytes"] <= p["fetched_bytes"] <= p["layers_bytes"] + 10240, p
PY
ctr -a "$CSOCK" -n "$NS2" images ls -q | grep -qx "$R/app:v2" || fail "no $R/app:v2 in $NS2"

step "by digest alone: the image is named HOST/REPO@DIGEST"
V3D=$(jget "$WORK/dry.json" manifest)
"$CDIMG" pull -q --address "$CSOCK" --namespace "$NS2" --cache "$WORK/cache2" \
	"docker://$R/app@$V3D" || fail "pull by digest failed"
ctr -a "$CSOCK" -n "$NS2" images ls -q | grep -qx "$R/app@$V3D" || fail "no $R/app@$V3D in $NS2"

step "a damaged delta blob in the registry: refused, the layers instead"
$C images rm "$R/app:v3" >/dev/null
dimg=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["cdimg"]["dimg_digest"])' \
	< <("$CDIMG" show --json "$WORK/d23.cdimg"))
data=$WORK/reg/data/docker/registry/v2/blobs/sha256/${dimg:7:2}/${dimg#sha256:}/data
[ -f "$data" ] || fail "no blob file $data"
python3 - "$data" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0x40
open(sys.argv[1], "wb").write(b)
PY
"${PULL[@]}" --insecure-unsigned --cache "$WORK/cache3" "docker://$R/app:v3" \
	>"$WORK/bad.out" 2>"$WORK/bad.err" || fail "pull failed: $(cat "$WORK/bad.err")"
grep -q "$R/app" "$WORK/bad.err" || fail "the refusal does not name the repository: $(cat "$WORK/bad.err")"
grep -q "layers instead" "$WORK/bad.err" || fail "no fallback said: $(cat "$WORK/bad.err")"
out=$($C run --rm --snapshotter=di3fs "$R/app:v3" pull-v3c cat /etc/version)
expect_eq "v3 after the fallback" "version 3" "$out"
echo "pull_registry: ok"
