#!/usr/bin/env python3
"""mkoci.py - make an OCI image layout tar from a root filesystem directory,
as ONE gzip layer, for tests (python3 stdlib only).

    mkoci.py [--ref NAME] [--arch ARCH] [--env K=V]... [--label K=V]...
             [--entrypoint JSON] [--cmd JSON] [--workdir DIR] [--sparse]
             ROOTFS OUT.tar
    mkoci.py [options] --layer LAYER.tar - OUT.tar

The layer is a PAX tar that keeps what an image layer can hold: owners,
full modes (setuid/setgid/sticky), nanosecond mtimes, devices, fifos,
symlinks, hardlinks and xattrs (SCHILY.xattr.*). Entries go in byte order
of their paths; gzip and the outer tar have fixed headers, so the same
tree gives the same bytes. Sockets are skipped; the root entry is left out,
as in most real layers. Must run as root to read every file of a real tree.
With --sparse, files with holes become PAX 1.0 sparse members (what
`tar --sparse --format=posix` writes): only their data regions are stored.
With --layer, the layer is LAYER.tar as it is (a tar some other writer
made), gzipped the same way.
"""
import argparse
import errno
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import sys
import tarfile
import tempfile

CHUNK = 1 << 20


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def tree_paths(root):
    """Every path under root but root itself, sorted as bytes."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            out.append(os.fsencode(os.path.relpath(full, root)))
    out.sort()
    return [os.fsdecode(p) for p in out]


def data_regions(f, size):
    """The (offset, length) runs of f that hold data, by SEEK_DATA/SEEK_HOLE."""
    fd, pos, out = f.fileno(), 0, []
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
            break
        pos = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        out.append((start, pos - start))
    f.seek(0)  # lseek moved the offset the whole-file path reads from
    return out


class SparseBody(io.RawIOBase):
    """A PAX 1.0 sparse member's body: the map (count, then offset and
    length of each run, a trailing (size, 0) run, NUL-padded to a block),
    then the runs' bytes."""

    def __init__(self, f, runs, size):
        nums = [len(runs) + 1] + [x for r in runs for x in r] + [size, 0]
        head = "".join("%d\n" % x for x in nums).encode()
        self.parts = [io.BytesIO(head + b"\0" * (-len(head) % 512))]
        self.parts += [(f, off, n) for off, n in runs]
        self.size = len(self.parts[0].getvalue()) + sum(n for _, n in runs)

    def readable(self):
        return True

    def readinto(self, b):
        while self.parts:
            p = self.parts[0]
            if isinstance(p, io.BytesIO):
                data = p.read(len(b))
            else:
                f, off, n = p
                data = os.pread(f.fileno(), min(len(b), n), off)
                self.parts[0] = (f, off + len(data), n - len(data))
            if data:
                b[:len(data)] = data
                return len(data)
            self.parts.pop(0)
        return 0


def add_regular(tar, ti, path, sparse):
    with open(path, "rb") as f:
        runs = data_regions(f, ti.size) if sparse and ti.size else None
        if runs is None or runs == [(0, ti.size)]:
            tar.addfile(ti, f)
            return
        body = SparseBody(f, runs, ti.size)
        d, base = os.path.split(ti.name)
        ti.pax_headers.update({"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                               "GNU.sparse.name": ti.name,
                               "GNU.sparse.realsize": str(ti.size)})
        ti.name = os.path.join(d, "GNUSparseFile.0", base)
        ti.size = body.size
        tar.addfile(ti, io.BufferedReader(body, CHUNK))


