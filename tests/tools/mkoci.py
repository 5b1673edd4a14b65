#!/usr/bin/env python3
"""mkoci.py - make an OCI image layout tar from a root filesystem directory,
as ONE gzip layer, for tests (python3 stdlib only).

    mkoci.py [--ref NAME] [--arch ARCH] [--env K=V]... [--label K=V]...
             [--entrypoint JSON] [--cmd JSON] [--workdir DIR] ROOTFS OUT.tar
    mkoci.py [options] --layer LAYER.tar - OUT.tar

The layer is a PAX tar that keeps what an image layer can hold: owners,
full modes (setuid/setgid/sticky), nanosecond mtimes, devices, fifos,
symlinks, hardlinks and xattrs (SCHILY.xattr.*). Entries go in byte order
of their paths; gzip and the outer tar have fixed headers, so the same
tree gives the same bytes. Sockets are skipped; the root entry is left out,
as in most real layers. Must run as root to read every file of a real tree.
With --layer, the layer is LAYER.tar as it is (a tar some other writer
made), gzipped the same way.
"""
import argparse
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


def add_entry(tar, root, rel):
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
        with open(path, "rb") as f:
            tar.addfile(ti, f)
    else:
        tar.addfile(ti)


def make_layer(root, workdir, layer=None):
    """Writes layer.tar (or takes `layer`) and layer.tar.gz; returns
    (diff_id, digest, size, path of the .gz)."""
    raw = layer or os.path.join(workdir, "layer.tar")
    if layer is None:
        with tarfile.open(raw, "w", format=tarfile.PAX_FORMAT, encoding="utf-8",
                          errors="surrogateescape") as tar:
            for rel in tree_paths(root):
                add_entry(tar, root, rel)
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
    ap.add_argument("--layer", help="an uncompressed layer tar to use as it is (ROOTFS: -)")
    ap.add_argument("rootfs")
    ap.add_argument("out")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="mkoci.", dir=os.path.dirname(os.path.abspath(args.out)))
    try:
        diff_id, digest, size, packed = make_layer(args.rootfs, work, args.layer)
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
