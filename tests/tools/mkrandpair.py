#!/usr/bin/env python3
"""Builds a random pair of trees OUT/v1 and OUT/v2 for round-trip tests.

v1 holds every entry type and metadata field di3fs keeps; v2 is v1 after a
random mix of the changes real image updates make: edited binaries, appended
and truncated files, renames, version-named renames (libfoo.so.1.2 ->
libfoo.so.1.3), duplicates, deletions, additions, mode (setuid/setgid/sticky),
owner, mtime and xattr changes, hardlinks made and broken, symlinks
retargeted, devices, fifos, type changes at one path.

usage: mkrandpair.py SEED OUT [--small] [--no-root-features] [--chain N | --v3]
Root is needed for devices, ownership and security.* xattrs.
--chain N makes OUT/v1 .. OUT/vN instead, each one the previous one after
another round of such changes (N >= 2; --chain 2 is the pair; --v3 is
--chain 3).
"""
import os
import random
import shutil
import stat
import sys


def rand_bytes(rng, n, text=False):
    if text:
        words = [b"alpha", b"beta", b"gamma", b"delta", b"\n", b"config", b"=", b"42"]
        out = bytearray()
        while len(out) < n:
            out += rng.choice(words) + b" "
        return bytes(out[:n])
    # Binary-like: repeated structures with noise, so patches have something to find.
    blocks = [rng.randbytes(64) for _ in range(8)]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(blocks) if rng.random() < 0.7 else rng.randbytes(rng.randint(1, 200))
    return bytes(out[:n])


def mutate(rng, data):
    d = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        pos = rng.randint(0, len(d)) if d else 0
        if op < 0.4 and d:
            for _ in range(rng.randint(1, 16)):
                d[rng.randrange(len(d))] = rng.randrange(256)
        elif op < 0.7:
            d[pos:pos] = rng.randbytes(rng.randint(1, 300))
        elif op < 0.85 and d:
            del d[pos:pos + rng.randint(1, 300)]
        else:
            d += rng.randbytes(rng.randint(1, 500))
    return bytes(d)


def capability(rng):
    # VFS_CAP_REVISION_2 with the effective flag: magic_etc, then
    # permitted/inheritable pairs for two 32-bit words.
    perm = rng.choice([1 << 10, 1 << 12, 1 << 13])  # net_bind_service, net_admin, net_raw
    vals = [0x02000001, perm, 0, 0, 0]
    return b"".join(v.to_bytes(4, "little") for v in vals)


class Gen:
    def __init__(self, rng, root, small, privileged):
        self.rng, self.root, self.small, self.priv = rng, root, small, privileged

    def path(self, rel):
        return os.path.join(self.root, rel)

    def meta(self, rel, mode, is_link=False):
        p = self.path(rel)
        rng = self.rng
        if self.priv:
            os.chown(p, rng.choice([0, 0, 1, 33, 1000, 65534]), rng.choice([0, 0, 4, 100, 65534]),
                     follow_symlinks=False)
        if not is_link:
            os.chmod(p, mode)
        ns = rng.randint(-10**9, 2 * 10**9) * 10**9 + rng.randint(0, 10**9 - 1)
        os.utime(p, ns=(ns, ns), follow_symlinks=False)

    def xattrs(self, rel):
        p = self.path(rel)
        rng = self.rng
        if rng.random() < 0.3:
            os.setxattr(p, "user.note", rand_bytes(rng, rng.randint(0, 40), True))
        if self.priv and rng.random() < 0.2:
            os.setxattr(p, "security.capability", capability(rng))

    def write(self, rel, data, mode=None):
        with open(self.path(rel), "wb") as f:
            f.write(data)
        self.xattrs(rel)
        if mode is None:
            mode = self.rng.choice([0o644, 0o755, 0o600, 0o4755, 0o2755, 0o444])
        self.meta(rel, mode)


