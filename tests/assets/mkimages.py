#!/usr/bin/env python3
"""mkimages.py - build real container images from directory trees, for tests.

usage:
  mkimages.py oci BASE_DIR NEW_DIR OUT [--ref NAME:TAG] [--docker-save]
              [--layout-dir] [--no-gzip] [--opaque DIR]... [--multi-arch]
  mkimages.py synth OUT_DIR

`oci` writes a 2-layer image: layer 1 is all of BASE_DIR, layer 2 what
NEW_DIR changes over it, the way `docker diff` sees it: entries that are
new or differ (type, mode, owner, mtime, size, content, link target,
device, xattrs, hardlink group), every parent directory of those, OCI
whiteouts (.wh.NAME) for paths NEW_DIR no longer has, and for each
--opaque DIR an opaque directory (.wh..wh..opq) followed by all of
NEW_DIR's DIR. Squashing both layers gives NEW_DIR exactly.

  default        OCI image layout tar, gzip layers, ref.name annotation
  --layout-dir   the OCI layout as a directory OUT instead of a tar
  --no-gzip      uncompressed layers (application/vnd.oci.image.layer.v1.tar)
  --docker-save  `docker save` format (manifest.json, RepoTags, <id>/layer.tar
                 uncompressed, <digest>.json config)
  --multi-arch   nested index: this image for this machine plus a linux/s390x
                 (or linux/amd64 here on s390x) image of layer 1 only

Layer tars are PAX with numeric owners, nanosecond mtimes, devices, fifos,
hardlinks, symlinks and xattrs as SCHILY.xattr.* records. Output is
deterministic for a given input.

`synth` makes OUT_DIR/base and OUT_DIR/new: small trees holding what a
squash must keep (setuid/setgid/sticky, owners, capabilities and other
xattrs, devices, fifos, hardlinks, symlinks, nanosecond mtimes, long
names, deleted files and subtrees, type changes, a directory to pass as
--opaque var/cache). Needs root (devices, owners, trusted.* xattrs).

Python standard library only.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import stat
import sys
import tarfile
import tempfile

ROOT = ""


def goarch():
    m = platform.machine()
    return {
        "x86_64": "amd64",
        "aarch64": "arm64",
        "armv7l": "arm",
        "i686": "386",
        "i386": "386",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
        "riscv64": "riscv64",
    }.get(m, m)


# ---- reading trees -------------------------------------------------------


def tar_order(rel):
    """Depth first, names sorted within a directory: a directory's entries
    follow it directly, as tar and docker write them (a plain string sort
    would put "a.txt" between "a/" and "a/b", and GNU tar, which restores a
    directory's mtime once it has left it, would then see it change)."""
    return [c.encode("utf-8", "surrogateescape") for c in rel.split("/")] if rel else []


def walk(root):
    """Sorted relative paths (bytes-safe str) of the tree, root first."""
    out = [ROOT]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel
        for n in dirnames + sorted(filenames):
            out.append(os.path.join(rel, n) if rel else n)
    # Dirs that are symlinks show up in dirnames: os.walk does not follow them.
    return sorted(set(out), key=tar_order)


def xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in sorted(names)}


class Node:
    def __init__(self, root, rel):
        self.rel = rel
        self.abs = os.path.join(root, rel) if rel else root
        self.st = os.lstat(self.abs)
        self.xattrs = xattrs(self.abs)
        self.link = os.readlink(self.abs) if stat.S_ISLNK(self.st.st_mode) else None
        self._sha = None

    def sha(self):
        if self._sha is None:
            h = hashlib.sha256()
            with open(self.abs, "rb") as f:
                for b in iter(lambda: f.read(1 << 20), b""):
                    h.update(b)
            self._sha = h.hexdigest()
        return self._sha

    def key(self, groups):
        st = self.st
        k = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
             st.st_mtime_ns, self.link, tuple(self.xattrs.items()))
        if stat.S_ISREG(st.st_mode):
            k += (st.st_size, self.sha(), tuple(groups.get((st.st_dev, st.st_ino), ())))
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            k += (st.st_rdev,)
        return k


def load(root):
    nodes = {}
    groups = {}
    for rel in walk(root):
        n = Node(root, rel)
        if stat.S_ISSOCK(n.st.st_mode):
            continue
        nodes[rel] = n
        if stat.S_ISREG(n.st.st_mode) and n.st.st_nlink > 1:
            groups.setdefault((n.st.st_dev, n.st.st_ino), []).append(rel)
    return nodes, groups


# ---- writing layers ------------------------------------------------------


class HashWriter:
    """File-like sink that hashes and counts what passes to `out`."""

    def __init__(self, out):
        self.out = out
        self.h = hashlib.sha256()
        self.n = 0

    def write(self, b):
        self.h.update(b)
        self.n += len(b)
        self.out.write(b)
        return len(b)

    def flush(self):
        pass


