#!/bin/bash
# Real executables of two releases (esbuild's static Go binary, ~10 MB,
# fetched by tests/assets/binpairs.sh with npm pack and cached): our bsdiff
# patch is at most 1 % larger than Debian's bsdiff 4.3 on the same two
# files, and applies byte-exact. One pair is a small update (0.25.11 ->
# 0.25.12: sparse changes all over), one a rebuild that changed a few
# bytes (0.27.6 -> 0.27.7: Debian's patch is under 200 bytes).
. "$(dirname "$0")/lib.sh"

command -v bsdiff >/dev/null || fail "Debian's bsdiff is missing (install/deps.sh)"
PAIRS=${DI3FS_BIN_PAIRS:-/var/cache/di3fs/bin-pairs}
dirs=$(bash "$SRC/tests/assets/binpairs.sh" --cache "$PAIRS" \
	esbuild-0.25.11-0.25.12 esbuild-0.27.6-0.27.7)

for dir in $dirs; do
	name=${dir##*/}
	mkdir -p "$WORK/$name/a" "$WORK/$name/b"
	cp "$dir/old" "$WORK/$name/a/f"
	cp "$dir/new" "$WORK/$name/b/f"
	bsdiff "$dir/old" "$dir/new" "$WORK/$name/debian.patch"
	"$CDIMG" diff -q --codecs bsdiff --no-dict --no-layers "$WORK/$name/a" "$WORK/$name/b" \
		-o "$WORK/$name/x.dimg"
	read -r codec ours <<<"$("$CDIMG" show --json "$WORK/$name/x.dimg" | python3 -c '
import json, sys
e = [e for e in json.load(sys.stdin)["stored_entries"] if e["path"] == "f"][0]
print(e.get("codec", e["payload"]), e.get("blob_size", 0))')"
	debian=$(stat -c %s "$WORK/$name/debian.patch")
	echo "$name: ours $ours bytes ($codec), Debian's bsdiff $debian bytes"
	[ "$codec" = bsdiff ] || fail "$name: the file is stored as $codec, not a bsdiff patch"
	[ $((ours * 100)) -le $((debian * 101)) ] ||
		fail "$name: our patch ($ours) is more than 1 % larger than Debian's ($debian)"
	"$CDIMG" apply -q "$WORK/$name/a" "$WORK/$name/x.dimg" -o "$WORK/$name/out"
	cmp "$WORK/$name/out/f" "$dir/new" || fail "$name: the applied file differs from new"
	rm -rf "${WORK:?}/$name"
done
echo "bsdiff_real: ok"
