#!/bin/bash
# The CLI's contract, as a new user meets it:
#  - an output never replaces an input (compared by device and inode, so
#    not by name), nor an existing file or directory unless --force;
#  - the counts of an update mean the same in diff, show and show --base,
#    and are right on a generated update whose counts are known exactly;
#  - errors name the right thing: the option, the missing argument, the
#    output path, a path once, both trees of a wrong base;
#  - a .cdimg made from images applies to a plain directory of the base.
. "$(dirname "$0")/lib.sh"

MKOCI="python3 $SRC/tests/tools/mkoci.py"
[ "$(id -u)" = 0 ] || fail "must run as root (owners of the extracted base)"

# ---- a known update: exactly 7 kept, 3 changed, 3 added, 1 renamed,
# 2 removed (every mtime fixed, so only what is changed below differs)
d=$WORK/pair
mkdir -p "$d/v1/etc"
for i in 1 2 3 4 5; do echo "kept file $i" >"$d/v1/etc/keep$i"; done
for i in 1 2 3; do echo "changed file $i, before" >"$d/v1/etc/chg$i"; done
echo "removed 1" >"$d/v1/etc/gone1"
echo "removed 2" >"$d/v1/etc/gone2"
head -c 4000 /dev/urandom >"$d/v1/etc/mv-src"
cp -a "$d/v1" "$d/v2"
echo "changed file 1, after" >"$d/v2/etc/chg1"
echo "changed file 2, after, and longer" >"$d/v2/etc/chg2"
chmod 0600 "$d/v2/etc/chg3" # metadata only
rm "$d/v2/etc/gone1" "$d/v2/etc/gone2"
mv "$d/v2/etc/mv-src" "$d/v2/etc/mv-dst"
echo "added 1" >"$d/v2/etc/new1"
head -c 3000 /dev/urandom >"$d/v2/etc/new2"
: >"$d/v2/etc/new3"
for t in v1 v2; do
	find "$d/$t" -exec touch -h -d @1000000000 {} +
done
$MKOCI --ref example.org/cc:v1 "$d/v1" "$WORK/v1.tar" >/dev/null
$MKOCI --ref example.org/cc:v2 "$d/v2" "$WORK/v2.tar" >/dev/null

"$CDIMG" diff --json "$d/v1" "$d/v2" -o "$WORK/d.dimg" >"$WORK/diff.json"
"$CDIMG" show --json "$WORK/d.dimg" >"$WORK/show.json"
"$CDIMG" show --json --base "$d/v1" "$WORK/d.dimg" >"$WORK/showb.json"
python3 - "$WORK/diff.json" "$WORK/show.json" "$WORK/showb.json" <<'EOF'
import json, sys
diff, show, showb = (json.load(open(p)) for p in sys.argv[1:4])
want = {"entries": 14, "kept": 7, "changed": 3, "added": 3, "renamed": 1, "removed": 2,
        "stored": 7, "dropped": 6}
for name, j in (("diff", diff), ("show --base", showb)):
    got = {k: j[k] for k in want}
    assert got == want, (name, got, want)
# Without the base, the index knows kept, stored and dropped; it does not
# claim to know the rest (it used to call dropped "removed").
assert {k: show[k] for k in ("entries", "kept", "stored", "dropped")} == \
    {k: want[k] for k in ("entries", "kept", "stored", "dropped")}, show
for k in ("changed", "added", "renamed", "removed"):
    assert show[k] is None, (k, show[k])
# The same payload table and the same keys everywhere.
assert diff["payloads"] == show["payloads"] == showb["payloads"], (diff["payloads"], show["payloads"])
# chg1, chg2, new1, new2 encoded; chg3 (mode only) and mv-dst the same bytes; new3 empty
assert diff["payloads"]["full"]["files"] + diff["payloads"]["patch"]["files"] == 4, diff["payloads"]
assert diff["payloads"]["same"]["files"] == 2 and diff["payloads"]["empty"]["files"] == 1
for j in (diff, show, showb):
    assert "dictionary_blobs" in j and "dictionary_files" not in j, sorted(j)
EOF
# The text says the same numbers with the same words.
"$CDIMG" diff -q "$WORK/v1.tar" "$WORK/v2.tar" -o "$WORK/d.cdimg"
"$CDIMG" diff "$d/v1" "$d/v2" -o "$WORK/d2.dimg" >"$WORK/diff.txt"
"$CDIMG" show --base "$d/v1" "$WORK/d2.dimg" >"$WORK/showb.txt"
line='entries: 14 (kept 7, changed 3, added 3, renamed 1), removed 2'
grep -qF "$line" "$WORK/diff.txt" || fail "diff's counts: $(cat "$WORK/diff.txt")"
grep -qF "$line" "$WORK/showb.txt" || fail "show --base's counts: $(cat "$WORK/showb.txt")"
"$CDIMG" show "$WORK/d2.dimg" >"$WORK/show.txt"
grep -q "removed 6" "$WORK/show.txt" && fail "show without the base calls dropped entries removed"
grep -q "kept 7" "$WORK/show.txt" || fail "show: no kept count"

