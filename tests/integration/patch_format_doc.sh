#!/bin/bash
# docs/patch-format.md and docs/FORMAT.md say enough to read what cdimg
# writes: tests/tools/dimgread.py (a .dimg reader written from FORMAT.md)
# and tests/tools/patchdec.py (a patch decoder written from
# patch-format.md), which share no code with the C implementation, read
# real deltas of small generated trees and rebuild every stored file; each
# must be the true new file, byte for byte. The deltas are made so that
# every codec and variant occurs, which the test checks too: bsdiff,
# zstdref, gzip-recompress with each inner payload (zstd frame, bsdiff,
# zstdref), gzip members with forced block ends (GNU gzip) and a tail, full
# copies with the shared dictionary, and chain patches of 3 steps mixing
# codecs (cdimg merge of 3 deltas). The tree ids in each header are
# recomputed from the trees, and the index resolved against the base.
. "$(dirname "$0")/lib.sh"

for t in zstd gzip; do
	command -v $t >/dev/null || fail "$t is missing (install/deps.sh installs it)"
done

python3 - "$WORK" <<'PY'
import gzip, os, random, string, subprocess, sys

r = random.Random(11)
letters = string.ascii_letters + string.digits
phrases = [" package update ", " security fix ", " upstream release ", " debian changelog "]


def units(n):
    # random 3-character tokens between long repeated phrases: GNU gzip -9
    # closes blocks early on this (few matches, each long), zlib does not
    return "".join("".join(r.choice(letters) for _ in range(3)) + r.choice(phrases)
                   for _ in range(n))


def record(i):
    return i.to_bytes(4, "little") + bytes(r.randrange(256) for _ in range(12)) + bytes(16)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def gnu_gzip(data):
    return subprocess.run(["gzip", "-9n"], input=data, capture_output=True, check=True).stdout


binary, text = bytearray(b"".join(record(i) for i in range(6000))), units(3000)
notes = [units(r.randrange(40, 80)).encode() for _ in range(40)]
for v in range(1, 5):
    d = os.path.join(sys.argv[1], "v%d" % v)
    if v > 1:  # each version: a few bytes changed, some inserted, text added
        at = r.randrange(len(binary) - 64)
        binary[at:at + 10] = bytes(r.randrange(256) for _ in range(10))
        binary[5000 + v:5000 + v] = bytes(r.randrange(256) for _ in range(300))
        text = units(30) + text.replace("fix", "FIX", 3)
    write(d + "/bin.dat", bytes(binary))
    write(d + "/share/gnu.gz", gnu_gzip(text.encode()))
    two = gzip.compress(text[:20000].encode(), 6, mtime=1) + gzip.compress(
        text[20000:].encode(), 1, mtime=2)
    write(d + "/share/members.gz", two + bytes(7))
    # plain text in v1, gzip from v2 on: an inner zstd frame, then patches
    write(d + "/became.gz", gzip.compress(text[:3000].encode(), 9, mtime=0) if v > 1
          else b"plain text, not gzip\n")
    write(d + "/empty", b"")
    os.symlink("bin.dat", d + "/link")
    # v2 on: small new files (a dictionary), a renamed copy, a hardlink
    if v > 1:
        for i, n in enumerate(notes):
            write(d + "/notes/%02d.txt" % i, n + b"v%d\n" % v)
        write(d + "/renamed.dat", bytes(binary[:4096]))
        os.link(d + "/bin.dat", d + "/hard.dat")
    else:
        write(d + "/orig.dat", bytes(binary[:4096]))
PY

d=$WORK
diff_with() {
	"$CDIMG" diff -q --codecs "$1" "$d/$2" "$d/$3" -o "$d/$4"
}
diff_with bsdiff v1 v2 bsdiff.dimg
diff_with zstdref v1 v2 zstdref.dimg
diff_with gzip,bsdiff v1 v2 gz-bsdiff.dimg
diff_with gzip,zstdref v1 v2 gz-zstdref.dimg
# A chain v1 -> v4 whose patches do not compose: bsdiff, then zstdref twice.
diff_with bsdiff,gzip v1 v2 d12.dimg
diff_with zstdref,gzip v2 v3 d23.dimg
diff_with zstdref,gzip v3 v4 d34.dimg
"$CDIMG" merge -q "$d/d12.dimg" "$d/d23.dimg" "$d/d34.dimg" -o "$d/d14.dimg"
# The C side agrees that the chain gives v4.
"$CDIMG" apply -q "$d/v1" "$d/d14.dimg" -o "$d/out14"
$TREECMP "$d/v4" "$d/out14"

python3 - "$SRC/tests/tools" "$d" <<'PY'
import hashlib, os, sys

sys.path.insert(0, sys.argv[1])
import dimgread, patchdec  # noqa: E402

