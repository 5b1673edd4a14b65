#!/bin/bash
# bench-images.sh - image-level benchmark: the size and cost of a .cdimg
# between two real container images, against what a layer-level transfer
# (pulling the target's layers the base lacks) costs (see bench/README.md).
#
#   bench/bench-images.sh [--cache DIR] [--runs N]
#
# Runs as root. Builds (or reuses) the trees of tests/assets/mktrees.sh,
# turns them into 2-layer OCI images (shared minbase layer + package layer)
# cached under CACHE/images, then times `cdimg diff` and `cdimg apply` on
# them and checks the applied image against the v2 tree. A last set of rows
# compares peak RSS on the nginx pair with the same pair grown by a 300 MiB
# layer. Finds cdimg via $CDIMG, else ./build/ctr-tools/cdimg (current
# directory, then the source tree); without it only the baselines are shown.
# Exit status 1 when a cdimg step failed or the applied image is wrong.
# shellcheck disable=SC2317 # functions called via measure
set -eu

PROG=${0##*/}
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
usage() {
	cat >&2 <<EOF
usage: $PROG [--cache DIR] [--runs N]
  --cache DIR  cache of mktrees.sh; images go to DIR/images (default /var/cache/di3fs)
  --runs N     run every timed step N times, report the median (default 3)
EOF
	exit 2
}

HERE=$(cd "$(dirname "$0")" && pwd -P)
SRC=$(cd "$HERE/.." && pwd -P)
CACHE=/var/cache/di3fs
RUNS=3
while [ $# -gt 0 ]; do
	case $1 in
	--cache) [ $# -ge 2 ] || usage; CACHE=$2; shift 2 ;;
	--cache=*) CACHE=${1#*=}; shift ;;
	--runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
	--runs=*) RUNS=${1#*=}; shift ;;
	-h|--help) usage ;;
	*) say "unknown argument: $1"; usage ;;
	esac
done

case $RUNS in ''|*[!0-9]*|0) die "--runs needs a positive number" ;; esac
[ "$(id -u)" = 0 ] || die "must run as root (the trees hold device nodes and files of other owners)"
/usr/bin/time --version 2>&1 | grep -q 'GNU' || die "GNU time is needed at /usr/bin/time (apt-get install time)"
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is needed"
for c in python3 gzip sha256sum find awk sort; do
	command -v "$c" >/dev/null 2>&1 || die "'$c' not found"
done
MKTREES=$SRC/tests/assets/mktrees.sh
MKIMAGES=$SRC/tests/assets/mkimages.py
TREECMP=$SRC/tests/tools/treecmp.py
for f in "$MKTREES" "$MKIMAGES" "$TREECMP"; do
	[ -f "$f" ] || die "$f not found"
done

# cdimg
CDIMG=${CDIMG:-}
if [ -z "$CDIMG" ]; then
	for c in "$PWD/build/ctr-tools/cdimg" "$SRC/build/ctr-tools/cdimg"; do
		if [ -x "$c" ]; then CDIMG=$c; break; fi
	done
fi
if [ -n "$CDIMG" ] && [ ! -x "$CDIMG" ]; then
	say "warning: CDIMG=$CDIMG is not executable"
	CDIMG=
fi

# Bump when the way the images below are made changes: cached images
# with another recipe are rebuilt.
RECIPE=1
# The synthetic bulk layer of the memory rows: BULK_FILES files of
# BULK_SIZE bytes each (300 MiB), each smaller than the largest file of
# the Debian trees, so the largest file stays the same.
BULK_FILES=75
BULK_SIZE=$((4 << 20))
TAR_META=(--xattrs --xattrs-include='*' --acls --numeric-owner)

PAIRS=(nginx redis)
say "building/reusing trees (mktrees.sh)"
mkdir -p "$CACHE" || die "cannot create $CACHE"
CACHE=$(cd "$CACHE" && pwd -P)
VERSIONS=$(bash "$MKTREES" --cache "$CACHE" "${PAIRS[@]}") || die "mktrees.sh failed"
TREES=$CACHE/trees
BASE_TAR=$CACHE/base-bookworm-minbase.tar
[ -f "$BASE_TAR" ] || die "$BASE_TAR not found (mktrees.sh should have made it)"
IMG=$CACHE/images
mkdir -p "$IMG"