# ---- outputs: never an input, never an existing file unasked
cp "$WORK/v1.tar" "$WORK/v1.copy"
expect_exit 2 "$CDIMG" diff -q "$WORK/v2.tar" "$WORK/v1.tar" -o "$WORK/v1.tar"
grep -q "v1.tar" "$WORK/err.txt" && grep -q "input" "$WORK/err.txt" || fail "input: $(cat "$WORK/err.txt")"
expect_exit 2 "$CDIMG" diff -q --force "$WORK/v2.tar" "$WORK/v1.tar" -o "$WORK/v1.tar"
ln "$WORK/v1.tar" "$WORK/same-inode.tar"
expect_exit 2 "$CDIMG" diff -q --force "$WORK/v2.tar" "$WORK/v1.tar" -o "$WORK/same-inode.tar"
cmp "$WORK/v1.tar" "$WORK/v1.copy" || fail "diff wrote over its input"
expect_exit 2 "$CDIMG" apply -q --force "$WORK/v1.tar" "$WORK/d.cdimg" -o "$WORK/v1.tar"
expect_exit 2 "$CDIMG" merge -q --force "$WORK/d.cdimg" -o "$WORK/d.cdimg"
cmp "$WORK/v1.tar" "$WORK/v1.copy" || fail "apply wrote over its input"

cp "$WORK/d.dimg" "$WORK/d.keep"
expect_exit 1 "$CDIMG" diff -q "$d/v2" "$d/v1" -o "$WORK/d.dimg"
grep -q "d.dimg" "$WORK/err.txt" && grep -q -- "--force" "$WORK/err.txt" || fail "exists: $(cat "$WORK/err.txt")"
cmp "$WORK/d.dimg" "$WORK/d.keep" || fail "diff replaced an existing output unasked"
"$CDIMG" diff -q --force "$d/v2" "$d/v1" -o "$WORK/d.dimg"
cmp -s "$WORK/d.dimg" "$WORK/d.keep" && fail "--force did not replace the output"

"$CDIMG" apply -q "$WORK/v1.tar" "$WORK/d.cdimg" -o "$WORK/out.tar"
cp "$WORK/out.tar" "$WORK/out.keep"
echo "not an image" >"$WORK/other.tar"
expect_exit 1 "$CDIMG" apply -q "$WORK/v1.tar" "$WORK/d.cdimg" -o "$WORK/other.tar"
grep -q "other.tar" "$WORK/err.txt" || fail "apply -o existing: $(cat "$WORK/err.txt")"
grep -q "not an image" "$WORK/other.tar" || fail "apply replaced an existing file unasked"
"$CDIMG" apply -q --force "$WORK/v1.tar" "$WORK/d.cdimg" -o "$WORK/other.tar"
cmp "$WORK/other.tar" "$WORK/out.keep" || fail "apply --force: not the image"

mkdir "$WORK/outdir"
echo old >"$WORK/outdir/stale"
expect_exit 1 "$CDIMG" apply -q "$d/v1" "$WORK/d2.dimg" -o "$WORK/outdir"
[ -e "$WORK/outdir/stale" ] || fail "apply replaced an existing directory unasked"
"$CDIMG" apply -q --force "$d/v1" "$WORK/d2.dimg" -o "$WORK/outdir"
[ ! -e "$WORK/outdir/stale" ] || fail "apply --force left the old directory's files"
$TREECMP "$d/v2" "$WORK/outdir" || fail "apply --force: not the target tree"

"$CDIMG" merge -q "$WORK/d2.dimg" -o "$WORK/m.dimg"
expect_exit 1 "$CDIMG" merge -q "$WORK/d2.dimg" -o "$WORK/m.dimg"
"$CDIMG" merge -q --force "$WORK/d2.dimg" -o "$WORK/m.dimg"
mkdir "$WORK/deltas"
cp "$WORK/d2.dimg" "$WORK/deltas/"
cp "$WORK/m.dimg" "$WORK/m.keep"
expect_exit 1 "$CDIMG" plan --have "$d/v1" --want "$d/v2" --from "$WORK/deltas" --merge -o "$WORK/m.dimg"
cmp "$WORK/m.dimg" "$WORK/m.keep" || fail "plan --merge replaced an existing output unasked"
expect_exit 2 "$CDIMG" plan --have "$d/v1" --want "$d/v2" --from "$WORK/deltas" --merge --force \
	-o "$WORK/deltas/d2.dimg"
ls -a "$WORK" "$WORK/deltas" | grep -q '\.tmp-' && fail "temporary files left behind"