work = sys.argv[2]
seen = {"codec": set(), "inner": set(), "payload": set(), "type": set(), "steps": set()}
counts = {"block_ends": 0, "tails": 0, "zdict": 0, "chain3": 0, "renamed": 0}


def note(e, blob):
    seen["codec"].add(e["codec"])
    if e["codec"] == 3:
        b = patchdec.gzre_parse(blob)
        seen["inner"].add(b["inner"])
        counts["block_ends"] += sum(m["nends"] for m in b["m"])
        counts["tails"] += len(b["tail"]) > 0
    if e["codec"] == 4:
        steps = patchdec.chain_parse(blob)
        seen["steps"].update(s["codec"] for s in steps)
        counts["chain3"] += len(steps) >= 3


def resolve(d, base_dir):
    """FORMAT.md "Index": KEEP and SKIP runs over the base tree's paths."""
    base = [e["path"] for e in dimgread.tree_entries(base_dir)]
    out, at = [], 0
    for op, n in d.ops:
        if op == "entry":
            out.append(os.fsencode(d.entries[n]["path"]))
        else:
            out += base[at:at + n] if op == "keep" else []
            at += n
    assert at == len(base), "index runs do not cover the base"
    return out


def check(name, old_dir, new_dir):
    with open(os.path.join(work, name), "rb") as f:
        d = dimgread.Dimg(f.read())
    assert d.base_id == dimgread.tree_id(old_dir), name + ": base tree id"
    assert d.target_id == dimgread.tree_id(new_dir), name + ": target tree id"
    want = [e["path"] for e in dimgread.tree_entries(new_dir)]
    assert resolve(d, old_dir) == want, name + ": resolved paths are not the target's"
    counts["zdict"] += sum(e["flags"] for e in d.entries)
    for e in d.entries:
        seen["payload"].add(e["payload"])
        seen["type"].add(e["type"])
        counts["renamed"] += e["payload"] == "same" and e["src"] != ""
        if e["payload"] not in ("full", "patch"):
            continue
        with open(os.path.join(new_dir, e["path"]), "rb") as f:
            new = f.read()
        if e["payload"] == "full":
            got = d.full_content(e)
        else:
            with open(os.path.join(old_dir, e["src"] or e["path"]), "rb") as f:
                old = f.read()
            note(e, d.blob(e))
            got = patchdec.apply(e["codec"], old, d.blob(e))
        assert got == new, "%s: %s decodes to other bytes" % (name, e["path"])
        assert len(new) == e["size"] and hashlib.sha256(new).hexdigest() == e["sha256"]
    return d


v = {k: os.path.join(work, k) for k in ("v1", "v2", "v3", "v4")}
for name in ("bsdiff.dimg", "zstdref.dimg", "gz-bsdiff.dimg", "gz-zstdref.dimg", "d12.dimg"):
    check(name, v["v1"], v["v2"])
check("d23.dimg", v["v2"], v["v3"])
check("d34.dimg", v["v3"], v["v4"])
chain = check("d14.dimg", v["v1"], v["v4"])

# Every codec and variant the documents describe was met and decoded.
assert seen["codec"] == {1, 2, 3, 4}, seen
assert seen["inner"] == {0, 1, 2}, seen
assert {1, 2, 3} <= seen["steps"], seen
assert {"empty", "same", "full", "patch"} <= seen["payload"], seen
assert {1, 2, 3, 4} <= seen["type"], seen
assert all(counts.values()), counts

# The decoder enforces the documents' rules, not only their layout.
def refused(err, codec, old, blob):
    try:
        patchdec.apply(codec, old, blob)
    except patchdec.PatchError as e:
        assert e.err == err, "%s instead of %s" % (e.err, err)
        return
    raise AssertionError("a broken blob decoded (want %s)" % err)


e = next(e for e in chain.entries if e["path"] == "bin.dat")
assert e["codec"] == 4, e
blob = chain.blob(e)
with open(os.path.join(v["v1"], e["src"] or e["path"]), "rb") as f:
    old = f.read()
refused("EBADMSG", 4, old, blob + b"\0")
refused("ENOTSUP", 4, old, b"\2" + blob[1:])
steps = patchdec.chain_parse(blob)
first = steps[0]["blob"]
refused("EXDEV", steps[0]["codec"], old + b"x", first)
sha = steps[0]["sha256"]
refused("EBADMSG", 4, old, blob.replace(sha, bytes([sha[0] ^ 1]) + sha[1:], 1))
print("patch_format_doc: codecs %s, gzip inner payloads %s, chain step codecs %s, %s"
      % (sorted(seen["codec"]), sorted(seen["inner"]), sorted(seen["steps"]), counts))
PY
echo "patch_format_doc: ok"
