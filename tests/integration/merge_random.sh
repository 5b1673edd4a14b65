#!/bin/bash
# cdimg merge on random chains (every entry type and metadata field, renames,
# duplicates, type changes): applying the merged delta to v1 gives exactly
# vN and exactly what applying the chain gives; chains merge without any
# image (bsdiff composed, other codecs as chain patches) and with --base; .cdimg chains keep
# the right configs; broken chains (wrong order, missing or corrupt middle
# delta, wrong --base) are refused naming the file.
. "$(dirname "$0")/lib.sh"

MKRAND="python3 $SRC/tests/tools/mkrandpair.py"

# apply_chain V1 OUT D...: applies the deltas one after the other.
apply_chain() {
	local cur=$1 out=$2 i=0
	shift 2
	for dl in "$@"; do
		i=$((i + 1))
		"$CDIMG" apply -q "$cur" "$dl" -o "$out.step$i"
		cur=$out.step$i
	done
	mv "$cur" "$out"
	rm -rf "$out".step*
}

# check_merged DIR N MERGED D...: merged over v1 == vN == the chain's result.
check_merged() {
	local d=$1 n=$2 m=$3
	shift 3
	rm -rf "$d/out.m" "$d/out.c"
	"$CDIMG" apply -q "$d/v1" "$m" -o "$d/out.m"
	$TREECMP "$d/v$n" "$d/out.m" || fail "$m: applied over v1 differs from v$n"
	apply_chain "$d/v1" "$d/out.c" "$@"
	$TREECMP "$d/out.c" "$d/out.m" || fail "$m: differs from applying the chain"
}

# A chain of N trees and its deltas d12 d23 ... (options passed to diff).
make_chain() {
	local seed=$1 n=$2 d=$3
	shift 3
	$MKRAND "$seed" "$d" --chain "$n"
	for k in $(seq 1 $((n - 1))); do
		"$CDIMG" diff -q "$@" "$d/v$k" "$d/v$((k + 1))" -o "$d/d$k$((k + 1)).dimg"
	done
}

# 1. bsdiff-only chains of 3: merged without any image.
for seed in 11 12 13 14; do
	d=$WORK/b$seed
	make_chain "$seed" 3 "$d" --codecs bsdiff
	"$CDIMG" merge -q "$d/d12.dimg" "$d/d23.dimg" -o "$d/m13.dimg"
	check_merged "$d" 3 "$d/m13.dimg" "$d/d12.dimg" "$d/d23.dimg"
	# Merging is deterministic.
	"$CDIMG" merge -q "$d/d12.dimg" "$d/d23.dimg" -o "$d/m13b.dimg"
	cmp "$d/m13.dimg" "$d/m13b.dimg" || fail "seed $seed: merge output not deterministic"
	rm -rf "$d"
done

# 2. Default codecs (zstdref too): with --base every file merges and
# re-encodes; without it too, patches that do not compose kept as chain
# patches (codec 4).
for seed in 21 22 23; do
	d=$WORK/z$seed
	make_chain "$seed" 3 "$d"
	"$CDIMG" merge -q --base "$d/v1" "$d/d12.dimg" "$d/d23.dimg" -o "$d/m13.dimg"
	check_merged "$d" 3 "$d/m13.dimg" "$d/d12.dimg" "$d/d23.dimg"
	"$CDIMG" merge -q "$d/d12.dimg" "$d/d23.dimg" -o "$d/nobase.dimg"
	check_merged "$d" 3 "$d/nobase.dimg" "$d/d12.dimg" "$d/d23.dimg"
	# The wrong --base is refused.
	expect_exit 3 "$CDIMG" merge -q --base "$d/v2" "$d/d12.dimg" "$d/d23.dimg" -o "$d/x.dimg"
	grep -q "the base given has tree" "$WORK/err.txt" || fail "no wrong-base message"
	rm -rf "$d"
done

# 3. A chain of 6 (5 deltas) merged at once, and merged in two halves then
# merged again (merging is associative in effect).
d=$WORK/c5
make_chain 31 6 "$d" --codecs bsdiff
D=("$d/d12.dimg" "$d/d23.dimg" "$d/d34.dimg" "$d/d45.dimg" "$d/d56.dimg")
"$CDIMG" merge -q "${D[@]}" -o "$d/m16.dimg"
check_merged "$d" 6 "$d/m16.dimg" "${D[@]}"
"$CDIMG" merge -q "${D[@]:0:3}" -o "$d/m14.dimg"
"$CDIMG" merge -q "$d/m14.dimg" "${D[@]:3}" -o "$d/m16b.dimg"
check_merged "$d" 6 "$d/m16b.dimg" "${D[@]}"
# The same with the default codecs, without any image: chains of chain
# patches (made by one merge, extended by the next) apply as the steps do.
d=$WORK/c5z
make_chain 32 6 "$d"
Z=("$d/d12.dimg" "$d/d23.dimg" "$d/d34.dimg" "$d/d45.dimg" "$d/d56.dimg")
"$CDIMG" merge --json "${Z[@]}" -o "$d/m16.dimg" >"$d/m16.json"
check_merged "$d" 6 "$d/m16.dimg" "${Z[@]}"
python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["patches"]["chain"] < 1)' "$d/m16.json" ||
	fail "default 5-step chain: no chain patch made"
