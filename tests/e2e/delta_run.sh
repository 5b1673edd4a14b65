#!/bin/bash
# End-to-end, the product's main path: a base image imported normally into
# di3fs, a .cdimg loaded with `cdimg load` (through containerd's own API),
# and containers run from the delta image at once, files rebuilt lazily.
# The same target imported in full into containerd's overlayfs snapshotter
# is the reference: both must print the same checksums and metadata.
# Also: laziness, writes, kill -9 + restart, 8 parallel containers, Usage,
# removal and garbage collection.
. "$(dirname "$0")/lib.sh"

CDIMG=${CDIMG:-$(dirname "$SNAPSHOTTER")/../ctr-tools/cdimg}
[ -x "$CDIMG" ] || fail "no cdimg binary at $CDIMG"
for tool in getfattr setfattr bc; do
	command -v $tool >/dev/null || skip "$tool is not installed (install/deps.sh)"
done
TREES=${DI3FS_TREES:-/var/cache/di3fs/trees}
bash "$SRC/tests/assets/mktrees.sh" --out "$TREES" nginx >/dev/null
MKOCI="python3 $SRC/tests/tools/mkoci.py"
IMG=example.org/nginx:v2
FULL=example.org/nginx:v2-full
RUN="$C run --rm --snapshotter=di3fs"

step() { echo "== $*"; }
cache_count() { find "$ROOT/cache/sha256" -type f 2>/dev/null | wc -l; }
# restarts the daemon (kill signal $1, default TERM) and waits until
# containerd's connection to it is back
restart_snapshotter() {
	stop_snapshotter "${1:-TERM}"
	start_snapshotter
	wait_for 30 $C snapshots --snapshotter di3fs ls || fail "containerd did not reconnect"
}

step "build the base and target images (target: nginx v2 + rename, setuid, capability, hardlink)"
V1=$TREES/nginx-v1
V2=$WORK/v2tree
cp -al "$TREES/nginx-v2" "$V2"
# new inodes for everything changed here: the cached trees stay untouched
mv "$V2/usr/share/doc/nginx/copyright" "$V2/usr/share/doc/nginx/copyright.renamed"
cp "$V2/bin/cat" "$V2/usr/local/bin/capcat"
setfattr -n security.capability \
	-v 0x0100000202000000000000000000000000000000 "$V2/usr/local/bin/capcat" # cap_dac_override+ep
cp "$V2/etc/debian_version" "$V2/etc/hardlinked"
ln "$V2/etc/hardlinked" "$V2/etc/hardlinked2"
# a dozen more changed files, so that "one read, one rebuilt" means something
for f in $(cd "$V2" && find usr/share/doc -name copyright | sort | head -n 12); do
	{ cat "$V2/$f"; echo "changed in v2"; } >"$V2/$f.new"
	touch -r "$V2/$f" "$V2/$f.new"
	mv "$V2/$f.new" "$V2/$f"
done
printf 'secret\n' >"$V2/etc/only-root"
chmod 600 "$V2/etc/only-root"
$MKOCI --ref example.org/nginx:v1 "$V1" "$WORK/v1.tar" >/dev/null
$MKOCI --ref "$IMG" "$V2" "$WORK/v2.tar" >/dev/null
"$CDIMG" diff "$WORK/v1.tar" "$WORK/v2.tar" -o "$WORK/d.cdimg" >/dev/null
echo "   delta: $(stat -c %s "$WORK/d.cdimg") bytes for a $(stat -c %s "$WORK/v2.tar")-byte image"

step "start the snapshotter and a private containerd; import the base through di3fs"
start_snapshotter
start_containerd
$C images import --snapshotter=di3fs "$WORK/v1.tar" >/dev/null
[ "$(cache_count)" -eq 0 ] || fail "cache not empty before any load"

step "cdimg load: the image record and a committed delta snapshot, through containerd"
t0=$(date +%s.%N)
"$CDIMG" load "$WORK/d.cdimg" --address "$CSOCK" --namespace "$NS" >"$WORK/load.out" ||
	fail "cdimg load failed: $(cat "$WORK/load.out")"
t1=$(date +%s.%N)
echo "   cdimg load took $(echo "$t1 - $t0" | bc) s"
$C images ls -q | grep -qx "$IMG" || fail "$IMG not listed after load"
$C snapshots --snapshotter di3fs ls | grep -q Committed || fail "no committed snapshots"
[ "$(cache_count)" -eq 0 ] || fail "loading rebuilt files: $(cache_count) in the cache"
ls "$ROOT/deltas/sha256" | grep -q . || fail "the delta blob did not reach the snapshotter's store"

