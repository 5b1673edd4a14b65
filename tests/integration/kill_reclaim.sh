#!/bin/bash
# Temporaries of writers killed with SIGKILL are reclaimed by the next run
# on the same output, and only those: cdimg apply of the real nginx trees
# killed mid-write leaves its .out.tmp-* directory, the next killed run
# removes it (and leaves its own), a complete run removes the last one and
# gives the right tree. A live writer's temporary survives a concurrent run
# on the same output, also when the writer is in another PID namespace
# (its PID means nothing here: its lock protects it). A diff to a .cdimg
# killed while encoding leaves its temporaries (nested ones too) and its
# private content store; the rerun reclaims them. Stale temporaries of
# every other output kind (.dimg, .tar, a --cache store's tmp/) go too,
# while other names (older formats, other outputs) stay.
. "$(dirname "$0")/lib.sh"
export LC_ALL=C

TREES=${DI3FS_TREES:-/var/cache/di3fs/trees}
MKOCI="python3 $SRC/tests/tools/mkoci.py"
[ "$(id -u)" = 0 ] || fail "must run as root (the nginx trees, a PID namespace)"
[ -d "$TREES/nginx-v1" ] && [ -d "$TREES/nginx-v2" ] ||
	fail "no nginx trees in $TREES (tests/assets/mktrees.sh builds them)"
V1=$TREES/nginx-v1
V2=$TREES/nginx-v2
"$CDIMG" diff -q --level 1 "$V1" "$V2" -o "$WORK/n.dimg"

# temps DIR NAME: the temporaries of output NAME in DIR, one a line.
temps() {
	find "$1" -maxdepth 1 -name ".$2.tmp-*" -printf '%f\n' | sort
}

# wait_temp PID DIR NAME [OLD]: waits until a temporary of NAME in DIR
# other than OLD holds over 200 files (its writer is mid-way), or fails if
# PID exits first.
wait_temp() {
	local t
	for _ in $(seq 3000); do
		kill -0 "$1" 2>/dev/null || fail "writer $1 ended before it could be caught mid-way"
		t=$(temps "$2" "$3" | grep -vxF "${4:-/}" | head -1)
		if [ -n "$t" ] && [ "$(find "$2/$t" 2>/dev/null | wc -l)" -gt 200 ]; then
			echo "$t"
			return
		fi
		sleep 0.02
	done
	fail "no temporary for $3 after 60 s"
}

# killed_apply OUT [OLD]: an apply to OUT killed with SIGKILL mid-write
# (in a temporary other than OLD); prints the temporary it left.
killed_apply() {
	"$CDIMG" apply -q "$V1" "$WORK/n.dimg" -o "$1" &
	local pid=$! t
	t=$(wait_temp $pid "$(dirname "$1")" "$(basename "$1")" "${2:-}")
	kill -9 $pid
	wait $pid 2>/dev/null || true
	[ -d "$(dirname "$1")/$t" ] || fail "the killed apply left no temporary"
	echo "$t"
}

echo "apply killed twice, then complete:"
t1=$(killed_apply "$WORK/out")
echo "  left $t1 ($(du -sm "$WORK/$t1" | cut -f1) MiB)"
t2=$(killed_apply "$WORK/out" "$t1")
[ "$(temps "$WORK" out)" = "$t2" ] || fail "second run: want only $t2, have: $(temps "$WORK" out)"
echo "  the next run removed it and left $t2"
"$CDIMG" apply -q "$V1" "$WORK/n.dimg" -o "$WORK/out"
[ -z "$(temps "$WORK" out)" ] || fail "complete run left: $(temps "$WORK" out)"
$TREECMP "$V2" "$WORK/out" >/dev/null || fail "applied tree differs from nginx-v2"
echo "  the complete run removed it; output equals nginx-v2"

