#!/usr/bin/env python3
"""ocimod.py - reshape the image of an OCI image layout directory, for the
transport tests (python3 stdlib and the zstd program).

    ocimod.py zstd DIR LAYER        recompress layer LAYER (0-based) gzip -> zstd
    ocimod.py docker DIR            Docker schema 2 media types (manifest, config,
                                    layers); the layers must be tar or gzip
    ocimod.py multiarch DIR ARCH    an index of two images: the one there (with its
                                    platform) and the same layers with a config for
                                    linux/ARCH
    ocimod.py bigblob DIR MIB       one more (uncompressed) layer: a file of MIB MiB
                                    of seeded pseudo-random bytes
    ocimod.py corrupt DIR DIGEST    flips one byte in the middle of blob DIGEST
                                    (its size stays)
    ocimod.py droplast DIR          the image without its last layer
    ocimod.py ref DIR NAME          names the image NAME in index.json
    ocimod.py tarflip TAR DIGEST OUT  TAR (an OCI archive) with one byte of blob
                                    DIGEST's data flipped, written to OUT

The layout's index.json must list one entry (mkimages.py --layout-dir
writes such layouts); its annotations are kept. Blobs nothing refers to any
more are removed. JSON is written with sorted keys and no spaces, so the
same input gives the same layout.
"""
import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER = {
    OCI_MANIFEST: "application/vnd.docker.distribution.manifest.v2+json",
    OCI_CONFIG: "application/vnd.docker.container.image.v1+json",
    OCI_TAR: "application/vnd.docker.image.rootfs.diff.tar",
    OCI_TAR + "+gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
}


def jbytes(o):
    return json.dumps(o, sort_keys=True, separators=(",", ":")).encode()


class Layout:
    def __init__(self, path):
        self.path = path
        with open(os.path.join(path, "index.json"), "rb") as f:
            self.index = json.load(f)
        if len(self.index["manifests"]) != 1:
            sys.exit("ocimod.py: index.json must list one image")
        self.entry = self.index["manifests"][0]

    def blob_path(self, digest):
        return os.path.join(self.path, "blobs", "sha256", digest.split(":", 1)[1])

    def read(self, digest):
        with open(self.blob_path(digest), "rb") as f:
            return f.read()

    def write(self, data):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        with open(self.blob_path(d), "wb") as f:
            f.write(data)
        return d

    def put_json(self, obj, media_type):
        data = jbytes(obj)
        return {"mediaType": media_type, "digest": self.write(data), "size": len(data)}

    def manifest(self):
        return json.loads(self.read(self.entry["digest"]))

    def set_top(self, desc):
        for k in ("mediaType", "digest", "size"):
            self.entry[k] = desc[k]
        self.entry.pop("platform", None)
        with open(os.path.join(self.path, "index.json"), "wb") as f:
            f.write(jbytes(self.index))
        self.gc()

    def reachable(self, desc, out):
        out.add(desc["digest"].split(":", 1)[1])
        doc = json.loads(self.read(desc["digest"]))
        for m in doc.get("manifests", []):
            self.reachable(m, out)
        for d in [doc["config"]] + doc["layers"] if "config" in doc else []:
            out.add(d["digest"].split(":", 1)[1])

    def gc(self):
        keep = set()
        self.reachable(self.entry, keep)
        blobs = os.path.join(self.path, "blobs", "sha256")
        for name in os.listdir(blobs):
            if name not in keep:
                os.unlink(os.path.join(blobs, name))


def cmd_zstd(lay, i):
    man = lay.manifest()
    layer = man["layers"][i]
    raw = gzip.decompress(lay.read(layer["digest"]))
    packed = subprocess.run(["zstd", "-q", "-3", "-T1", "-c"], input=raw, check=True,
                            stdout=subprocess.PIPE).stdout
    man["layers"][i] = {"mediaType": OCI_TAR + "+zstd", "digest": lay.write(packed),
                        "size": len(packed)}
    lay.set_top(lay.put_json(man, man["mediaType"]))


