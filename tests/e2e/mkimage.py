#!/usr/bin/env python3
"""Writes a small OCI image layout tar for the end-to-end tests (stdlib only).

Layer 1: a busybox rootfs (static binary + applet symlinks) and a few files.
Layer 2: changes on top of it: a modified file, a new file, a file deleted
through a whiteout (.wh.NAME) and a directory made opaque (.wh..wh..opq).

Usage: mkimage.py OUT.tar IMAGE-NAME [BUSYBOX]
The image is named through the io.containerd.image.name annotation, so
`ctr images import OUT.tar` registers it as IMAGE-NAME. Output is byte-for-byte
reproducible for the same busybox binary.
"""
import gzip
import hashlib
import io
import json
import os
import platform
import sys
import tarfile

APPLETS = ["sh", "cat", "ls", "echo", "test", "touch", "sleep", "stat", "rm",
           "mkdir", "grep", "wc", "id", "true", "false", "dd", "sync", "head"]


def add_dir(tar, path, mode=0o755):
    info = tarfile.TarInfo(path)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def add_file(tar, path, data, mode=0o644):
    info = tarfile.TarInfo(path)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def add_symlink(tar, path, target):
    info = tarfile.TarInfo(path)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    info.mode = 0o777
    tar.addfile(info)


def layer_tar(build):
    """Returns the uncompressed tar bytes made by build(tar)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    return buf.getvalue()


def base_layer(busybox):
    with open(busybox, "rb") as f:
        binary = f.read()

    def build(tar):
        for d in ["bin", "etc", "etc/conf.d", "tmp", "data"]:
            add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
        add_file(tar, "bin/busybox", binary, 0o755)
        for applet in APPLETS:
            add_symlink(tar, "bin/" + applet, "busybox")
        add_file(tar, "etc/hello", b"hello from layer 1\n")
        add_file(tar, "etc/gone", b"this file is deleted by layer 2\n")
        add_file(tar, "etc/conf.d/old.conf", b"old=1\n")
        add_file(tar, "etc/passwd", b"root:x:0:0:root:/:/bin/sh\n")
    return layer_tar(build)


def top_layer():
    def build(tar):
        add_dir(tar, "etc")
        add_file(tar, "etc/hello", b"hello from layer 2\n")
        add_file(tar, "etc/layer2.txt", b"layer two was here\n")
        add_file(tar, "etc/.wh.gone", b"")
        add_dir(tar, "etc/conf.d")
        add_file(tar, "etc/conf.d/.wh..wh..opq", b"")
        add_file(tar, "etc/conf.d/new.conf", b"new=2\n")
    return layer_tar(build)


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def gzip_bytes(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def oci_arch():
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(m, m)


def build_image(name, busybox):
    """Returns {path in the tar: bytes} for the whole OCI layout."""
    blobs = {}

    def blob(data):
        d = sha256(data)
        blobs["blobs/sha256/" + d.split(":", 1)[1]] = data
        return d

    raw = [base_layer(busybox), top_layer()]
    layers = []
    for r in raw:
        gz = gzip_bytes(r)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": blob(gz), "size": len(gz)})
    config = json.dumps({
        "architecture": oci_arch(), "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [sha256(r) for r in raw]},
        "history": [{"created_by": "di3fs tests/e2e/mkimage.py: busybox base"},
                    {"created_by": "di3fs tests/e2e/mkimage.py: changes"}],
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": blob(config), "size": len(config)},
        "layers": layers,
    }, sort_keys=True).encode()
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = json.dumps({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": blob(manifest), "size": len(manifest),
            "platform": {"architecture": oci_arch(), "os": "linux"},
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": tag},
        }],
    }, sort_keys=True).encode()
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index}
    files.update(blobs)
    return files


def write_tar(path, files):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        add_dir(tar, "blobs")
        add_dir(tar, "blobs/sha256")
        for p in sorted(files):
            add_file(tar, p, files[p])


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    busybox = sys.argv[3] if len(sys.argv) == 4 else "/bin/busybox"
    if not os.path.isfile(busybox):
        print("mkimage.py: no busybox at %s (apt-get install busybox-static)" % busybox,
              file=sys.stderr)
        return 1
    write_tar(sys.argv[1], build_image(sys.argv[2], busybox))
    return 0


if __name__ == "__main__":
    sys.exit(main())
