#!/bin/bash
# Images come and go while mounted (di3fs-lazymount --control): a base of a
# loaded image cannot be removed; a removed image leaves the root listing
# at once, but a file opened before keeps reading; names can be reused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lazyfs.inc"
lazy_need

d=$WORK/pair
python3 "$SRC/tests/tools/mkrandpair.py" 6 "$d" --v3 --small
"$CDIMG" diff -q "$d/v1" "$d/v2" -o "$WORK/d12.dimg"
"$CDIMG" diff -q "$d/v2" "$d/v3" -o "$WORK/d23.dimg"
mkfifo "$WORK/ctl"
exec 8<>"$WORK/ctl"
LAZY_STDIN=$WORK/ctl lazy_start ctl "$WORK/mnt" --cache "$WORK/cache" --control -- \
	"base=$WORK/d12.dimg@$d/v1" "top=$WORK/d23.dimg@base"
m=$WORK/mnt
[ "$(ls "$m" | tr '\n' ' ')" = "base top " ] || fail "root lists $(ls "$m")"
[ "$(lazy_cmd ctl 8 "remove base")" = "error: Device or resource busy" ] || fail "removed a base in use"
[ "$(lazy_cmd ctl 8 "remove nothere")" = "error: No such file or directory" ] || fail "removed a name never loaded"
# A changed file of top, opened before top goes away.
f=$(changed_files "$WORK/d23.dimg" | head -n 1)
[ -n "$f" ] || fail "the second delta rebuilds no file"
exec 7<"$m/top/$f"
[ "$(lazy_cmd ctl 8 "remove top")" = "ok" ] || fail "cannot remove top"
[ "$(ls "$m")" = "base" ] || fail "after removing top the root lists $(ls "$m" | tr '\n' ' ')"
[ ! -e "$m/top" ] || fail "top still reachable after removal"
cmp - "$d/v3/$f" <&7 || fail "a file opened before removal no longer reads right"
exec 7<&-
[ "$(lazy_cmd ctl 8 "remove base")" = "ok" ] || fail "cannot remove base once top is gone"
[ -z "$(ls "$m")" ] || fail "root not empty: $(ls "$m")"
# The name again, on another base; and a duplicate name is refused.
[ "$(lazy_cmd ctl 8 "add top=$WORK/d12.dimg@$d/v1")" = "ok" ] || fail "cannot add top again"
[ "$(lazy_cmd ctl 8 "add top=$WORK/d12.dimg@$d/v1")" != "ok" ] || fail "added a duplicate name"
$TREECMP "$d/v2" "$m/top" || fail "re-added top differs from v2"
lazy_cmd ctl 8 stats | grep -q "rebuilds" || fail "no statistics"
lazy_stop ctl
exec 8>&-
echo "lazyfs_remove: ok"
