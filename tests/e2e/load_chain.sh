#!/bin/bash
# End-to-end: broken delta chains v1 -> v2 -> v3 -> v4 in the snapshotter.
# (a) `cdimg load` of v3 -> v4 while v3 is missing (v1 imported, v2
# loaded): exit 3, a message naming the missing base, nothing created; with
# v2 -> v3 loaded first it works and v4's files, 3 deltas deep, are right.
# (b) the v1 -> v2 blob in the snapshotter's store damaged in the patch of a
# file every step changes, before any v4 file was read: reading that file in
# v4 gives EIO, nothing is cached for it, and the log names the file and
# the damaged blob. (c) the same blob cut short, then a restart: the chain
# above it is not served, the log says why, and the daemon keeps serving.
# (m) v1 -> v4 merged from zstdref deltas (chain patches) loads over v1 and
# serves v4's files.
. "$(dirname "$0")/lib.sh"

CDIMG=${CDIMG:-$SRC/build/ctr-tools/cdimg}
[ -x "$CDIMG" ] || fail "no cdimg binary at $CDIMG"
"$CDIMG" --help | grep -q '^  load' || fail "cdimg was built without load (BUILD_SNAPSHOTTER=OFF?)"
MKOCI="python3 $SRC/tests/tools/mkoci.py"
LOAD="$CDIMG load -a $CSOCK -n $NS"

step() { echo "== $*"; }
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print(d" + sys.argv[2] + ")")' "$@"; }
cache_files() { find "$ROOT/cache/sha256" -type f 2>/dev/null | wc -l; }
restart_snapshotter() {
	stop_snapshotter
	start_snapshotter
	wait_for 30 $C snapshots --snapshotter di3fs ls || fail "containerd did not reconnect"
}
# tree_of CHAINID: the directory a view of the image's snapshot shows (for
# a delta image, its lazyfs tree); ctr's view itself is collected at once
tree_of() {
	$C snapshots --snapshotter di3fs view --mounts "v$RANDOM$RANDOM" "$1" | python3 -c '
import json, sys
m = [{k.lower(): v for k, v in x.items()} for x in json.load(sys.stdin)]
assert len(m) == 1 and m[0]["type"] == "bind", m
print(m[0]["source"])'
}
# read_errno FILE: "ok SHA256" or the errno name of the failed open/read
read_errno() { python3 "$SRC/tests/tools/readfile.py" "$1"; }

step "images v1..v4: usr/bin/tool patched at every step, etc/version rewritten"
mkdir -p "$WORK/t1/etc" "$WORK/t1/usr/bin"
python3 -c 'import random, sys; r = random.Random(3); open(sys.argv[1], "wb").write(bytes(r.randrange(16) for _ in range(300000)))' \
	"$WORK/t1/usr/bin/tool"
echo "version 1" >"$WORK/t1/etc/version"
echo "unchanged" >"$WORK/t1/etc/same"
for v in 2 3 4; do
	cp -a "$WORK/t$((v - 1))" "$WORK/t$v"
	printf 'step %d' "$v" | dd of="$WORK/t$v/usr/bin/tool" bs=1 seek=$((v * 1000)) conv=notrunc status=none
	echo "version $v" >"$WORK/t$v/etc/version"
done
for v in 1 2 3 4; do
	$MKOCI --ref example.org/chain:v$v "$WORK/t$v" "$WORK/c$v.tar" >/dev/null
done
for v in 2 3 4; do
	"$CDIMG" diff -q "$WORK/c$((v - 1)).tar" "$WORK/c$v.tar" -o "$WORK/d$((v - 1))$v.cdimg"
	"$CDIMG" show --json "$WORK/d$((v - 1))$v.cdimg" >"$WORK/show$v.json"
done
V3CFG=$(jget "$WORK/show4.json" '["cdimg"]["base"]["config_digest"]')
expect_eq "v3 -> v4's base is v2 -> v3's target" "$(jget "$WORK/show3.json" '["cdimg"]["target"]["config_digest"]')" "$V3CFG"
DIMG12=$(jget "$WORK/show2.json" '["cdimg"]["dimg_digest"]')

