#!/bin/bash
# lazyfs on the real tree pairs (Debian minbase + two nginx, two redis):
# the mounted delta image equals v2 in every byte and metadata field (and
# cdimg apply's output); listing, stat and xattrs rebuild nothing; reading
# one changed file rebuilds exactly that one; statfs tells the cache's
# space and the entries served.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lazyfs.inc"
lazy_need

TREES=${DI3FS_TREES:-/var/cache/di3fs/trees}
bash "$SRC/tests/assets/mktrees.sh" --out "$TREES" nginx redis >/dev/null

for pair in nginx redis; do
	v1=$TREES/$pair-v1
	v2=$TREES/$pair-v2
	"$CDIMG" diff -q "$v1" "$v2" -o "$WORK/$pair.dimg"
	cache=$WORK/$pair-cache
	mnt=$WORK/$pair-mnt
	lazy_start "$pair" "$mnt" --cache "$cache" -- "$pair=$WORK/$pair.dimg@$v1"
	[ "$(ls "$mnt")" = "$pair" ] || fail "$pair: root lists '$(ls "$mnt")'"
	# Metadata only: nothing rebuilt.
	ls -lR "$mnt/$pair" >/dev/null
	find "$mnt/$pair" -exec stat {} + >/dev/null
	getfattr -R -P -h -d -m - "$mnt/$pair" >/dev/null
	[ "$(cache_files "$cache")" -eq 0 ] || fail "$pair: metadata access rebuilt files"
	# statfs: the cache's filesystem's space, the entries served, read-only.
	read -r blocks bsize files < <(stat -f -c '%b %S %c' "$mnt/$pair")
	[ "$blocks $bsize" = "$(stat -f -c '%b %S' "$cache")" ] || fail "$pair: statfs space is not the cache's"
	[ "$files" -eq "$(find "$v2" | wc -l)" ] || fail "$pair: statfs says $files files, v2 has $(find "$v2" | wc -l)"
	# One changed file: one rebuild, the right bytes.
	one=$(changed_files "$WORK/$pair.dimg" | head -n 1)
	[ -n "$one" ] || fail "$pair: the delta rebuilds no file"
	cmp "$mnt/$pair/$one" "$v2/$one" || fail "$pair: $one differs"
	[ "$(cache_files "$cache")" -eq 1 ] || fail "$pair: reading $one left $(cache_files "$cache") cache files"
	$TREECMP "$v2" "$mnt/$pair" || fail "$pair: lazy tree differs from v2"
	"$CDIMG" apply -q "$v1" "$WORK/$pair.dimg" -o "$WORK/$pair-out"
	$TREECMP "$WORK/$pair-out" "$mnt/$pair" || fail "$pair: lazy tree differs from cdimg apply"
	rm -rf "$WORK/$pair-out"
	n=$(changed_files "$WORK/$pair.dimg" | wc -l)
	lazy_stop "$pair"
	rebuilt=$(lazy_stat "$pair" rebuilds)
	[ "$rebuilt" -le "$n" ] && [ "$rebuilt" -ge 1 ] || fail "$pair: $rebuilt rebuilds for $n changed files"
	echo "$pair: identical; $rebuilt of $n changed files rebuilt ($(lazy_stat "$pair" bytes) bytes cached)"
done
echo "lazyfs_real: ok"
