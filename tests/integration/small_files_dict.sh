#!/bin/bash
# A real update that adds a package's worth of small text files (man pages
# and copyright files of this system, 300 of them) to nginx-v2: the shared
# zstd dictionary makes the delta smaller than --no-dict, applies to the
# identical tree, and is byte-identical for -j1 and -j2. On the plain nginx
# and redis pairs (no new small files) both deltas are the same bytes.
. "$(dirname "$0")/lib.sh"

TREES=${DI3FS_TREES:-/var/cache/di3fs/trees}
bash "$SRC/tests/assets/mktrees.sh" --out "$TREES" nginx redis >/dev/null

for pair in nginx redis; do
	"$CDIMG" diff -q "$TREES/$pair-v1" "$TREES/$pair-v2" -o "$WORK/$pair.dimg"
	"$CDIMG" diff -q --no-dict "$TREES/$pair-v1" "$TREES/$pair-v2" -o "$WORK/$pair-nd.dimg"
	cmp "$WORK/$pair.dimg" "$WORK/$pair-nd.dimg" || fail "$pair: dictionary changed a pair without new small files"
	echo "$pair: $(stat -c %s "$WORK/$pair.dimg") bytes with or without dictionary"
done

v2=$WORK/nginx-v2plus
cp -a "$TREES/nginx-v2" "$v2"
new=$v2/usr/share/newpkg
mkdir -p "$new/man/man1" "$new/doc"
n=0
for f in /usr/share/man/man1/*.1.gz; do
	[ -f "$f" ] && [ ! -L "$f" ] || continue
	zcat "$f" >"$new/man/man1/$(basename "$f" .gz)" 2>/dev/null || continue
	n=$((n + 1))
	[ $n -lt 200 ] || break
done
for f in /usr/share/doc/*/copyright; do
	[ -f "$f" ] && [ ! -L "$f" ] || continue
	p=${f#/usr/share/doc/}
	cp "$f" "$new/doc/${p%%/*}.copyright"
	n=$((n + 1))
	[ $n -lt 300 ] || break
done
[ $n -ge 300 ] || fail "only $n man pages and copyright files on this system, 300 needed"

v1=$TREES/nginx-v1
"$CDIMG" diff -q -j 1 "$v1" "$v2" -o "$WORK/j1.dimg"
"$CDIMG" diff --json -j 2 "$v1" "$v2" -o "$WORK/dict.dimg" >"$WORK/diff.json"
cmp "$WORK/j1.dimg" "$WORK/dict.dimg" || fail "-j1 and -j2 differ"
"$CDIMG" diff -q --no-dict "$v1" "$v2" -o "$WORK/nodict.dimg"
"$CDIMG" apply -q "$v1" "$WORK/dict.dimg" -o "$WORK/out"
$TREECMP "$v2" "$WORK/out" || fail "applied tree differs from v2"
"$CDIMG" show --json "$WORK/dict.dimg" >"$WORK/show.json"
"$CDIMG" show "$WORK/dict.dimg" | grep -q "dictionary: .* used by [0-9]* full files" ||
	fail "cdimg show does not report the dictionary"

python3 - "$WORK/diff.json" "$WORK/show.json" "$WORK/dict.dimg" "$WORK/nodict.dimg" <<'PY'
import json, os, sys
diff, show = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
with_, without = os.path.getsize(sys.argv[3]), os.path.getsize(sys.argv[4])
used = [e for e in show["stored_entries"] if e.get("dictionary")]
assert show["dictionary_size"] > 0, show["dictionary_size"]
assert show["dictionary_blobs"] == len(used) > 100, (show["dictionary_blobs"], len(used))
assert all(e["payload"] == "full" for e in used)
assert diff["dictionary_size"] == show["dictionary_size"]
print("300 new small files: %d bytes with the dictionary (%d B, %d blobs), %d without (%.1f%% smaller)"
      % (with_, show["dictionary_size"], len(used), without, 100.0 * (without - with_) / without))
assert with_ < without, "dictionary did not make the delta smaller"
PY
echo "small_files_dict: ok"