step "the reference: the same target imported in full into overlayfs"
$MKOCI --ref "$FULL" "$V2" "$WORK/v2full.tar" >/dev/null
$C images import "$WORK/v2full.tar" >/dev/null
$C images ls -q | grep -qx "$FULL" || fail "reference image $FULL missing"

SCRIPT='sha256sum /usr/sbin/nginx /usr/share/doc/nginx/copyright.renamed /etc/debian_version /usr/bin/passwd
stat -c "%n %a %u:%g %h" /usr/bin/passwd /etc/hardlinked /etc/hardlinked2 /usr/local/bin/capcat /etc/only-root
ls /usr/share/doc/nginx | head -n 5
test -e /usr/share/doc/nginx/copyright && echo copyright-present || echo copyright-absent'
# as uid 65534: plain cat is refused the 0600 file, capcat (cap_dac_override+ep) reads it
CAPTEST='drop="setpriv --reuid=65534 --regid=65534 --clear-groups"
$drop /usr/local/bin/capcat /etc/only-root 2>/dev/null || echo capcat-denied
$drop cat /etc/only-root 2>/dev/null || echo cat-denied'

step "a container from the delta image prints what the full image prints"
got=$($RUN "$IMG" d1 sh -c "$SCRIPT")
want=$($C run --rm --snapshotter=overlayfs "$FULL" f1 sh -c "$SCRIPT")
expect_eq "delta vs full image" "$want" "$got"
echo "$got" | grep -q "passwd 4755 0:0 1" ||
	fail "setuid bit of /usr/bin/passwd lost: $got"
echo "$got" | grep -q "/etc/hardlinked 644 0:0 2" || fail "hardlink count wrong: $got"
got=$($RUN "$IMG" d2 sh -c "$CAPTEST")
want=$($C run --rm --snapshotter=overlayfs "$FULL" f2 sh -c "$CAPTEST")
expect_eq "file capability at work (delta vs full)" "$want" "$got"
expect_eq "file capability at work" "secret
cat-denied" "$got"
tree=$(ls -d "$ROOT"/fuse/* | head -n1)
[ -d "$tree" ] || fail "no delta tree under $ROOT/fuse"
cap=$(getfattr --absolute-names -e hex -n security.capability "$tree/usr/local/bin/capcat" |
	sed -n 's/^security.capability=//p')
expect_eq "capability xattr in the lazy tree" 0x0100000202000000000000000000000000000000 "$cap"

step "laziness: one changed file read, one file rebuilt"
rm -rf "$ROOT/cache/sha256"/* 2>/dev/null || true
# a fresh daemon has no open handles on what we just deleted
restart_snapshotter
before=$(cache_count)
$RUN "$IMG" l1 sha256sum /usr/sbin/nginx >/dev/null
after=$(cache_count)
want_sha=$(sha256sum "$V2/usr/sbin/nginx" | cut -d' ' -f1)
[ -f "$ROOT/cache/sha256/${want_sha:0:2}/$want_sha" ] || fail "nginx was not rebuilt into the cache"
changed=$("$CDIMG" show "$WORK/d.cdimg" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(1 for e in d["stored_entries"] if e.get("payload") in ("full", "patch")))')
echo "   cache files: $before before, $after after; $changed files need a rebuild in all"
[ "$after" -le $((before + 2)) ] || fail "reading one file rebuilt $((after - before)) files"
[ "$changed" -ge 10 ] || fail "the delta has only $changed rebuilt files: the laziness check proves nothing"

step "writes land in the container's upper dir, never in the cache or the base"
$C run --snapshotter=di3fs "$IMG" w1 sh -c \
	'echo overwritten >/usr/sbin/nginx && echo new >/etc/w1-was-here'
upper=$(dirname "$(dirname "$(ls "$ROOT"/snapshots/*/fs/etc/w1-was-here)")")
[ "$(cat "$upper/usr/sbin/nginx")" = overwritten ] || fail "write did not land in $upper"
expect_eq "cached nginx after the write" "$want_sha" \
	"$(sha256sum "$ROOT/cache/sha256/${want_sha:0:2}/$want_sha" | cut -d' ' -f1)"
expect_eq "lazy tree's nginx after the write" "$want_sha" \
	"$(sha256sum "$tree/usr/sbin/nginx" | cut -d' ' -f1)"