step "start; v1 imported through di3fs, v1 -> v2 loaded"
start_snapshotter
start_containerd
$C images import --snapshotter=di3fs "$WORK/c1.tar" >/dev/null
$LOAD "$WORK/d12.cdimg" >/dev/null || fail "loading v1 -> v2 failed"

step "(a) v3 -> v4 without v2 -> v3: exit 3, the missing base named, nothing created"
snaps=$(count_snapshots)
rc=0
$LOAD "$WORK/d34.cdimg" >/dev/null 2>"$WORK/err.txt" || rc=$?
cat "$WORK/err.txt"
expect_eq "exit code, middle of the chain missing" 3 "$rc"
grep -qF "d34.cdimg: its base image (config $V3CFG) is not in containerd's namespace \"$NS\"" "$WORK/err.txt" ||
	fail "message does not name the .cdimg, the missing base and the namespace: $(cat "$WORK/err.txt")"
grep -qF 'or, if it is a delta image, `cdimg load` the .cdimg that makes it' "$WORK/err.txt" ||
	fail "message does not say a delta image base is loaded with cdimg load: $(cat "$WORK/err.txt")"
expect_eq "images after the failed load" "example.org/chain:v1
example.org/chain:v2" "$($C images ls -q | sort)"
expect_eq "snapshots after the failed load" "$snaps" "$(count_snapshots)"
[ -z "$($C leases ls -q)" ] || fail "leases left behind: $($C leases ls)"

step "(a) with v2 -> v3 loaded first, v3 -> v4 loads over the delta image v3"
$LOAD --json "$WORK/d23.cdimg" >"$WORK/load3.json" || fail "loading v2 -> v3 failed"
$LOAD --json "$WORK/d34.cdimg" >"$WORK/load4.json" || fail "loading v3 -> v4 over the delta image v3 failed"
ID3=$(jget "$WORK/load3.json" '["chain_id"]')
ID4=$(jget "$WORK/load4.json" '["chain_id"]')
$C snapshots --snapshotter di3fs ls | grep -Eq "^$ID4 +$ID3 +Committed" ||
	fail "v4 is not a committed snapshot over v3: $($C snapshots --snapshotter di3fs ls)"
T4=$(tree_of "$ID4")
for f in usr/bin/tool etc/version etc/same; do
	cmp "$T4/$f" "$WORK/t4/$f" || fail "v4 $f, 3 deltas deep, differs"
done
# tool of v2, v3 and v4 rebuilt (intermediates cached), and version of v4
[ "$(cache_files)" -ge 3 ] || fail "only $(cache_files) files rebuilt for a file 3 deltas deep"

step "(m) v1 -> v4 merged from zstdref deltas (chain patches), loaded over v1 in another namespace"
for v in 2 3 4; do
	"$CDIMG" diff -q --codecs zstdref "$WORK/c$((v - 1)).tar" "$WORK/c$v.tar" -o "$WORK/z$((v - 1))$v.cdimg"
done
"$CDIMG" merge --json "$WORK/z12.cdimg" "$WORK/z23.cdimg" "$WORK/z34.cdimg" -o "$WORK/m14.cdimg" >"$WORK/m14.json"
[ "$(jget "$WORK/m14.json" '["patches"]["chain"]')" -ge 1 ] || fail "the merged delta has no chain patch"
C2="timeout 180 ctr -a $CSOCK -n $NS-m"
$C2 images import --snapshotter=di3fs "$WORK/c1.tar" >/dev/null
$CDIMG load -a "$CSOCK" -n "$NS-m" --json "$WORK/m14.cdimg" >"$WORK/loadm.json" ||
	fail "loading the merged v1 -> v4 delta failed"