def tarinfo(n, name, linkto=None):
    st = n.st
    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.uname = ti.gname = ""
    ti.mtime = st.st_mtime_ns // 1000000000
    ns = st.st_mtime_ns % 1000000000
    pax = {}
    if ns:
        pax["mtime"] = "%d.%09d" % (ti.mtime, ns)
    for k, v in n.xattrs.items():
        pax["SCHILY.xattr." + k] = v.decode("utf-8", "surrogateescape")
    if linkto is not None:
        ti.type, ti.linkname = tarfile.LNKTYPE, linkto
    elif stat.S_ISDIR(st.st_mode):
        ti.type = tarfile.DIRTYPE
    elif stat.S_ISREG(st.st_mode):
        ti.type, ti.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISLNK(st.st_mode):
        ti.type, ti.linkname = tarfile.SYMTYPE, n.link
    elif stat.S_ISFIFO(st.st_mode):
        ti.type = tarfile.FIFOTYPE
    else:
        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    ti.pax_headers = pax
    return ti


def whiteout_info(name, mtime):
    ti = tarfile.TarInfo(name)
    ti.mode, ti.uid, ti.gid, ti.mtime = 0o644, 0, 0, mtime
    ti.uname = ti.gname = ""
    return ti


def write_layer(path, entries, nodes, gz):
    """entries: list of (kind, rel) with kind in node/whiteout/opaque.
    Returns (blob digest, blob size, diff_id)."""
    with open(path, "wb") as f:
        blob = HashWriter(f)
        z = gzip.GzipFile(filename="", mode="wb", fileobj=blob, mtime=0) if gz else blob
        diff = HashWriter(z)
        seen = {}  # (dev, ino) -> name in this layer
        with tarfile.open(fileobj=diff, mode="w|", format=tarfile.PAX_FORMAT,
                          encoding="utf-8") as t:
            for kind, rel in entries:
                if kind != "node":
                    t.addfile(whiteout_info(rel, 0))
                    continue
                n = nodes[rel]
                name = rel if rel else "."
                ino = (n.st.st_dev, n.st.st_ino)
                if stat.S_ISREG(n.st.st_mode) and n.st.st_nlink > 1 and ino in seen:
                    t.addfile(tarinfo(n, name, seen[ino]))
                    continue
                ti = tarinfo(n, name)
                if ti.type == tarfile.REGTYPE:
                    seen[ino] = name
                    with open(n.abs, "rb") as src:
                        t.addfile(ti, src)
                else:
                    t.addfile(ti)
        if gz:
            z.close()
    return blob.h.hexdigest(), blob.n, diff.h.hexdigest()


def parents(rel):
    out = [ROOT]
    parts = rel.split("/")[:-1]
    for i in range(len(parts)):
        out.append("/".join(parts[: i + 1]))
    return out


def under(rel, d):
    return rel == d or rel.startswith(d + "/")


def layer2_entries(base, bgroups, new, ngroups, opaque):
    """The changes that turn base into new, as ordered tar entries."""
    want = set()
    marks = []  # (parent rel, entry name) whiteouts and opaque markers
    for rel, n in new.items():
        b = base.get(rel)
        if any(under(rel, d) for d in opaque) or b is None or b.key(bgroups) != n.key(ngroups):
            want.add(rel)
    # Whole hardlink groups, so links find their target in this layer.
    for members in ngroups.values():
        if any(m in want for m in members):
            want.update(members)
    for d in opaque:
        marks.append((d, ".wh..wh..opq"))
    for rel in base:
        if rel in new or any(under(rel, d) for d in opaque):
            continue
        par = rel.rsplit("/", 1)[0] if "/" in rel else ROOT
        if par in base and par not in new:
            continue  # its topmost deleted ancestor gets the whiteout
        if par in new and stat.S_ISDIR(new[par].st.st_mode):
            marks.append((par, ".wh." + rel.rsplit("/", 1)[-1]))
    for rel in list(want) + [p for p, _ in marks]:
        want.update(parents(rel))
        if rel in new:
            want.add(rel)
    out = []
    bydir = {}
    for par, name in marks:
        bydir.setdefault(par, []).append(name)
    for rel in sorted(want, key=tar_order):
        out.append(("node", rel))
        for name in sorted(bydir.get(rel, [])):
            out.append(("mark", (rel + "/" if rel else "") + name))
    return out


# ---- image formats -------------------------------------------------------


def put_blob(blobdir, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobdir, d), "wb") as f:
        f.write(data)
    return d, len(data)


def jbytes(o):
    return json.dumps(o, sort_keys=True, separators=(",", ":")).encode()