# ---- errors name the right thing
expect_exit 2 "$CDIMG" diff --level 99 "$d/v1" "$d/v2" -o "$WORK/x.dimg"
grep -q -- "--level.*99" "$WORK/err.txt" || fail "bad value: $(cat "$WORK/err.txt")"
expect_exit 2 "$CDIMG" apply -j zero "$d/v1" "$WORK/d2.dimg" -o "$WORK/x"
grep -q -- "--jobs.*zero" "$WORK/err.txt" || fail "bad -j: $(cat "$WORK/err.txt")"
expect_exit 2 "$CDIMG" diff "$d/v1" "$d/v2"
grep -q "missing -o" "$WORK/err.txt" || fail "no -o: $(cat "$WORK/err.txt")"
expect_exit 2 "$CDIMG" diff "$d/v1" -o "$WORK/x.dimg"
grep -q "missing NEW" "$WORK/err.txt" || fail "one image: $(cat "$WORK/err.txt")"
expect_exit 2 "$CDIMG" diff "$d/v1" "$d/v2" extra -o "$WORK/x.dimg"
grep -q "unexpected argument 'extra'" "$WORK/err.txt" || fail "extra: $(cat "$WORK/err.txt")"
expect_exit 2 "$CDIMG" show --bogus "$WORK/d2.dimg"
grep -q "unknown option '--bogus'" "$WORK/err.txt" || fail "unknown option: $(cat "$WORK/err.txt")"
[ "$(wc -l <"$WORK/err.txt")" -le 3 ] || fail "a usage error prints the whole help"

for out in "$WORK/nodir/x.tar" "$WORK/nodir/x"; do
	expect_exit 1 "$CDIMG" apply -q "$WORK/v1.tar" "$WORK/d.cdimg" -o "$out"
	grep -qF "$out" "$WORK/err.txt" || fail "unwritable $out not named: $(cat "$WORK/err.txt")"
	grep -q "entry '" "$WORK/err.txt" && fail "unwritable $out blamed on an entry"
done
expect_exit 1 "$CDIMG" diff -q "$d/v1" "$d/v2" -o "$WORK/nodir/x.dimg"
grep -qF "$WORK/nodir/x.dimg" "$WORK/err.txt" || fail "diff: output not named: $(cat "$WORK/err.txt")"
expect_exit 1 "$CDIMG" merge -q "$WORK/d.cdimg" -o "$WORK/nodir/m.cdimg"
grep -qF "$WORK/nodir/m.cdimg" "$WORK/err.txt" || fail "merge: output not named: $(cat "$WORK/err.txt")"

expect_exit 1 "$CDIMG" diff "$WORK/missing.tar" "$d/v2" -o "$WORK/x.dimg"
[ "$(grep -o "missing.tar" "$WORK/err.txt" | wc -l)" = 1 ] || fail "path not once: $(cat "$WORK/err.txt")"

if [ -x "$(dirname "$CDIMG")/cdimg-load" ]; then
	expect_exit 2 "$CDIMG" load "$WORK/d2.dimg"
	grep -q "needs a .cdimg" "$WORK/err.txt" || fail "load of a .dimg: $(cat "$WORK/err.txt")"
fi

expect_exit 3 "$CDIMG" show --base "$WORK/v2.tar" "$WORK/d.cdimg"
grep -q "wrong base" "$WORK/err.txt" || fail "show --base: $(cat "$WORK/err.txt")"
[ "$(grep -oE '[0-9a-f]{16}\.\.\.' "$WORK/err.txt" | sort -u | wc -l)" -ge 2 ] ||
	fail "show --base: both tree ids not named: $(cat "$WORK/err.txt")"

"$CDIMG" apply "$d/v1" "$WORK/d2.dimg" -o "$WORK/out2" >"$WORK/apply.txt"
[ "$(wc -l <"$WORK/apply.txt")" = 1 ] && grep -qF "$WORK/out2" "$WORK/apply.txt" ||
	fail "apply -o DIR summary: $(cat "$WORK/apply.txt")"

# ---- a .cdimg of images applied to a plain directory of the base: its
# layer extracted (the root directory's own metadata is not the image's)
mkdir "$WORK/layout" "$WORK/base"
tar -C "$WORK/layout" -xf "$WORK/v1.tar"
layer=$(oci_layer "$WORK/layout")
tar -C "$WORK/base" --xattrs --numeric-owner -xpf "$layer"
touch -d @1600000000 "$WORK/base"
"$CDIMG" apply -q "$WORK/base" "$WORK/d.cdimg" -o "$WORK/fromdir"
$TREECMP "$d/v2/etc" "$WORK/fromdir/etc" || fail "applied to a directory: not the target"
"$CDIMG" show --base "$WORK/base" "$WORK/d.cdimg" >/dev/null
"$CDIMG" apply -q "$WORK/base" "$WORK/d.cdimg" -o "$WORK/fromdir.tar" 2>"$WORK/err.txt"
grep -q "plain directory" "$WORK/err.txt" || fail "no word on the squashed layer: $(cat "$WORK/err.txt")"
# A directory that is not the base: the error says what to give instead.
echo changed >>"$WORK/base/etc/keep1"
expect_exit 3 "$CDIMG" apply -q "$WORK/base" "$WORK/d.cdimg" -o "$WORK/x"
grep -q "give the base image" "$WORK/err.txt" || fail "wrong directory: $(cat "$WORK/err.txt")"
echo "cli_contract: ok"
