#!/bin/bash
# cdimg plan on a directory of deltas between random trees v1..v4: the
# chain with the fewest bytes (not the fewest hops) is chosen; images are
# named by path or by literal tree id; --merge writes the chain as one delta
# that applies; a missing middle delta or a damaged one gives an error
# naming what is missing.
. "$(dirname "$0")/lib.sh"

d=$WORK/p
python3 "$SRC/tests/tools/mkrandpair.py" 51 "$d" --chain 4 --small
mkdir "$d/deltas"
for k in 1 2 3; do
	"$CDIMG" diff -q --codecs bsdiff "$d/v$k" "$d/v$((k + 1))" -o "$d/deltas/d$k$((k + 1)).dimg"
done
# A direct delta stored whole: more bytes than the three steps together.
"$CDIMG" diff -q --codecs none --max-diff-size 0 "$d/v1" "$d/v4" -o "$d/deltas/full14.dimg"
size() { stat -c %s "$1"; }
chain=$(($(size "$d/deltas/d12.dimg") + $(size "$d/deltas/d23.dimg") + $(size "$d/deltas/d34.dimg")))
full=$(size "$d/deltas/full14.dimg")
[ "$chain" -lt "$full" ] || fail "test setup: the chain ($chain) is not cheaper than full14 ($full)"

# 1. Fewest bytes: the three-step chain, not the one-step full delta.
"$CDIMG" plan --json --have "$d/v1" --want "$d/v4" --from "$d/deltas" >"$WORK/plan.json"
python3 - "$WORK/plan.json" "$chain" <<'PY' || fail "plan did not pick the cheapest chain"
import json, sys
p = json.load(open(sys.argv[1]))
files = [s["file"].rsplit("/", 1)[1] for s in p["steps"]]
assert files == ["d12.dimg", "d23.dimg", "d34.dimg"], files
assert p["total"] == int(sys.argv[2]) == p["steps"][-1]["cumulative"], p
PY
# 2. A cheap direct delta wins over the chain.
"$CDIMG" diff -q "$d/v1" "$d/v4" -o "$d/deltas/d14.dimg"
direct=$(size "$d/deltas/d14.dimg")
"$CDIMG" plan --json --have "$d/v1" --want "$d/v4" --from "$d/deltas" >"$WORK/plan.json"
if [ "$direct" -lt "$chain" ]; then want='["d14.dimg"]'; else want='["d12.dimg","d23.dimg","d34.dimg"]'; fi
python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))
got = [s["file"].rsplit("/", 1)[1] for s in p["steps"]]
assert got == json.loads(sys.argv[2]), (got, sys.argv[2])
' "$WORK/plan.json" "$want" || fail "plan did not pick the cheaper of d14 and the chain"
rm "$d/deltas/d14.dimg"

# 3. Literal ids (the trees' ids, as show prints them) and several haves.
id2=$("$CDIMG" show --json "$d/deltas/d23.dimg" | python3 -c 'import json,sys; print(json.load(sys.stdin)["base_tree"])')
id4=$("$CDIMG" show --json "$d/deltas/d34.dimg" | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_tree"])')
"$CDIMG" plan --have "$d/v1" --have "sha256:$id2" --want "$id4" --from "$d/deltas" >"$WORK/out.txt"
grep -q "2 deltas" "$WORK/out.txt" || { cat "$WORK/out.txt"; fail "plan from v2 is not 2 deltas"; }
grep -q "d23.dimg" "$WORK/out.txt" && ! grep -q "d12.dimg" "$WORK/out.txt" ||
	fail "plan from v1 and v2 should start at v2"

# 4. --merge writes the chain as one delta, which gives v4.
"$CDIMG" plan --have "$d/v1" --want "$d/v4" --from "$d/deltas" --merge -o "$WORK/m14.dimg" >/dev/null
"$CDIMG" apply -q "$d/v1" "$WORK/m14.dimg" -o "$WORK/out4"
$TREECMP "$d/v4" "$WORK/out4" || fail "plan --merge: result differs from v4"

# 5. A missing middle delta: the error names where the chain breaks.
mv "$d/deltas/d23.dimg" "$d/d23.dimg"
mv "$d/deltas/full14.dimg" "$d/full14.dimg"
expect_exit 1 "$CDIMG" plan --have "$d/v1" --want "$d/v4" --from "$d/deltas"
grep -q "no chain of deltas" "$WORK/err.txt" || fail "missing middle: no clear error"
grep -q "d34.dimg starts from tree" "$WORK/err.txt" || fail "missing middle: d34's start not named"
grep -q "deltas reach:" "$WORK/err.txt" && grep -q "(.*d12.dimg)" "$WORK/err.txt" ||
	fail "missing middle: how far the deltas go not said"
# 6. A damaged middle delta is skipped with a warning naming it.
head -c 3000 "$d/d23.dimg" >"$d/deltas/d23.dimg"
expect_exit 1 "$CDIMG" plan --have "$d/v1" --want "$d/v4" --from "$d/deltas"
grep -q "skipping .*d23.dimg" "$WORK/err.txt" || fail "damaged delta not named"
# 7. Nothing produces the wanted tree.
expect_exit 1 "$CDIMG" plan --have "$d/v4" --want "$d/v1" --from "$d/deltas"
grep -q "no delta in .* produces it" "$WORK/err.txt" || fail "unreachable want: no clear error"
expect_exit 2 "$CDIMG" plan --have "$d/v1" --from "$d/deltas"
echo "plan_random: ok"