def make_layers(args, tmp):
    base, bgroups = load(args.base)
    new, ngroups = load(args.new)
    gz = not args.no_gzip and not args.docker_save
    l1 = [("node", rel) for rel in base]
    l2 = layer2_entries(base, bgroups, new, ngroups, args.opaque)
    layers = []
    for i, (entries, src) in enumerate(((l1, base), (l2, new))):
        path = os.path.join(tmp, "layer%d" % i)
        digest, size, diff = write_layer(path, entries, src, gz)
        layers.append({"path": path, "digest": digest, "size": size, "diff_id": diff})
    return layers, gz


def config_for(layers, arch):
    return {
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "created": "2024-01-01T00:00:00Z",
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "mkimages.py"}
                    for _ in layers],
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + l["diff_id"] for l in layers]},
    }


def oci_manifest(blobdir, layers, gz, arch):
    cfg, cfg_size = put_blob(blobdir, jbytes(config_for(layers, arch)))
    mt = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "")
    man = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + cfg, "size": cfg_size},
        "layers": [{"mediaType": mt, "digest": "sha256:" + l["digest"], "size": l["size"]}
                   for l in layers],
    }
    d, size = put_blob(blobdir, jbytes(man))
    return {"mediaType": man["mediaType"], "digest": "sha256:" + d, "size": size,
            "platform": {"architecture": arch, "os": "linux"}}


def write_oci(args, layers, gz, out_dir):
    blobdir = os.path.join(out_dir, "blobs", "sha256")
    os.makedirs(blobdir)
    for l in layers:
        os.rename(l["path"], os.path.join(blobdir, l["digest"]))
    desc = oci_manifest(blobdir, layers, gz, goarch())
    if args.multi_arch:
        other = "s390x" if goarch() != "s390x" else "amd64"
        desc2 = oci_manifest(blobdir, layers[:1], gz, other)
        inner = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [desc2, desc]}
        d, size = put_blob(blobdir, jbytes(inner))
        desc = {"mediaType": inner["mediaType"], "digest": "sha256:" + d, "size": size}
    if args.ref:
        desc["annotations"] = {"org.opencontainers.image.ref.name": args.ref}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [desc]}
    with open(os.path.join(out_dir, "index.json"), "wb") as f:
        f.write(jbytes(index))
    with open(os.path.join(out_dir, "oci-layout"), "wb") as f:
        f.write(jbytes({"imageLayoutVersion": "1.0.0"}))


def write_docker(args, layers, out_dir):
    cfg = jbytes(config_for(layers, goarch()))
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    with open(os.path.join(out_dir, cfg_name), "wb") as f:
        f.write(cfg)
    names, parent = [], ""
    for l in layers:
        lid = hashlib.sha256((parent + l["diff_id"]).encode()).hexdigest()
        os.makedirs(os.path.join(out_dir, lid))
        os.rename(l["path"], os.path.join(out_dir, lid, "layer.tar"))
        with open(os.path.join(out_dir, lid, "VERSION"), "w") as f:
            f.write("1.0")
        with open(os.path.join(out_dir, lid, "json"), "wb") as f:
            f.write(jbytes({"id": lid, "parent": parent} if parent else {"id": lid}))
        names.append(lid + "/layer.tar")
        parent = lid
    tags = [args.ref] if args.ref else []
    man = [{"Config": cfg_name, "RepoTags": tags, "Layers": names}]
    with open(os.path.join(out_dir, "manifest.json"), "wb") as f:
        f.write(jbytes(man))
    if args.ref:
        name, tag = args.ref.rsplit(":", 1)
        with open(os.path.join(out_dir, "repositories"), "wb") as f:
            f.write(jbytes({name: {tag: parent}}))


def tar_dir(src, out):
    """Plain tar of a layout directory, members sorted, fixed metadata."""
    with tarfile.open(out + ".tmp", "w", format=tarfile.PAX_FORMAT) as t:
        for rel in walk(src)[1:]:
            ti = t.gettarinfo(os.path.join(src, rel), rel)
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            ti.mtime = 0
            if ti.isfile():
                with open(os.path.join(src, rel), "rb") as f:
                    t.addfile(ti, f)
            else:
                t.addfile(ti)
    os.rename(out + ".tmp", out)


def cmd_oci(args):
    out = os.path.abspath(args.out)
    parent = os.path.dirname(out)
    with tempfile.TemporaryDirectory(dir=parent, prefix=".mkimages-") as tmp:
        layers, gz = make_layers(args, tmp)
        lay = os.path.join(tmp, "layout")
        os.mkdir(lay)
        if args.docker_save:
            write_docker(args, layers, lay)
        else:
            write_oci(args, layers, gz, lay)
        if args.layout_dir:
            os.rename(lay, out)
        else:
            tar_dir(lay, out)


# ---- synthetic trees -----------------------------------------------------


