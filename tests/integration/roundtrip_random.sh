#!/bin/bash
# Random tree pairs with every entry type and metadata field: diff, apply,
# compare every byte and field with an independent checker; determinism
# across thread counts; wrong base refused.
. "$(dirname "$0")/lib.sh"

for seed in 1 2 3 4 5 6; do
	d=$WORK/s$seed
	python3 "$SRC/tests/tools/mkrandpair.py" "$seed" "$d"
	"$CDIMG" diff -q -j 1 "$d/v1" "$d/v2" -o "$d/j1.dimg"
	"$CDIMG" diff -q -j 2 "$d/v1" "$d/v2" -o "$d/j2.dimg"
	"$CDIMG" diff -q -j 5 "$d/v1" "$d/v2" -o "$d/j5.dimg"
	cmp "$d/j1.dimg" "$d/j2.dimg" || fail "seed $seed: -j1 and -j2 outputs differ"
	cmp "$d/j1.dimg" "$d/j5.dimg" || fail "seed $seed: -j1 and -j5 outputs differ"
	"$CDIMG" apply -q "$d/v1" "$d/j2.dimg" -o "$d/out"
	$TREECMP "$d/v2" "$d/out" || fail "seed $seed: applied tree differs from v2"
	# The delta also round-trips through show --json.
	"$CDIMG" show --json --base "$d/v1" "$d/j2.dimg" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["resolved"] and len(d["tree"]) == d["entries"], "bad show --json"
kinds = {e.get("payload") for e in d["tree"]}
assert "same" in kinds, kinds
' || fail "seed $seed: show --json"
	# Wrong base: v2 is not what the delta applies to.
	expect_exit 3 "$CDIMG" apply -q "$d/v2" "$d/j2.dimg" -o "$d/wrong"
	grep -q "wrong base" "$WORK/err.txt" || fail "seed $seed: no 'wrong base' message"
	[ ! -e "$d/wrong" ] || fail "seed $seed: output left after wrong base"
	# An existing output directory is never overwritten.
	expect_exit 1 "$CDIMG" apply -q "$d/v1" "$d/j2.dimg" -o "$d/out"
	rm -rf "$d"
done

# Identical trees: a delta of only kept entries, applies to an equal tree.
python3 "$SRC/tests/tools/mkrandpair.py" 9 "$WORK/same"
"$CDIMG" diff -q "$WORK/same/v1" "$WORK/same/v1" -o "$WORK/same.dimg"
"$CDIMG" show --json "$WORK/same.dimg" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["stored"] == 0 and d["removed"] == 0 and d["kept"] == d["entries"], d
'
"$CDIMG" apply -q "$WORK/same/v1" "$WORK/same.dimg" -o "$WORK/same/out"
$TREECMP "$WORK/same/v1" "$WORK/same/out"
echo "roundtrip_random: ok"