WORK=$(mktemp -d "$CACHE/.bench-images.XXXXXX")
cleanup() {
	rm -rf --one-file-system -- "$WORK"
	rm -rf --one-file-system -- "$IMG/.tmp.$$".*
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------ helpers (python)

# img_info BASE.tar TARGET.tar: one line "LAYER_LEVEL FULL CONFIG MANIFEST
# NLAYERS NMISSING" for the target image of an OCI layout tar, and
# then one line "DIGEST SIZE shared|missing" per target layer.
# LAYER_LEVEL sums the compressed layers whose digest the base lacks, FULL
# every compressed layer plus the config and the manifest.
PY_IMAGE='
import json, sys, tarfile

def rel(name):
    return name[2:] if name.startswith("./") else name

def manifest(path):
    with tarfile.open(path, "r:") as t:
        files = {rel(m.name): m for m in t.getmembers() if m.isfile()}
        def read(name):
            return t.extractfile(files[name]).read()
        desc = json.loads(read("index.json"))["manifests"][0]
        while desc.get("mediaType", "").endswith("image.index.v1+json"):
            desc = json.loads(read("blobs/sha256/" + desc["digest"][7:]))["manifests"][0]
        man = json.loads(read("blobs/sha256/" + desc["digest"][7:]))
        return desc["size"], man
'
img_info() {
	python3 -c "$PY_IMAGE"'
msize, base = manifest(sys.argv[1])
msize, man = manifest(sys.argv[2])
have = {l["digest"] for l in base["layers"]}
layers = man["layers"]
miss = [l for l in layers if l["digest"] not in have]
print(sum(l["size"] for l in miss),
      sum(l["size"] for l in layers) + man["config"]["size"] + msize,
      man["config"]["size"], msize, len(layers), len(miss))
for l in layers:
    print(l["digest"], l["size"], "missing" if l in miss else "shared")
' "$1" "$2"
}

# layer_blob IMAGE.tar OUT: copy the single layer of the image to OUT and
# print its media type; fails if the image has more than one layer.
layer_blob() {
	python3 -c "$PY_IMAGE"'
import shutil
size, man = manifest(sys.argv[1])
if len(man["layers"]) != 1:
    sys.exit("expected 1 layer, found %d" % len(man["layers"]))
l = man["layers"][0]
with tarfile.open(sys.argv[1], "r:") as t:
    for m in t:
        if rel(m.name) == "blobs/sha256/" + l["digest"][7:]:
            with t.extractfile(m) as src, open(sys.argv[2], "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            break
    else:
        sys.exit("layer blob missing")
print(l["mediaType"])
' "$1" "$2"
}

# add_layer IN.tar LAYER.tar.gz REF OUT.tar: IN's image with one more gzip
# layer on top (new config, manifest and index; IN's layers unchanged).
add_layer() {
	python3 -c "$PY_IMAGE"'
import gzip, hashlib, io, os
src, layer, ref, out = sys.argv[1:5]
msize, man = manifest(src)
with tarfile.open(src, "r:") as t:
    members = {rel(m.name): m for m in t.getmembers() if m.isfile()}
    cfg = json.loads(t.extractfile(members["blobs/sha256/" + man["config"]["digest"][7:]]).read())
    h, d = hashlib.sha256(), hashlib.sha256()
    with open(layer, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            d.update(b)
    with gzip.open(layer, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    cfg["rootfs"]["diff_ids"].append("sha256:" + h.hexdigest())
    cfg.setdefault("history", []).append({"created_by": "bench-images.sh bulk layer"})
    enc = lambda o: json.dumps(o, sort_keys=True, separators=(",", ":")).encode()
    cfg_b = enc(cfg)
    man["config"] = dict(man["config"], digest="sha256:" + hashlib.sha256(cfg_b).hexdigest(),
                         size=len(cfg_b))
    man["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                          "digest": "sha256:" + d.hexdigest(), "size": os.path.getsize(layer)})
    man_b = enc(man)
    mdig = "sha256:" + hashlib.sha256(man_b).hexdigest()
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": man["mediaType"], "digest": mdig, "size": len(man_b),
                            "annotations": {"org.opencontainers.image.ref.name": ref}}]}
    def info(name, size):
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode, ti.mtime = size, 0o644, 0
        return ti
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as o:
        for name, data in (("oci-layout", enc({"imageLayoutVersion": "1.0.0"})),
                           ("index.json", enc(index)),
                           ("blobs/sha256/" + man["config"]["digest"][7:], cfg_b),
                           ("blobs/sha256/" + mdig[7:], man_b)):
            o.addfile(info(name, len(data)), io.BytesIO(data))
        for l in man["layers"][:-1]:
            m = members["blobs/sha256/" + l["digest"][7:]]
            o.addfile(info(rel(m.name), m.size), t.extractfile(m))
        with open(layer, "rb") as f:
            o.addfile(info("blobs/sha256/" + d.hexdigest(), os.path.getsize(layer)), f)
' "$1" "$2" "$3" "$4"
}

# mkbulk DIR: DIR/opt/di3fs-bulk with BULK_FILES files of BULK_SIZE bytes.
# Contents are deterministic and different in every file: 4 KiB blocks
# drawn from a per-file pool of 32 random blocks, each followed by 64
# random bytes. zstd finds the repeats (fast to encode at level 19, which
# keeps the run short); gzip's 32 KiB window mostly does not.
mkbulk() {
	python3 -c '
import os, random, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = os.path.join(root, "opt", "di3fs-bulk")
os.makedirs(d)
T = 1700000000 * 10**9
for i in range(n):
    rng = random.Random("di3fs-bulk-%d" % i)
    pool = [rng.randbytes(4096) for _ in range(32)]
    buf = bytearray()
    while len(buf) < size:
        buf += pool[rng.randrange(32)]
        buf += rng.randbytes(64)
    p = os.path.join(d, "blob-%03d.bin" % i)
    with open(p, "wb") as f:
        f.write(buf[:size])
    os.chmod(p, 0o644)
    os.utime(p, ns=(T, T))
for p in (d, os.path.dirname(d)):
    os.chmod(p, 0o755)
    os.utime(p, ns=(T, T))
' "$1" "$BULK_FILES" "$BULK_SIZE"
}

# ------------------------------------------------------------ images

# stamp_ok FILE CONTENT: FILE exists and holds CONTENT.
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
put_stamp() { printf '%s\n' "$2" >"$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"; }

# Temporary names are IMG/.tmp.PID.NAME. Remove those of interrupted
# runs, but not those of a run still going.
for t in "$IMG"/.tmp.* "$IMG"/.mkimages-*; do
	[ -e "$t" ] || continue
	pid=${t#"$IMG"/.tmp.}
	pid=${pid%%.*}
	case $pid in ''|*[!0-9]*) ;; *) [ -d "/proc/$pid" ] && continue ;; esac
	rm -rf --one-file-system -- "$t"
done

# The minbase tree, shared layer 1 of every image.
MINBASE=$IMG/minbase
MINBASE_STAMP="recipe=$RECIPE base=$(stat -c '%s %Y' "$BASE_TAR")"
if stamp_ok "$IMG/.minbase.stamp" "$MINBASE_STAMP" && [ -d "$MINBASE" ]; then
	say "minbase: up to date"
else
	say "minbase: extracting $BASE_TAR"
	rm -f "$IMG/.minbase.stamp"
	tmp=$IMG/.tmp.$$.minbase
	mkdir "$tmp"
	tar -C "$tmp" "${TAR_META[@]}" --same-owner -xpf "$BASE_TAR" || die "extracting $BASE_TAR failed"
	rm -rf --one-file-system -- "$MINBASE"
	mv "$tmp" "$MINBASE"
	put_stamp "$IMG/.minbase.stamp" "$MINBASE_STAMP"
fi

MKIMAGES_ID=$(sha256sum <"$MKIMAGES" | cut -c1-16)
# build_image NAME TREE: IMG/NAME.tar, minbase + TREE's changes over it,
# rebuilt when the tree's stamp, the minbase or mkimages.py changed.
build_image() {
	local name=$1 tree=$2 key tmp
	key="recipe=$RECIPE mkimages=$MKIMAGES_ID minbase=[$MINBASE_STAMP] tree=[$(cat "$TREES/.${tree##*/}.stamp")]"
	if stamp_ok "$IMG/.$name.key" "$key" && [ -f "$IMG/$name.tar" ]; then
		say "image $name: up to date"
		return 0
	fi
	say "image $name: building (mkimages.py, gzip layers)"
	rm -f "$IMG/.$name.key"
	tmp=$IMG/.tmp.$$.$name.tar
	python3 "$MKIMAGES" oci "$MINBASE" "$tree" "$tmp" --ref "di3fs-bench/$name" ||
		die "mkimages.py failed for $name"
	mv -f "$tmp" "$IMG/$name.tar"
	put_stamp "$IMG/.$name.key" "$key"
}
for pair in "${PAIRS[@]}"; do
	for side in v1 v2; do
		build_image "$pair-$side" "$TREES/$pair-$side"
	done
done

# The big target: nginx v2's image plus a third layer of bulk files.
BULK=$IMG/bulk
BULK_STAMP="recipe=$RECIPE files=$BULK_FILES size=$BULK_SIZE"
if stamp_ok "$IMG/.bulk.stamp" "$BULK_STAMP" && [ -d "$BULK" ]; then
	say "bulk files: up to date"
else
	say "bulk files: generating $BULK_FILES x $BULK_SIZE bytes"
	rm -f "$IMG/.bulk.stamp"
	tmp=$IMG/.tmp.$$.bulk
	rm -rf --one-file-system -- "$tmp"
	mkbulk "$tmp" || die "generating the bulk files failed"
	rm -rf --one-file-system -- "$BULK"
	mv "$tmp" "$BULK"
	put_stamp "$IMG/.bulk.stamp" "$BULK_STAMP"
fi
# The big images: nginx v1's and v2's images, each with one more layer
# holding the same bulk files (same blob, same digest).
BULK_LAYER=
for side in v1 v2; do
	name=nginx-$side-bulk
	key="recipe=$RECIPE bulk=[$BULK_STAMP] image=[$(cat "$IMG/.nginx-$side.key")]"
	if stamp_ok "$IMG/.$name.key" "$key" && [ -f "$IMG/$name.tar" ]; then
		say "image $name: up to date"
		continue
	fi
	if [ -z "$BULK_LAYER" ]; then
		say "bulk layer: tar + gzip -6"
		BULK_LAYER=$IMG/.tmp.$$.bulk-layer.tar.gz
		# Only opt/di3fs-bulk and below: /opt stays as minbase has it.
		tar -C "$BULK" --numeric-owner --owner=0 --group=0 --sort=name --format=posix \
			--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
			-cf - opt/di3fs-bulk | gzip -n -6 >"$BULK_LAYER" || die "bulk layer failed"
	fi
	say "image $name: building (nginx-$side + the bulk layer)"
	rm -f "$IMG/.$name.key"
	tmp=$IMG/.tmp.$$.$name.tar
	add_layer "$IMG/nginx-$side.tar" "$BULK_LAYER" "di3fs-bench/$name" "$tmp" ||
		die "adding the bulk layer failed"
	mv -f "$tmp" "$IMG/$name.tar"
	put_stamp "$IMG/.$name.key" "$key"
done
[ -z "$BULK_LAYER" ] || rm -f "$BULK_LAYER"

# ------------------------------------------------------------ measuring

# timed CMD...: run CMD under GNU time; sets T_SEC (wall seconds) and
# T_MIB (peak RSS of CMD and all its children, MiB). Returns CMD's status.
timed() {
	local rc=0 kb
	/usr/bin/time -f '%e %M' -o "$WORK/time" "$@" || rc=$?
	# On failure GNU time writes a status line first; ours is the last.
	read -r T_SEC kb < <(tail -n 1 "$WORK/time")
	T_MIB=$(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }')
	return $rc
}
# measure PREP CMD...: RUNS times, PREP (a function removing the outputs
# of an earlier run) then CMD under timed. T_SEC is the median wall time,
# T_MIB the largest peak RSS. Stops at the first failing run.
measure() {
	local prep=$1 i times=() mib=0
	shift
	for ((i = 0; i < RUNS; i++)); do
		"$prep"
		sync # write back the previous run, so it does not slow this one
		timed "$@" || return $?
		times+=("$T_SEC")
		mib=$(awk -v a="$mib" -v b="$T_MIB" 'BEGIN { print (b > a) ? b : a }')
	done
	T_SEC=$(printf '%s\n' "${times[@]}" | sort -n |
		awk '{ t[NR] = $1 } END { print t[int((NR + 1) / 2)] }')
	T_MIB=$mib
}
# Output removers for measure; $w is the current work directory.
prep_diff() { rm -f "$w/x.cdimg"; }
prep_apply() { rm -f "$w/out.tar"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
# largest regular file under the directories given, in bytes
largest() { find "$@" -type f -printf '%s\n' | sort -n | tail -n 1; }
dir_bytes() { find "$@" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }

ROWFMT='  %-38s %12s %9s %8s %9s\n'
STATUS=0
REPORT=$WORK/report
: >"$REPORT"
# shellcheck disable=SC2059 # out takes a printf format
out() { printf "$@" >>"$REPORT"; }

# treecmp_to TREE DIR LOG: compare; sets N_ROOT and N_OTHER, the number of
# differences on the root entry (".") and elsewhere. Returns treecmp's status.
treecmp_to() {
	local rc=0
	python3 "$TREECMP" --max-lines 1000000 "$1" "$2" >"$3" 2>&1 || rc=$?
	N_ROOT=$(grep -c '^\.: ' "$3" || :)
	N_OTHER=$(grep -v '^treecmp: ' "$3" | grep -vc '^\.: ' || :)
	return $rc
}
# verify W OUT.tar TREE: extract OUT.tar's single layer as root with GNU
# tar and compare the result with TREE (treecmp). Sets VERIFY (one line)
# and VERIFY_LOG (details worth showing, or empty); returns 1 when the
# rebuilt tree differs. When plain `tar -x` gives differences, the layer is
# extracted a second time with --delay-directory-restore, which sets the
# directories' metadata only at the end: that tells a wrong entry from an
# entry order that makes GNU tar restore a directory's mtime too early.
verify() {
	local w=$1 mt rc=0
	VERIFY='' VERIFY_LOG=''
	rm -rf --one-file-system "$w/rootfs"
	mkdir "$w/rootfs"
	if ! mt=$(layer_blob "$2" "$w/layer" 2>"$w/verify.log"); then
		VERIFY="out.tar unreadable: $(tail -n 1 "$w/verify.log")"
		return 1
	fi
	if ! tar -C "$w/rootfs" "${TAR_META[@]}" --same-owner -xpf "$w/layer" >"$w/verify.log" 2>&1; then
		VERIFY="GNU tar could not extract the layer ($mt)"
		VERIFY_LOG=$w/verify.log
		return 1
	fi
	if treecmp_to "$3" "$w/rootfs" "$w/verify.log"; then
		VERIFY="layer ($mt), GNU tar -x: identical to the v2 tree (treecmp, every path and field)"
		rm -rf --one-file-system "$w/rootfs" "$w/layer"
		return 0
	fi
	local p_root=$N_ROOT p_other=$N_OTHER p_dirmt
	# differences that are directory mtimes, out of all but the root's
	p_dirmt=$(grep -v '^treecmp: \|^\.: ' "$w/verify.log" | grep ': mtime ' |
		sed 's/: mtime .*//' | while IFS= read -r p; do
			[ -d "$3/$p" ] && [ ! -L "$3/$p" ] && echo "$p"
		done | wc -l)
	rm -rf --one-file-system "$w/rootfs"
	mkdir "$w/rootfs"
	tar -C "$w/rootfs" "${TAR_META[@]}" --same-owner --delay-directory-restore \
		-xpf "$w/layer" >"$w/verify2.log" 2>&1 || rc=1
	if [ $rc = 0 ] && treecmp_to "$3" "$w/rootfs" "$w/verify2.log"; then
		VERIFY="layer ($mt): GNU tar -x gives $p_root+$p_other difference(s) (root+other; $p_dirmt of them directory mtimes, listed below); tar -x --delay-directory-restore: identical to the v2 tree (treecmp)"
	elif [ $rc = 0 ] && [ "$N_OTHER" = 0 ]; then
		VERIFY="layer ($mt): GNU tar -x gives $p_root+$p_other difference(s) (root+other; $p_dirmt of them directory mtimes, listed below); tar -x --delay-directory-restore: identical to the v2 tree but for the root entry: $(grep '^\.: ' "$w/verify2.log" | sed 's/^\.: //' | paste -sd ';' -)"
	else
		VERIFY="layer ($mt) DIFFERS from the v2 tree: GNU tar -x gives $p_root+$p_other difference(s) (root+other), tar -x --delay-directory-restore $N_ROOT+$N_OTHER (listed below)"
		cat "$w/verify2.log" >>"$w/verify.log"
		rc=1
	fi
	if [ "$p_other" != 0 ] || [ $rc != 0 ]; then VERIFY_LOG=$w/verify.log; fi
	rm -rf --one-file-system "$w/rootfs" "$w/layer"
	return $rc
}

declare -A MEM # memory rows: KEY_field -> value

for pair in "${PAIRS[@]}"; do
	w=$WORK/$pair
	mkdir -p "$w"
	v1=$IMG/$pair-v1.tar
	v2=$IMG/$pair-v2.tar
	TREE=$TREES/$pair-v2
	img_info "$v1" "$v2" >"$w/info" || die "$pair: cannot read the images"
	read -r ll_bytes full_bytes cfg_bytes man_bytes n_layers n_missing <"$w/info"
	v1_full=$(img_info "$v1" "$v1" | head -n 1 | awk '{ print $2 }')
	big_file=$(largest "$MINBASE" "$TREES/$pair-v1" "$TREE")

	cd_bytes='' cd_t='' cd_m='' ap_t='' ap_m='' out_bytes='' VERIFY='' VERIFY_LOG='' note=''
	if [ -z "$CDIMG" ]; then
		note="cdimg not built (set CDIMG or build ./build/ctr-tools/cdimg)"
	else
		say "$pair: cdimg diff"
		if measure prep_diff "$CDIMG" diff "$v1" "$v2" -o "$w/x.cdimg" >"$w/diff.log" 2>&1; then
			cd_bytes=$(stat -c %s "$w/x.cdimg"); cd_t=$T_SEC; cd_m=$T_MIB
			say "$pair: cdimg apply"
			if measure prep_apply "$CDIMG" apply "$v1" "$w/x.cdimg" -o "$w/out.tar" >"$w/apply.log" 2>&1; then
				ap_t=$T_SEC; ap_m=$T_MIB
				out_bytes=$(stat -c %s "$w/out.tar")
				say "$pair: verifying out.tar against the v2 tree"
				verify "$w" "$w/out.tar" "$TREE" || STATUS=1
			else
				note="cdimg apply FAILED"
				STATUS=1
			fi
		else
			note="cdimg diff FAILED"
			STATUS=1
		fi
	fi
	if [ "$pair" = nginx ]; then
		MEM[a_cd]=$cd_bytes MEM[a_dt]=$cd_t MEM[a_dm]=$cd_m MEM[a_at]=$ap_t MEM[a_am]=$ap_m
	fi

	out '\n== %s\n' "$(printf '%s\n' "$VERSIONS" | grep "^$pair:" | sed "s/^$pair: //")"
	out '  images: v1 %s bytes, v2 %s bytes (compressed layers + config + manifest); largest file %s bytes\n' \
		"$v1_full" "$full_bytes" "$big_file"
	out '  v2 layers:'
	while read -r dg sz st; do out ' %s %s (%s)' "${dg:7:12}" "$sz" "$st"; done < <(tail -n +2 "$w/info")
	out '\n'
	out "$ROWFMT" "row" "bytes" "x layer" "time s" "peak MiB"
	if [ -n "$cd_bytes" ]; then
		out "$ROWFMT" "cdimg diff -> x.cdimg" "$cd_bytes" "$(ratio "$cd_bytes" "$ll_bytes")" "$cd_t" "$cd_m"
	fi
	out "$ROWFMT" "layer-level: $n_missing of $n_layers layers missing" "$ll_bytes" "1.000" "-" "-"
	out "$ROWFMT" "full target image" "$full_bytes" "$(ratio "$full_bytes" "$ll_bytes")" "-" "-"
	if [ -n "$ap_t" ]; then
		out "$ROWFMT" "cdimg apply -> out.tar ($out_bytes B)" "-" "-" "$ap_t" "$ap_m"
	fi
	if [ -n "$note" ]; then
		out '  %s\n' "$note"
		for f in diff apply; do
			[ -f "$w/$f.log" ] && sed 's/^/    /' "$w/$f.log" | tail -n 15 >>"$REPORT"
		done
	fi
	if [ -n "$VERIFY" ]; then
		out '  check: %s\n' "$VERIFY"
		if [ -n "$VERIFY_LOG" ]; then
			sed 's/^/    /' "$VERIFY_LOG" | head -n 40 >>"$REPORT"
		fi
	fi
	out '  (the target config %s B + manifest %s B are in "full"; a pull fetches them too, the .cdimg carries them)\n' \
		"$cfg_bytes" "$man_bytes"
	rm -rf --one-file-system "$w"
done

# Memory against image size. Rows: a = the nginx pair above; b = the same
# pair with the 300 MiB bulk layer on both sides (same changes, 2.5x the
# data to read); c = nginx v1 against v2 + bulk (300 MiB of new content to
# compress); c1 = c with one encoder thread (diff only). Every row's
# largest file is the same 50 MB apt list.
# mem_row KEY BASE TARGET [DIFF-OPTION...]: measure diff and apply of
# BASE -> TARGET into MEM; with diff options, diff only.
mem_row() {
	local k=$1 base=$2 tgt=$3
	shift 3
	w=$WORK/mem-$k
	mkdir -p "$w"
	MEM[${k}_cd]='' MEM[${k}_dt]='' MEM[${k}_dm]='' MEM[${k}_at]='' MEM[${k}_am]=''
	say "memory row $k: cdimg diff $* ${base##*/} ${tgt##*/}"
	if measure prep_diff "$CDIMG" diff "$@" "$base" "$tgt" -o "$w/x.cdimg" >"$w/diff.log" 2>&1; then
		MEM[${k}_cd]=$(stat -c %s "$w/x.cdimg") MEM[${k}_dt]=$T_SEC MEM[${k}_dm]=$T_MIB
		if [ $# -eq 0 ]; then
			say "memory row $k: cdimg apply"
			if measure prep_apply "$CDIMG" apply "$base" "$w/x.cdimg" -o "$w/out.tar" >"$w/apply.log" 2>&1; then
				MEM[${k}_at]=$T_SEC MEM[${k}_am]=$T_MIB
			else
				STATUS=1
				sed 's/^/    /' "$w/apply.log" | tail -n 15 >>"$WORK/mem.log"
			fi
		fi
	else
		STATUS=1
		sed 's/^/    /' "$w/diff.log" | tail -n 15 >>"$WORK/mem.log"
	fi
	rm -rf --one-file-system "$w"
}
if [ -n "$CDIMG" ]; then
	: >"$WORK/mem.log"
	n1=$IMG/nginx-v1.tar n2=$IMG/nginx-v2.tar b1=$IMG/nginx-v1-bulk.tar b2=$IMG/nginx-v2-bulk.tar
	t1=$TREES/nginx-v1 t2=$TREES/nginx-v2
	# label, base and target image, files of both squashed trees
	MEM[a_label]="a: nginx v1 -> v2" MEM[a_base]=$n1 MEM[a_tgt]=$n2
	MEM[a_files]=$(dir_bytes "$t1" "$t2")
	MEM[b_label]="b: v1+bulk -> v2+bulk" MEM[b_base]=$b1 MEM[b_tgt]=$b2
	MEM[b_files]=$(dir_bytes "$t1" "$t2" "$BULK" "$BULK")
	MEM[c_label]="c: v1 -> v2+bulk" MEM[c_base]=$n1 MEM[c_tgt]=$b2
	MEM[c_files]=$(dir_bytes "$t1" "$t2" "$BULK")
	MEM[c1_label]="c1: c with diff -j 1" MEM[c1_base]=$n1 MEM[c1_tgt]=$b2
	MEM[c1_files]=${MEM[c_files]}
	mem_row b "$b1" "$b2"
	mem_row c "$n1" "$b2"
	mem_row c1 "$n1" "$b2" -j 1
	MFMT='  %-24s %10s %10s %10s %9s %9s %7s %8s %7s %9s\n'
	out '\n== peak RSS against image size (nginx; bulk = a third layer of %d files of %d bytes)\n' \
		"$BULK_FILES" "$BULK_SIZE"
	out "$MFMT" "row" "base img B" "target B" "files B" "largest B" ".cdimg B" \
		"diff s" "diff MiB" "apply s" "apply MiB"
	for k in a b c c1; do
		out "$MFMT" "${MEM[${k}_label]}" \
			"$(img_info "${MEM[${k}_base]}" "${MEM[${k}_base]}" | awk 'NR == 1 { print $2 }')" \
			"$(img_info "${MEM[${k}_base]}" "${MEM[${k}_tgt]}" | awk 'NR == 1 { print $2 }')" \
			"${MEM[${k}_files]}" "$(largest "$MINBASE" "$t1" "$t2" "$BULK")" \
			"${MEM[${k}_cd]:-FAILED}" "${MEM[${k}_dt]:--}" "${MEM[${k}_dm]:--}" \
			"${MEM[${k}_at]:--}" "${MEM[${k}_am]:--}"
	done
	out '  files B: regular-file bytes of the squashed base and target trees (what diff reads)\n'
	for k in b c c1; do
		if [ -z "${MEM[${k}_dm]}" ] || [ -z "${MEM[a_dm]}" ]; then continue; fi
		out '  %s against a: files x%s; peak RSS diff x%s' "$k" \
			"$(ratio "${MEM[${k}_files]}" "${MEM[a_files]}")" "$(ratio "${MEM[${k}_dm]}" "${MEM[a_dm]}")"
		if [ -n "${MEM[${k}_am]}" ] && [ -n "${MEM[a_am]}" ]; then
			out ', apply x%s' "$(ratio "${MEM[${k}_am]}" "${MEM[a_am]}")"
		fi
		out '\n'
	done
	cat "$WORK/mem.log" >>"$REPORT"
fi

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
printf '\ndi3fs image benchmark (%s)\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
printf 'machine: %s CPUs (nproc), %s, %s GiB RAM; load average at the end: %s\n' "$(nproc)" "${cpu:-unknown CPU}" \
	"$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'cdimg: %s (default options: zstd -19, one encoder thread per core)\n' "${CDIMG:-not built}"
printf 'images: %s (OCI layout tars, gzip layers: minbase + package layer)\n' "$IMG"
printf 'times: median wall seconds of %d runs (GNU time), peak RSS: largest; x layer = bytes / layer-level bytes\n' "$RUNS"
cat "$REPORT"
exit $STATUS