"$CDIMG" merge -q "${Z[@]:0:2}" -o "$d/m13.dimg"
"$CDIMG" merge -q "$d/m13.dimg" "${Z[@]:2}" -o "$d/m16b.dimg"
check_merged "$d" 6 "$d/m16b.dimg" "${Z[@]}"
"$CDIMG" merge -q --base "$d/v1" "$d/m13.dimg" "${Z[@]:2}" -o "$d/m16c.dimg"
check_merged "$d" 6 "$d/m16c.dimg" "${Z[@]}"
"$CDIMG" show --json "$d/m16c.dimg" | grep -q '"codec": *"chain"' &&
	fail "--base left a chain patch in place of a smaller re-encoding" || true
rm -rf "$d"
d=$WORK/c5

# 4. Broken chains: wrong order, a missing middle delta, a corrupt one.
expect_exit 3 "$CDIMG" merge -q "$d/d23.dimg" "$d/d12.dimg" -o "$d/x.dimg"
grep -q "d12.dimg: does not follow .*d23.dimg" "$WORK/err.txt" || fail "wrong order: bad message"
expect_exit 3 "$CDIMG" merge -q "$d/d12.dimg" "$d/d34.dimg" -o "$d/x.dimg"
grep -q "d34.dimg: does not follow .*d12.dimg.*missing in between" "$WORK/err.txt" ||
	fail "missing middle delta: bad message"
[ ! -e "$d/x.dimg" ] || fail "output left after a refused merge"
# A flipped byte in the middle delta's blobs: its checksum names it.
cp "$d/d23.dimg" "$d/bad23.dimg"
printf '\377' | dd of="$d/bad23.dimg" bs=1 seek=200 conv=notrunc status=none
expect_exit 3 "$CDIMG" merge -q "$d/d12.dimg" "$d/bad23.dimg" "$d/d34.dimg" -o "$d/x.dimg"
grep -q "bad23.dimg" "$WORK/err.txt" || fail "corrupt middle delta not named"
# A truncated one fails when opened.
head -c 1000 "$d/d23.dimg" >"$d/short23.dimg"
expect_exit 3 "$CDIMG" merge -q "$d/d12.dimg" "$d/short23.dimg" -o "$d/x.dimg"
grep -q "short23.dimg" "$WORK/err.txt" || fail "truncated delta not named"
expect_exit 2 "$CDIMG" merge -q "$d/d12.dimg"
rm -rf "$d"

# 5. .cdimg chains: the merged artifact names v1's config as its base and
# carries the last image's config and manifest.
MKOCI="python3 $SRC/tests/tools/mkoci.py"
d=$WORK/oci
$MKRAND 41 "$d" --chain 3
for k in 1 2 3; do
	$MKOCI --ref "test/chain:v$k" --env "STEP=$k" "$d/v$k" "$d/i$k.tar" >/dev/null
done
"$CDIMG" diff -q --codecs bsdiff "$d/i1.tar" "$d/i2.tar" -o "$d/d12.cdimg"
"$CDIMG" diff -q --codecs bsdiff "$d/i2.tar" "$d/i3.tar" -o "$d/d23.cdimg"
"$CDIMG" diff -q --codecs bsdiff "$d/i1.tar" "$d/i3.tar" -o "$d/d13.cdimg"
"$CDIMG" merge -q "$d/d12.cdimg" "$d/d23.cdimg" -o "$d/m13.cdimg"
# (An image's tree is not its directory's: the layer has no root entry.)
"$CDIMG" apply -q "$d/i1.tar" "$d/m13.cdimg" -o "$d/out.m"
"$CDIMG" apply -q "$d/i1.tar" "$d/d13.cdimg" -o "$d/out.d"
$TREECMP "$d/out.d" "$d/out.m" || fail ".cdimg merge: differs from the direct delta's result"
for f in m13 d13; do "$CDIMG" show --json "$d/$f.cdimg" >"$d/$f.json"; done
python3 - "$d/m13.json" "$d/d13.json" <<'EOF' || fail ".cdimg merge: metadata differs from a direct diff"
import json, sys
m, d = (json.load(open(p)) for p in sys.argv[1:3])
# Base (config digest, tree) and target (ref, config, manifest) as a
# direct diff v1 -> v3 names them.
assert m["cdimg"]["base"] == d["cdimg"]["base"], (m["cdimg"]["base"], d["cdimg"]["base"])
assert m["cdimg"]["target"] == d["cdimg"]["target"]
assert m["cdimg"]["target"]["ref"] == "test/chain:v3"
assert m["base_tree"] == d["base_tree"] and m["target_tree"] == d["target_tree"]
EOF
# A .dimg in a .cdimg chain: a .cdimg output is refused with a hint.
"$CDIMG" diff -q --codecs bsdiff "$d/i2.tar" "$d/i3.tar" -o "$d/d23.dimg"
expect_exit 2 "$CDIMG" merge -q "$d/d12.cdimg" "$d/d23.dimg" -o "$d/x.cdimg"
grep -q "raw .dimg" "$WORK/err.txt" || fail "no hint for a .dimg in a .cdimg merge"
"$CDIMG" merge -q "$d/d12.cdimg" "$d/d23.dimg" -o "$d/m13.dimg"
rm -rf "$d/out.m"
"$CDIMG" apply -q "$d/i1.tar" "$d/m13.dimg" -o "$d/out.m"
$TREECMP "$d/out.d" "$d/out.m" || fail "mixed merge: differs from the direct delta's result"
echo "merge_random: ok"