for f in "$ROOT"/snapshots/*/fs/usr/sbin/nginx; do
	[ "$f" = "$upper/usr/sbin/nginx" ] || cmp -s "$f" "$V1/usr/sbin/nginx" ||
		fail "the base layer's nginx ($f) changed"
done
$C tasks rm w1 >/dev/null 2>&1 || true
$C containers rm w1 >/dev/null

step "kill -9 the daemon while a container runs; restart; a new container works"
$C run -d --snapshotter=di3fs "$IMG" k1 sleep 600 >/dev/null
restart_snapshotter KILL
got=$($RUN "$IMG" k2 sha256sum /usr/sbin/nginx | cut -d' ' -f1)
expect_eq "nginx after kill -9 and restart" "$want_sha" "$got"
$C tasks kill -s SIGKILL k1 >/dev/null 2>&1 || true
sleep 1
$C tasks rm -f k1 >/dev/null 2>&1 || true
$C containers rm k1 >/dev/null 2>&1 || true

step "8 containers started in parallel from the delta image"
pids=
for i in 1 2 3 4 5 6 7 8; do
	$RUN "$IMG" p$i sha256sum /usr/sbin/nginx /usr/share/doc/nginx/copyright.renamed \
		>"$WORK/p$i.out" 2>&1 &
	pids="$pids $!"
done
wait $pids # not a bare wait: containerd and the daemon are children too
for i in 1 2 3 4 5 6 7 8; do
	head -n1 "$WORK/p$i.out" | grep -q "^$want_sha " || fail "parallel container $i: $(cat "$WORK/p$i.out")"
done

step "a chain: v2 -> v3 loaded over the delta image v2; v3's files rebuilt through v1 -> v2 -> v3"
V3=$WORK/v3tree
cp -al "$V2" "$V3"
rm "$V3/usr/sbin/nginx" "$V3/etc/debian_version"
{ cat "$V2/usr/sbin/nginx"; printf 'v3 tail'; } >"$V3/usr/sbin/nginx"
chmod 755 "$V3/usr/sbin/nginx"
printf '12.99\n' >"$V3/etc/debian_version"
$MKOCI --ref example.org/nginx:v3 "$V3" "$WORK/v3.tar" >/dev/null
"$CDIMG" diff "$WORK/v2.tar" "$WORK/v3.tar" -o "$WORK/d23.cdimg" >/dev/null
"$CDIMG" load "$WORK/d23.cdimg" --address "$CSOCK" --namespace "$NS" >/dev/null ||
	fail "loading v2 -> v3 over the delta image v2 failed"
rm -rf "$ROOT/cache/sha256"/*
restart_snapshotter
want3=$(cd "$V3" && sha256sum usr/sbin/nginx etc/debian_version usr/share/doc/nginx/copyright.renamed)
got3=$($RUN example.org/nginx:v3 c3 sh -c 'cd / && sha256sum usr/sbin/nginx etc/debian_version usr/share/doc/nginx/copyright.renamed')
expect_eq "v3 through the chain" "$want3" "$got3"
sha2=$(sha256sum "$V2/usr/sbin/nginx" | cut -d' ' -f1)
[ -f "$ROOT/cache/sha256/${sha2:0:2}/$sha2" ] || fail "the intermediate v2 nginx was not cached"
$C images rm --sync "$IMG" >/dev/null
got3=$($RUN example.org/nginx:v3 c4 sha256sum /usr/sbin/nginx | cut -d' ' -f1)
expect_eq "v3 after removing the v2 image it builds on" "$(sha256sum "$V3/usr/sbin/nginx" | cut -d' ' -f1)" "$got3"

step "Usage of the delta image is its .dimg on disk"
top=$(grep -o 'rpc Commit key="[^"]*" name="[^"]*"' "$WORK/snap.log" | tail -n1 |
	sed 's/.* name="\([^"]*\)"$/\1/')
usage=$("$SNAPCTL" --address "$SOCK" usage "$top")
size=$(echo "$usage" | sed -n 's/^size=\([0-9]*\) .*/\1/p')
[ "${size:-0}" -gt 0 ] || fail "usage of the delta image: $usage"

step "remove the images: GC takes the delta snapshot, its tree and its blob"
$C images rm --sync example.org/nginx:v3 "$FULL" >/dev/null
$C images rm --sync example.org/nginx:v1 >/dev/null
wait_for 30 sh -c "[ -z \"\$($C snapshots --snapshotter di3fs ls | tail -n +2)\" ]" ||
	fail "snapshots left after GC: $($C snapshots --snapshotter di3fs ls)"
wait_for 30 sh -c "[ -z \"\$(ls $ROOT/deltas/sha256)\" ]" || fail "delta blob left after GC"
[ -z "$(ls "$ROOT/fuse")" ] || fail "delta tree still served after GC: $(ls "$ROOT/fuse")"
echo "PASS"