def add_entry(tar, root, rel, sparse=False):
    path = os.path.join(root, rel)
    st = os.lstat(path)
    if stat.S_ISSOCK(st.st_mode):
        return
    ti = tar.gettarinfo(path, arcname=rel)
    ti.uname = ti.gname = ""
    ti.mode = stat.S_IMODE(st.st_mode)
    sec, nsec = divmod(st.st_mtime_ns, 1_000_000_000)
    ti.mtime = sec
    ti.pax_headers = {"mtime": "%d.%09d" % (sec, nsec)} if nsec else {}
    if not stat.S_ISLNK(st.st_mode):
        for name in sorted(os.listxattr(path, follow_symlinks=False)):
            value = os.getxattr(path, name, follow_symlinks=False)
            ti.pax_headers["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    if ti.type == tarfile.REGTYPE:
        add_regular(tar, ti, path, sparse)
    else:
        tar.addfile(ti)


def make_layer(root, workdir, sparse=False, layer=None):
    """Writes layer.tar (or takes `layer`) and layer.tar.gz; returns
    (diff_id, digest, size, path of the .gz)."""
    raw = layer or os.path.join(workdir, "layer.tar")
    if layer is None:
        with tarfile.open(raw, "w", format=tarfile.PAX_FORMAT, encoding="utf-8",
                          errors="surrogateescape") as tar:
            for rel in tree_paths(root):
                add_entry(tar, root, rel, sparse)
    packed = os.path.join(workdir, "layer.tar.gz")
    with open(raw, "rb") as src, open(packed, "wb") as dst:
        with gzip.GzipFile(filename="", mode="wb", fileobj=dst, mtime=0, compresslevel=6) as gz:
            shutil.copyfileobj(src, gz, CHUNK)
    return sha256_file(raw), sha256_file(packed), os.path.getsize(packed), packed


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def kv_list(items):
    out = {}
    for item in items or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def make_config(args, diff_id):
    env = args.env or []
    if not any(e.startswith("PATH=") for e in env):
        env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + env
    cfg = {"Env": env}
    if args.entrypoint:
        cfg["Entrypoint"] = json.loads(args.entrypoint)
    if args.cmd:
        cfg["Cmd"] = json.loads(args.cmd)
    if args.label:
        cfg["Labels"] = kv_list(args.label)
    if args.workdir:
        cfg["WorkingDir"] = args.workdir
    return {
        "architecture": args.arch,
        "os": "linux",
        "created": args.created,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": args.created, "created_by": "mkoci.py: the tree as one layer"}],
    }


def tar_add_bytes(out, name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = 0o644
    ti.mtime = 0
    out.addfile(ti, io.BytesIO(data))


def tar_add_dir(out, name):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    ti.mtime = 0
    out.addfile(ti)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", help="image name for index.json")
    ap.add_argument("--arch", default="amd64")
    ap.add_argument("--created", default="2024-01-01T00:00:00Z")
    ap.add_argument("--env", action="append")
    ap.add_argument("--label", action="append")
    ap.add_argument("--entrypoint")
    ap.add_argument("--cmd")
    ap.add_argument("--workdir")
    ap.add_argument("--sparse", action="store_true",
                    help="files with holes as sparse members (data regions only)")
    ap.add_argument("--layer", help="an uncompressed layer tar to use as it is (ROOTFS: -)")
    ap.add_argument("rootfs")
    ap.add_argument("out")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="mkoci.", dir=os.path.dirname(os.path.abspath(args.out)))
    try:
        diff_id, digest, size, packed = make_layer(args.rootfs, work, args.sparse, args.layer)
        config = canon(make_config(args, diff_id))
        cdesc = {"mediaType": "application/vnd.oci.image.config.v1+json",
                 "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)}
        manifest = canon({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cdesc,
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": digest, "size": size}],
        })
        mdesc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                 "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
                 "size": len(manifest),
                 "platform": {"architecture": args.arch, "os": "linux"}}
        if args.ref:
            mdesc["annotations"] = {"io.containerd.image.name": args.ref,
                                    "org.opencontainers.image.ref.name": args.ref}
        index = canon({"schemaVersion": 2,
                       "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": [mdesc]})
        tmp = os.path.join(work, "out.tar")
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as out:
            tar_add_bytes(out, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            tar_add_bytes(out, "index.json", index)
            tar_add_dir(out, "blobs")
            tar_add_dir(out, "blobs/sha256")
            tar_add_bytes(out, "blobs/sha256/" + mdesc["digest"][7:], manifest)
            tar_add_bytes(out, "blobs/sha256/" + cdesc["digest"][7:], config)
            ti = tarfile.TarInfo("blobs/sha256/" + digest[7:])
            ti.size, ti.mode, ti.mtime = size, 0o644, 0
            with open(packed, "rb") as f:
                out.addfile(ti, f)
        os.rename(tmp, args.out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("%s: %s, manifest %s, layer %s (%d bytes)" % (args.out, args.ref or "(unnamed)",
                                                        mdesc["digest"], digest, size))


if __name__ == "__main__":
    sys.exit(main())
