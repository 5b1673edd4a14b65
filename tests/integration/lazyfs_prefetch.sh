#!/bin/bash
# Prefetch (di3fs-lazymount --control "prefetch NAME PATH"): an image made
# of this machine's /bin/ls and the libraries it links, every one changed
# by the delta, laid out merged-/usr style (lib -> usr/lib, lib64 a link to
# the interpreter). Prefetching /usr/bin/ls rebuilds into the cache exactly
# ls, its interpreter and its libraries, reached through the image's own
# symlinks, before anything opens them; a first open then rebuilds nothing.
# A changed data file stays out. A corrupt ELF seed and a symlink loop end
# the job without harm; a job whose image is removed stops. The files opened
# through the mount are recorded ("opened NAME").
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lazyfs.inc"
lazy_need

d=$WORK/pair
mkdir -p "$d/v1/usr/bin" "$d/v1/usr/lib" "$d/v1/usr/share" "$d/v1/lib64" "$d/v1/etc"
ln -s usr/lib "$d/v1/lib"
cp /bin/ls "$d/v1/usr/bin/ls"
interp=$(readelf -l /bin/ls | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
[ -n "$interp" ] || fail "no interpreter in /bin/ls"
libs=$(ldd /bin/ls | awk '$3 ~ /^\// { print $1 " " $3 }')
multi=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
mkdir -p "$d/v1/usr/lib/$multi"
cp -L "$interp" "$d/v1/usr/lib/$multi/$(basename "$interp")"
ln -s "../lib/$multi/$(basename "$interp")" "$d/v1/lib64/$(basename "$interp")"
want="/usr/bin/ls /usr/lib/$multi/$(basename "$interp")"
while read -r name path; do
	cp -L "$path" "$d/v1/usr/lib/$multi/$name"
	want="$want /usr/lib/$multi/$name"
done <<<"$libs"
head -c 200000 /dev/urandom >"$d/v1/usr/share/data"
# two large files, for a job that is still rebuilding when its image goes
head -c 40000000 /dev/urandom >"$d/v1/usr/share/big1"
head -c 40000000 /dev/urandom >"$d/v1/usr/share/big2"
printf '\177ELF\002\001\001garbage' >"$d/v1/usr/bin/broken"
ln -s loop "$d/v1/usr/bin/loop"
cp -a "$d/v1" "$d/v2"
# Every file changed in v2 (appended bytes keep an ELF file valid).
find "$d/v2" -type f | while read -r f; do printf 'v2-%s' "$f" >>"$f"; done
"$CDIMG" diff -q "$d/v1" "$d/v2" -o "$WORK/d.dimg"
nwant=$(echo "$want" | wc -w)

mkfifo "$WORK/ctl"
exec 8<>"$WORK/ctl"
LAZY_STDIN=$WORK/ctl lazy_start ctl "$WORK/mnt" --cache "$WORK/cache" --control -- \
	"img=$WORK/d.dimg@$d/v1" "gone=$WORK/d.dimg@$d/v1"
m=$WORK/mnt
[ "$(lazy_cmd ctl 8 "prefetch img /usr/bin/ls /no/such /usr/bin/broken /usr/bin/loop")" = ok ] ||
	fail "prefetch refused"
for _ in $(seq 600); do
	grep -q "image img: prefetch" "$WORK/ctl.err" && break
	sleep 0.1
done
# ls and what it links, and the broken seed (opened, then not parsed)
grep -q "image img: prefetched $((nwant + 1)) files" "$WORK/ctl.err" ||
	{ cat "$WORK/ctl.err"; fail "prefetch did not finish as expected"; }
# Exactly these are in the cache, not the data file.
for f in $want /usr/bin/broken; do
	sum=$(sha256sum <"$d/v2$f" | cut -c1-64)
	[ -f "$WORK/cache/sha256/${sum:0:2}/$sum" ] || fail "$f not prefetched into the cache"
done
[ "$(cache_files "$WORK/cache")" -eq $((nwant + 1)) ] ||
	fail "$(cache_files "$WORK/cache") cache files, want $((nwant + 1)) ($want /usr/bin/broken)"
[ "$(lazy_cmd ctl 8 "opened img")" = none ] || fail "the prefetch's opens were recorded"
# Opening them now rebuilds nothing more, and reads v2's bytes.
before=$(lazy_cmd ctl 8 stats | sed 's/.* \([0-9]*\) rebuilds.*/\1/')
for f in $want; do cmp "$m/img$f" "$d/v2$f" || fail "$f reads wrong"; done
after=$(lazy_cmd ctl 8 stats | sed 's/.* \([0-9]*\) rebuilds.*/\1/')
[ "$before" = "$after" ] || fail "opening prefetched files rebuilt $((after - before)) files"
cat "$m/img/usr/share/data" >/dev/null
rec=$(lazy_cmd ctl 8 "opened img")
[ "${rec%% *}" = /usr/bin/ls ] && echo "$rec" | grep -q " /usr/share/data" ||
	fail "opened img: $rec"
# A job whose image is removed while it rebuilds stops at its next file.
[ "$(lazy_cmd ctl 8 "prefetch gone /usr/share/big1 /usr/share/big2 /usr/bin/ls")" = ok ] ||
	fail "prefetch gone refused"
[ "$(lazy_cmd ctl 8 "remove gone")" = ok ] || fail "cannot remove gone"
for _ in $(seq 300); do
	grep -q "image gone: prefetch" "$WORK/ctl.err" && break
	sleep 0.1
done
grep -q "image gone: prefetch stopped: image removed" "$WORK/ctl.err" ||
	fail "the job on a removed image did not stop: $(grep 'image gone' "$WORK/ctl.err")"
[ "$(lazy_cmd ctl 8 "prefetch nothere /usr/bin/ls")" = "error: No such file or directory" ] ||
	fail "prefetch of an image not loaded"
lazy_stop ctl
exec 8>&-
echo "lazyfs_prefetch: ok"