def cmd_docker(lay):
    man = lay.manifest()
    man["mediaType"] = DOCKER[man["mediaType"]]
    man["config"]["mediaType"] = DOCKER[man["config"]["mediaType"]]
    for layer in man["layers"]:
        layer["mediaType"] = DOCKER[layer["mediaType"]]
    lay.set_top(lay.put_json(man, man["mediaType"]))


def cmd_multiarch(lay, arch):
    man = lay.manifest()
    cfg = json.loads(lay.read(man["config"]["digest"]))
    first = dict(lay.entry, platform={"architecture": cfg["architecture"], "os": cfg["os"]})
    first.pop("annotations", None)
    cfg["architecture"] = arch
    man["config"] = lay.put_json(cfg, man["config"]["mediaType"])
    second = lay.put_json(man, man["mediaType"])
    second["platform"] = {"architecture": arch, "os": cfg["os"]}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [first, second]}
    lay.set_top(lay.put_json(index, OCI_INDEX))


class RandomFile:
    """size bytes of seeded pseudo-random data, read in pieces."""

    def __init__(self, seed, size):
        self.rnd = random.Random(seed)
        self.left = size

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return b"".join(self.rnd.randbytes(min(k, 1 << 24)) for k in range(n, 0, -(1 << 24)))


def cmd_bigblob(lay, mib):
    tmp = os.path.join(lay.path, "blobs", "sha256", ".bigblob.tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo("big.bin")
        ti.size = mib << 20
        ti.mode = 0o644
        t.addfile(ti, RandomFile(mib, ti.size))
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    d = "sha256:" + h.hexdigest()
    os.rename(tmp, lay.blob_path(d))
    man = lay.manifest()
    cfg = json.loads(lay.read(man["config"]["digest"]))
    cfg["rootfs"]["diff_ids"].append(d)
    cfg.setdefault("history", []).append({"created_by": "ocimod.py bigblob"})
    man["config"] = lay.put_json(cfg, man["config"]["mediaType"])
    man["layers"].append({"mediaType": OCI_TAR, "digest": d,
                          "size": os.path.getsize(lay.blob_path(d))})
    lay.set_top(lay.put_json(man, man["mediaType"]))


def cmd_droplast(lay):
    man = lay.manifest()
    cfg = json.loads(lay.read(man["config"]["digest"]))
    cfg["rootfs"]["diff_ids"].pop()
    cfg["history"] = cfg.get("history", [])[:len(cfg["rootfs"]["diff_ids"])]
    man["config"] = lay.put_json(cfg, man["config"]["mediaType"])
    man["layers"].pop()
    lay.set_top(lay.put_json(man, man["mediaType"]))


def cmd_ref(lay, name):
    lay.entry.setdefault("annotations", {})["org.opencontainers.image.ref.name"] = name
    lay.set_top(lay.entry)


def cmd_corrupt(lay, digest):
    with open(lay.blob_path(digest), "r+b") as f:
        f.seek(0, 2)
        mid = f.tell() // 2
        f.seek(mid)
        b = f.read(1)
        f.seek(mid)
        f.write(bytes([b[0] ^ 0xFF]))


def cmd_tarflip(src, digest, out):
    data = bytearray(open(src, "rb").read())
    with tarfile.open(src) as t:
        m = t.getmember("blobs/sha256/" + digest.split(":", 1)[-1])
    data[m.offset_data + m.size // 2] ^= 0xFF
    with open(out, "wb") as f:
        f.write(data)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    if sys.argv[1] == "tarflip" and len(sys.argv) == 5:
        cmd_tarflip(*sys.argv[2:])
        return 0
    cmd, lay = sys.argv[1], Layout(sys.argv[2])
    args = sys.argv[3:]
    if cmd == "zstd":
        cmd_zstd(lay, int(args[0]))
    elif cmd == "docker":
        cmd_docker(lay)
    elif cmd == "multiarch":
        cmd_multiarch(lay, args[0])
    elif cmd == "bigblob":
        cmd_bigblob(lay, int(args[0]))
    elif cmd == "droplast":
        cmd_droplast(lay)
    elif cmd == "ref":
        cmd_ref(lay, args[0])
    elif cmd == "corrupt":
        cmd_corrupt(lay, args[0])
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