# live_writer OUT [unshare...]: an apply to OUT, stopped mid-write; a second
# apply to OUT completes meanwhile and must leave the first one's temporary;
# the first, continued, finds OUT taken and removes its own temporary.
live_writer() {
	local out=$1 pid wpid t
	shift
	"$@" "$CDIMG" apply -q "$V1" "$WORK/n.dimg" -o "$out" 2>"$WORK/a.err" &
	pid=$!
	wpid=$pid
	[ $# -eq 0 ] || { sleep 0.5 && wpid=$(pgrep -P $pid cdimg || pgrep -P $pid); }
	t=$(wait_temp "$wpid" "$WORK" "$(basename "$out")")
	kill -STOP "$wpid"
	"$CDIMG" apply -q "$V1" "$WORK/n.dimg" -o "$out"
	[ -d "$WORK/$t" ] || { kill -9 "$wpid"; fail "a live writer's temporary $t was removed"; }
	kill -CONT "$wpid"
	set +e
	wait $pid
	local rc=$?
	set -e
	[ $rc -eq 1 ] && grep -q "File exists" "$WORK/a.err" ||
		fail "the first writer: exit $rc, $(cat "$WORK/a.err")"
	[ -z "$(temps "$WORK" "$(basename "$out")")" ] || fail "left: $(temps "$WORK" "$(basename "$out")")"
	echo "  kept $t while its writer lived; it removed it itself"
}
echo "a live writer's temporary is left alone:"
live_writer "$WORK/out2"
echo "the same for a writer in another PID namespace (only its lock tells):"
live_writer "$WORK/out3" unshare --pid --fork --mount-proc

# ---- diff outputs, content stores, planted stale temporaries ----
# A pair whose diff encodes for a while (bsdiff at level 19 of 24 MiB).
p=$WORK/pair
mkdir -p "$p/v1" "$p/v2"
head -c 24M /dev/urandom >"$p/v1/data"
cp "$p/v1/data" "$p/v2/data"
printf 'changed' | dd of="$p/v2/data" bs=1 seek=1000000 conv=notrunc status=none
echo "new" >"$p/v2/added"
$MKOCI --ref example.org/p:1 "$p/v1" "$WORK/p1.tar" >/dev/null
$MKOCI --ref example.org/p:2 "$p/v2" "$WORK/p2.tar" >/dev/null
mkdir "$WORK/tmpdir" "$WORK/o"

echo "diff to a .cdimg killed while encoding:"
TMPDIR=$WORK/tmpdir "$CDIMG" diff -q -j 1 "$WORK/p1.tar" "$WORK/p2.tar" -o "$WORK/o/d.cdimg" &
pid=$!
for _ in $(seq 3000); do
	kill -0 $pid 2>/dev/null || fail "diff ended before it could be caught encoding"
	[ -n "$(find "$WORK/o" -name '..d.cdimg.tmp-*.tmp-*')" ] && break
	sleep 0.02
done
kill -9 $pid
wait $pid 2>/dev/null || true
left=$(ls -A "$WORK/o" "$WORK/tmpdir" | grep -c 'tmp-\|di3fs-cas-')
[ "$left" -ge 3 ] || fail "the killed diff left $left temporaries: $(ls -A "$WORK/o" "$WORK/tmpdir")"
echo "  left: $(ls -A "$WORK/o" "$WORK/tmpdir" | grep 'tmp-\|di3fs-cas-' | tr '\n' ' ')"
TMPDIR=$WORK/tmpdir "$CDIMG" diff -q -j 1 "$WORK/p1.tar" "$WORK/p2.tar" -o "$WORK/o/d.cdimg"
[ "$(ls -A "$WORK/o")" = d.cdimg ] || fail "rerun left: $(ls -A "$WORK/o")"
[ -z "$(ls -A "$WORK/tmpdir")" ] || fail "rerun left a store: $(ls -A "$WORK/tmpdir")"
"$CDIMG" apply -q "$WORK/p1.tar" "$WORK/o/d.cdimg" -o "$WORK/p-out"
cmp "$p/v2/data" "$WORK/p-out/data" || fail "the rerun's delta applies wrong"
echo "  the rerun reclaimed them all; its delta applies"

echo "planted stale temporaries of every output kind:"
dead=$(sh -c 'echo $$') # a PID that has exited
plant() {
	mkdir -p "$(dirname "$1")"
	if [ "${2:-}" = dir ]; then mkdir "$1" && : >"$1/f"; else : >"$1"; fi
}
plant "$WORK/o/.x.dimg.tmp-$dead-1-abcdef"
plant "$WORK/o/.x.tar.tmp-$dead-1-abcdef"
plant "$WORK/o/.y.dimg.tmp-$dead-1-abcdef" # another output's: stays
plant "$WORK/o/.x.dimg.tmp-QWERTY"         # an older name: stays
plant "$WORK/cache/tmp/$dead-1-abcdef"
plant "$WORK/tmpdir/di3fs-cas-$dead-1-abcdef" dir
"$CDIMG" diff -q "$p/v1" "$p/v2" -o "$WORK/o/x.dimg"
TMPDIR=$WORK/tmpdir "$CDIMG" apply -q "$WORK/p1.tar" "$WORK/o/d.cdimg" -o "$WORK/o/x.tar"
"$CDIMG" diff -q "$WORK/p1.tar" "$WORK/p2.tar" -o "$WORK/o/z.cdimg" --cache "$WORK/cache"
[ "$(ls -A "$WORK/o" | tr '\n' ' ')" = ".x.dimg.tmp-QWERTY .y.dimg.tmp-$dead-1-abcdef d.cdimg x.dimg x.tar z.cdimg " ] ||
	fail "after the runs: $(ls -A "$WORK/o" | tr '\n' ' ')"
[ -z "$(ls -A "$WORK/cache/tmp")" ] || fail "store tmp/ left: $(ls -A "$WORK/cache/tmp")"
[ -z "$(ls -A "$WORK/tmpdir")" ] || fail "private store left: $(ls -A "$WORK/tmpdir")"
echo "kill_reclaim: ok"