IDM=$(jget "$WORK/loadm.json" '["chain_id"]')
TM=$($C2 snapshots --snapshotter di3fs view --mounts "v$RANDOM$RANDOM" "$IDM" | python3 -c '
import json, sys
m = [{k.lower(): v for k, v in x.items()} for x in json.load(sys.stdin)]
assert len(m) == 1 and m[0]["type"] == "bind", m
print(m[0]["source"])')
for f in usr/bin/tool etc/version etc/same; do
	cmp "$TM/$f" "$WORK/t4/$f" || fail "merged v4 $f (a chain patch over v1) differs"
done
$C2 images rm example.org/chain:v1 example.org/chain:v4 >/dev/null

step "(b) v1 -> v2's stored blob damaged in tool's patch, before any read: EIO, nothing cached, named"
BLOB12=$ROOT/deltas/sha256/${DIMG12#sha256:}
[ -f "$BLOB12" ] || fail "no stored blob $BLOB12"
off=$("$CDIMG" show --json "$BLOB12" | python3 -c '
import json, sys
e = {e["path"]: e for e in json.load(sys.stdin)["stored_entries"]}["usr/bin/tool"]
assert e["payload"] == "patch", e
print(e["blob_offset"] + e["blob_size"] // 2)')
stop_snapshotter
rm -rf "$ROOT/cache/sha256"
cp "$BLOB12" "$WORK/blob12.good"
printf '\xff' | dd of="$BLOB12" bs=1 seek="$off" conv=notrunc status=none
cmp -s "$BLOB12" "$WORK/blob12.good" && fail "the damage changed nothing"
: >"$WORK/snap.log"
restart_snapshotter
T4=$(tree_of "$ID4")
for i in 1 2; do
	expect_eq "v4 tool through a damaged v2 patch, read $i" EIO "$(read_errno "$T4/usr/bin/tool")"
done
tool_shas=$(for v in 2 3 4; do sha256sum <"$WORK/t$v/usr/bin/tool" | cut -d' ' -f1; done)
for s in $tool_shas; do
	[ ! -e "$ROOT/cache/sha256/${s:0:2}/$s" ] || fail "a version of tool was cached through a damaged patch"
done
[ -z "$(ls -A "$ROOT/cache/tmp")" ] || fail "a failed rebuild left a temp file"
grep -F "(delta $BLOB12): usr/bin/tool: rebuild failed: Bad message" "$WORK/snap.log" ||
	fail "the log does not name the damaged blob and the file: $(grep error "$WORK/snap.log")"
grep -F "usr/bin/tool: rebuild failed: its base file usr/bin/tool in image" "$WORK/snap.log" | grep -qF "(delta $BLOB12)" ||
	fail "v3's or v4's log line does not point at the damaged blob: $(grep error "$WORK/snap.log")"
expect_eq "v4 etc/version (no damaged patch needed)" "version 4" "$(cat "$T4/etc/version")"

step "(c) the blob cut short, then a restart: the chain above it is not served, the daemon is"
head -c 200 "$WORK/blob12.good" >"$BLOB12"
: >"$WORK/snap.log"
restart_snapshotter
grep -F "${DIMG12#sha256:}" "$WORK/snap.log" | grep -q error ||
	fail "the log does not name the cut blob: $(cat "$WORK/snap.log")"
"$SNAPCTL" --address "$SOCK" list >/dev/null 2>&1 || fail "the daemon stopped serving"
ID3N=$(grep error "$WORK/snap.log" | grep -o '(id [0-9]*, sha256:[0-9a-f]*)' | grep -v "${DIMG12#sha256:}" | head -n1)
[ -n "$ID3N" ] || fail "the log does not name the delta images above the cut blob: $(cat "$WORK/snap.log")"
grep -F "$ID3N: its parent delta image is not served" "$WORK/snap.log" >/dev/null ||
	fail "the log does not say the chain above fails for its parent: $(grep error "$WORK/snap.log")"
grep -F "$ID3N: cannot open the delta" "$WORK/snap.log" &&
	fail "the log blames a good delta above the cut blob"
got=$(read_errno "$(tree_of "$ID4" 2>/dev/null || echo "$WORK/none")/usr/bin/tool")
[ "${got%% *}" != ok ] || fail "v4 tool read through a cut v2 blob: $got"
echo "   reading v4 with v2's blob cut: $got"
grep error "$WORK/snap.log" | sed 's/^/   log: /' | head -n 5

step "stop"
stop_containerd
stop_snapshotter TERM
echo "PASS"