def mk(root, rel, data=b"", mode=0o644, uid=0, gid=0, ns=None, xa=None):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    os.chown(p, uid, gid)
    os.chmod(p, mode)
    for k, v in (xa or {}).items():
        os.setxattr(p, k, v)
    if ns is not None:
        os.utime(p, ns=(ns, ns))


def mkdir(root, rel, mode=0o755, uid=0, gid=0):
    p = os.path.join(root, rel)
    os.makedirs(p, exist_ok=True)
    os.chown(p, uid, gid)
    os.chmod(p, mode)


# A raw VFS_CAP_REVISION_2 capability: cap_net_bind_service+ep.
CAP = bytes([0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])


def synth_common(r):
    mkdir(r, "bin")
    mk(r, "bin/suid", b"#!/bin/sh\n", 0o4755)
    mk(r, "bin/sgid", b"#!/bin/sh\n", 0o2755, 0, 50)
    mk(r, "bin/ping", b"\x7fELF fake", 0o755, xa={"security.capability": CAP})
    mkdir(r, "tmp", 0o1777)
    mkdir(r, "home/user", 0o700, 1000, 1000)
    mk(r, "home/user/.profile", b"export A=1\n", 0o600, 1000, 1000,
       xa={"user.comment": b"hello", "trusted.bin": bytes(range(256))[::7]})
    mkdir(r, "dev")
    os.mknod(os.path.join(r, "dev/null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(os.path.join(r, "dev/loop0"), stat.S_IFBLK | 0o660, os.makedev(7, 0))
    os.chown(os.path.join(r, "dev/loop0"), 0, 6)
    os.mkfifo(os.path.join(r, "dev/initctl"), 0o600)
    os.symlink("usr/lib", os.path.join(r, "lib"))
    os.symlink("/etc/passwd", os.path.join(r, "abs-link"))
    mk(r, "usr/lib/libx.so.1", os.urandom(5000) * 3)
    long = "/".join(["d%02d-%s" % (i, "x" * 20) for i in range(6)]) + "/" + "f" * 120
    mk(r, "usr/share/" + long, b"long name\n")
    mk(r, "usr/share/empty", b"")


def synth(out):
    base, new = os.path.join(out, "base"), os.path.join(out, "new")
    for r in (base, new):
        os.makedirs(r)
        synth_common(r)
    # base only, or changed in new
    mk(base, "etc/conf", b"v1\n", ns=1700000000123456789)
    mk(new, "etc/conf", b"v2 longer\n", ns=1700000100987654321)
    mk(base, "etc/gone", b"deleted in new\n")
    mk(base, "etc/dir-gone/a/b", b"deleted subtree\n")
    mk(base, "var/cache/old1", b"old cache 1\n")
    mk(base, "var/cache/sub/old2", b"old cache 2\n")
    mk(base, "var/cache/keep", b"same name, opaque layer still has it\n")
    mk(new, "var/cache/keep", b"same name, opaque layer still has it\n")
    mk(new, "var/cache/fresh", b"new cache\n")
    mk(base, "swap/child", b"dir in base\n")
    mk(new, "swap", b"file in new\n")
    mk(base, "flip", b"file in base\n")
    mk(new, "flip/child", b"dir in new\n")
    for r in (base, new):
        mk(r, "data/hl-a", b"linked content\n", 0o640, 0, 4)
        os.link(os.path.join(r, "data/hl-a"), os.path.join(r, "data/hl-b"))
    os.link(os.path.join(base, "data/hl-a"), os.path.join(base, "data/hl-c"))
    mk(new, "data/mode-only", b"same bytes\n", 0o600)
    mk(base, "data/mode-only", b"same bytes\n", 0o644)
    mk(new, "data/xattr-only", b"same\n", xa={"user.tag": b"new"})
    mk(base, "data/xattr-only", b"same\n", xa={"user.tag": b"old"})
    # Directory mtimes last: creating entries above changed them.
    for r in (base, new):
        for rel in reversed(walk(r)):
            p = os.path.join(r, rel) if rel else r
            if os.path.isdir(p) and not os.path.islink(p):
                os.utime(p, ns=(1600000000000000000 + len(rel), 1600000000000000000 + 7 * len(rel)))


def main():
    ap = argparse.ArgumentParser(description="build test container images")
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("oci")
    o.add_argument("base")
    o.add_argument("new")
    o.add_argument("out")
    o.add_argument("--ref")
    o.add_argument("--docker-save", action="store_true")
    o.add_argument("--layout-dir", action="store_true")
    o.add_argument("--no-gzip", action="store_true")
    o.add_argument("--multi-arch", action="store_true")
    o.add_argument("--opaque", action="append", default=[])
    s = sub.add_parser("synth")
    s.add_argument("out")
    args = ap.parse_args()
    if args.cmd == "oci":
        args.opaque = [d.strip("/") for d in args.opaque]
        cmd_oci(args)
    else:
        synth(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