def build_v1(rng, root, small, priv):
    g = Gen(rng, root, small, priv)
    os.makedirs(root)
    nfiles = 25 if small else 120
    dirs = ["", "bin", "etc", "usr", "usr/lib", "usr/share", "usr/share/doc",
            "usr/share/doc/foo-1.2.3", "var", "var/empty"]
    for d in dirs[1:]:
        os.mkdir(g.path(d))
    files = []
    for i in range(nfiles):
        d = rng.choice(dirs[1:])
        name = rng.choice(["f%d" % i, "lib%d.so.1.%d" % (i, rng.randint(0, 9)),
                           "tool%d" % i, "conf%d.txt" % i, "README%d" % i])
        rel = os.path.join(d, name)
        if os.path.exists(g.path(rel)):
            continue
        size = rng.choice([0, 1, 10, 300, 4000, 20000] + ([] if small else [150000]))
        g.write(rel, rand_bytes(rng, size, text=name.startswith("conf")))
        files.append(rel)
    # Hardlink groups across directories.
    for i in range(3):
        src = rng.choice(files)
        dst = os.path.join(rng.choice(["bin", "usr/lib", "etc"]), "hl%d" % i)
        if not os.path.exists(g.path(dst)):
            os.link(g.path(src), g.path(dst))
    os.symlink("../usr/lib", g.path("bin/rel-link"))
    os.symlink("/etc/absolute-target", g.path("etc/abs-link"))
    os.symlink("dangling/nowhere", g.path("var/dangling"))
    os.mkfifo(g.path("var/fifo"))
    if priv:
        os.mknod(g.path("var/null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(g.path("var/blk"), 0o660 | stat.S_IFBLK, os.makedev(8, 1))
        os.chown(g.path("var/blk"), 0, 6)
    g.write("usr/share/doc/foo-1.2.3/changelog", rand_bytes(rng, 3000, True), 0o644)
    g.write("usr/lib/libfoo.so.1.2", rand_bytes(rng, 30000), 0o755)
    os.mkdir(g.path("tmp"))
    os.chmod(g.path("tmp"), 0o1777)
    # Directory metadata last: creating entries changes a directory's mtime.
    for d in reversed(dirs[1:] + ["tmp"]):
        g.xattrs(d)
        g.meta(d, 0o1777 if d == "tmp" else rng.choice([0o755, 0o750, 0o2755]))
    return files


def regular_files(root):
    out = []
    for dp, dns, fns in os.walk(root):
        for fn in fns:
            p = os.path.join(dp, fn)
            if stat.S_ISREG(os.lstat(p).st_mode):
                out.append(os.path.relpath(p, root))
    return sorted(out)


def change_v2(rng, root, priv, step=1):
    g = Gen(rng, root, False, priv)
    # The version-named files are changed below, in their own way.
    files = [f for f in regular_files(root) if "foo" not in f]
    rng.shuffle(files)
    n = len(files)
    plan = files[: max(1, n // 2)]
    for rel in plan:
        if not os.path.exists(g.path(rel)) or os.path.isdir(g.path(rel + ".moved")) \
                or os.path.isdir(g.path(rel + ".copy")):
            continue
        r = rng.random()
        if r < 0.35:  # edit in place (keeps hardlinks)
            with open(g.path(rel), "rb") as f:
                data = f.read()
            with open(g.path(rel), "r+b") as f:
                f.truncate(0)
                f.write(mutate(rng, data))
        elif r < 0.45:  # rename
            dst = rel + ".moved"
            os.rename(g.path(rel), g.path(dst))
        elif r < 0.5:  # duplicate
            shutil.copy2(g.path(rel), g.path(rel + ".copy"))
        elif r < 0.6:
            os.unlink(g.path(rel))
        elif r < 0.7:
            os.chmod(g.path(rel), rng.choice([0o4755, 0o2711, 0o1644, 0o600]))
        elif r < 0.75 and priv:
            os.chown(g.path(rel), 1234, 5678)
        elif r < 0.85:
            ns = rng.randint(0, 2 * 10**18)
            os.utime(g.path(rel), ns=(ns, ns))
        elif r < 0.9:
            os.setxattr(g.path(rel), "user.changed", b"yes")
        else:  # replace a file by a directory at the same path
            os.unlink(g.path(rel))
            os.mkdir(g.path(rel))
            g.write(os.path.join(rel, "inner"), b"now a dir")
    # Version-named rename with an edit, like a library upgrade.
    lib = "usr/lib/libfoo.so.1.%d" % (step + 1)
    with open(g.path(lib), "rb") as f:
        data = f.read()
    os.unlink(g.path(lib))
    g.write("usr/lib/libfoo.so.1.%d" % (step + 2), mutate(rng, data), 0o755)
    os.rename(g.path("usr/share/doc/foo-1.2.%d" % (step + 2)),
              g.path("usr/share/doc/foo-1.2.%d" % (step + 3)))
    for i in range(5):
        name = "usr/share/new%d" % i if step == 1 else "usr/share/new%d-%d" % (step, i)
        g.write(name, rand_bytes(rng, rng.choice([0, 5, 5000])))
    os.unlink(g.path("bin/rel-link"))
    os.symlink("../usr/share", g.path("bin/rel-link"))
    # A new hardlink and a broken one.
    files = regular_files(root)
    os.link(g.path(files[0]), g.path("etc/new-hardlink" + ("" if step == 1 else str(step))))
    if os.path.exists(g.path("bin/hl0")):
        os.unlink(g.path("bin/hl0"))
    os.mkfifo(g.path("etc/newfifo" + ("" if step == 1 else str(step))))
    os.chmod(g.path("tmp"), 0o1770)
    ns = 1700000000123456789
    os.utime(g.path("usr/share"), ns=(ns, ns))


def main():
    argv = sys.argv[1:]
    chain = 2
    if "--v3" in argv:
        argv = [a for a in argv if a != "--v3"] + ["--chain", "3"]
    if "--chain" in argv:
        i = argv.index("--chain")
        if i + 1 >= len(argv) or not argv[i + 1].isdigit() or int(argv[i + 1]) < 2:
            print("--chain needs N >= 2", file=sys.stderr)
            return 2
        chain = int(argv[i + 1])
        del argv[i:i + 2]
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    seed, out = int(args[0]), args[1]
    small = "--small" in argv
    priv = os.geteuid() == 0 and "--no-root-features" not in argv
    rng = random.Random(seed)
    vs = [os.path.join(out, "v%d" % k) for k in range(1, chain + 1)]
    for d in vs:
        if os.path.exists(d):
            shutil.rmtree(d)
    build_v1(rng, vs[0], small, priv)
    for k in range(1, chain):
        # cp -a keeps hardlinks, xattrs, owners, devices and times.
        if os.system("cp -a '%s' '%s'" % (vs[k - 1], vs[k])) != 0:
            return 1
        change_v2(rng, vs[k], priv, k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
