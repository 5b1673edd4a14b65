#!/usr/bin/env python3
"""ocicheck.py - independent checks of cdimg's OCI outputs (stdlib only).

  ocicheck.py digest config|manifest IMAGE.tar
      print the digest of the (first) image's config or manifest
  ocicheck.py cdimg X.cdimg BASE.tar TARGET.tar X.dimg REF
      X.cdimg is a valid OCI layout holding the di3fs artifact: blobs match
      their digests and descriptors, fixed tar headers, the .dimg blob is
      X.dimg byte for byte, the target's config and manifest are its
      original bytes, the annotations name both images and trees
  ocicheck.py image OUT.tar TREE TARGET.tar REF
      OUT.tar is a valid one-layer OCI image named REF whose layer holds
      exactly TREE (every metadata field, content, hardlinks; the root
      entry aside) and whose config keeps TARGET's settings
  ocicheck.py corrupt X.cdimg OUTDIR
      write damaged and foreign variants of X.cdimg into OUTDIR
  ocicheck.py badrecipe X.cdimg OUTDIR
      write variants of X.cdimg whose layer recipes are damaged inside
      (a tar header byte, a content reference, cut, junk) with every digest
      consistent, into OUTDIR
  ocicheck.py layers ORIG.tar OUT.tar
      OUT.tar's config is ORIG's byte for byte and each of its layers,
      uncompressed, is ORIG's layer tar byte for byte with the config's
      diff_id (gzip layers: no name, mtime 0)

Shares no code with the C implementation it checks.
"""
import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
ARTIFACT = "application/vnd.di3fs.delta.v1"
DIMG = "application/vnd.di3fs.dimg.v1"
TCONFIG = "application/vnd.di3fs.target.config.v1+json"
A = "io.di3fs.delta."


class Bad(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Bad(msg)


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def read_layout(path):
    """name -> bytes, plus the tar members in order."""
    files, members = {}, []
    with tarfile.open(path, "r:") as t:
        for m in t:
            members.append(m)
            if m.isfile():
                need(m.name not in files, "%s twice" % m.name)
                files[m.name] = t.extractfile(m).read()
    need(json.loads(files["oci-layout"])["imageLayoutVersion"] == "1.0.0", "oci-layout")
    for name, data in files.items():
        if name.startswith("blobs/"):
            need(name.startswith("blobs/sha256/"), name)
            need(sha(data) == "sha256:" + name[13:], "blob %s: digest mismatch" % name)
    return files, members


def blob(files, desc, media=None):
    need(desc["digest"].startswith("sha256:"), "digest %r" % desc["digest"])
    data = files.get("blobs/sha256/" + desc["digest"][7:])
    need(data is not None, "missing blob %s" % desc["digest"])
    need(len(data) == desc["size"], "size of %s" % desc["digest"])
    if media:
        need(desc["mediaType"] == media, "media type %s, want %s" % (desc["mediaType"], media))
    return data


def image_parts(path):
    """(manifest bytes, config bytes, files, index entry) of an image tar:
    an OCI layout or a docker save tar."""
    with tarfile.open(path, "r:") as t:
        names = t.getnames()
    if "index.json" not in names:
        return docker_parts(path)
    files, _ = read_layout(path)
    d = json.loads(files["index.json"])["manifests"][0]
    while d["mediaType"] == INDEX:
        d = json.loads(blob(files, d))["manifests"][0]
    man = blob(files, d)
    cfg = blob(files, json.loads(man)["config"])
    return man, cfg, files, d


def docker_parts(path):
    with tarfile.open(path, "r:") as t:
        files = {m.name: t.extractfile(m).read() for m in t if m.isfile()}
    m = json.loads(files["manifest.json"])[0]
    return None, files[m["Config"]], files, None


def cmd_digest(what, path):
    man, cfg, _, _ = image_parts(path)
    print(sha(cfg if what == "config" else man))


def check_fixed_headers(members):
    for m in members:
        need(m.mtime == 0 and m.uid == 0 and m.gid == 0, "%s: header not fixed" % m.name)
        need(m.mode == (0o755 if m.isdir() else 0o644), "%s: mode %o" % (m.name, m.mode))
        need(not m.pax_headers or set(m.pax_headers) <= {"size"}, "%s: pax" % m.name)


def dimg_ids(data):
    need(data[:8] == b"\x89DIM\r\n\x1a\n", "not a .dimg")
    return data[16:48].hex(), data[48:80].hex()


def cmd_cdimg(path, base, target, dimg, ref):
    files, members = read_layout(path)
    check_fixed_headers(members)
    order = [m.name for m in members]
    need(order[:4] == ["oci-layout", "index.json", "blobs", "blobs/sha256"], order)
    idx = json.loads(files["index.json"])
    need(idx["schemaVersion"] == 2 and idx["mediaType"] == INDEX, "index")
    need(len(idx["manifests"]) == 1, "one manifest")
    d = idx["manifests"][0]
    need(d["annotations"]["org.opencontainers.image.ref.name"] == ref, "index ref name")
    need(d.get("artifactType") == ARTIFACT, "index artifactType")
    man = json.loads(blob(files, d, MANIFEST))
    need(man["artifactType"] == ARTIFACT and man["schemaVersion"] == 2, "artifactType")
    tman, tcfg, _, _ = image_parts(target)
    _, bcfg, _, _ = image_parts(base)
    need(blob(files, man["config"], TCONFIG) == tcfg, "target config bytes")
    need(len(man["layers"]) in (2, 3), "two or three layers (.dimg, target manifest, recipes)")
    if len(man["layers"]) == 3:
        blob(files, man["layers"][2], "application/vnd.di3fs.layers.v1+zstd")
    data = blob(files, man["layers"][0], DIMG)
    with open(dimg, "rb") as f:
        need(f.read() == data, "the .dimg blob differs from the raw .dimg")
    an = man["annotations"]
    bt, tt = dimg_ids(data)
    need(an[A + "base.tree"] == bt and an[A + "target.tree"] == tt, "tree ids")
    need(an[A + "base.config.digest"] == sha(bcfg), "base config digest")
    need(an[A + "dimg.version"] == "1", "version")
    need(an[A + "target.ref"] == ref, "target ref")
    if tman is not None:
        need(an[A + "target.manifest.digest"] == sha(tman), "target manifest digest")
        need(files["blobs/sha256/" + sha(tman)[7:]] == tman, "target manifest bytes")
        need(blob(files, man["layers"][1], "application/vnd.di3fs.target.manifest.v1+json")
             == tman, "target manifest as the second layer")
    # Canonical JSON: what we generated has sorted keys and no spaces.
    for doc in (files["index.json"], blob(files, d)):
        need(doc == json.dumps(json.loads(doc), sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False).encode(), "JSON not canonical")
    print("ocicheck: %s: valid .cdimg (%d blobs)" % (path, sum(n.startswith("blobs/sha256/") and
                                                            n != "blobs/sha256/" for n in files)))


def pax_mtime_ns(m):
    s = m.pax_headers.get("mtime")
    if s is None:
        return int(m.mtime) * 10**9
    neg = s.startswith("-")
    sec, _, frac = s.lstrip("-").partition(".")
    ns = int(sec) * 10**9 + int((frac + "000000000")[:9])
    return -ns if neg else ns


def tar_tree(layer):
    out, groups = {}, {}
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:") as t:
        for m in t:
            name = m.name.rstrip("/")
            if name in (".", ""):
                continue
            xa = {k[13:]: v.encode("utf-8", "surrogateescape")
                  for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
            e = {"mode": m.mode, "uid": m.uid, "gid": m.gid, "mtime": pax_mtime_ns(m)}
            if m.islnk():
                groups.setdefault(m.linkname, {m.linkname}).add(name)
                out[name] = dict(out[m.linkname])
                continue
            e["type"] = m.type
            e["xattrs"] = xa
            if m.isfile():
                e["sha"] = hashlib.sha256(t.extractfile(m).read()).hexdigest()
                e["size"] = m.size
            elif m.issym():
                e["link"] = m.linkname
            elif m.ischr() or m.isblk():
                e["dev"] = (m.devmajor, m.devminor)
            out[name] = e
    return out, sorted(sorted(g) for g in groups.values())


def fs_tree(root):
    types = {stat.S_IFREG: tarfile.REGTYPE, stat.S_IFDIR: tarfile.DIRTYPE,
             stat.S_IFLNK: tarfile.SYMTYPE, stat.S_IFCHR: tarfile.CHRTYPE,
             stat.S_IFBLK: tarfile.BLKTYPE, stat.S_IFIFO: tarfile.FIFOTYPE}
    out, inodes = {}, {}
    for dp, dns, fns in os.walk(root):
        for n in dns + fns:
            p = os.path.join(dp, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            e = {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                 "mtime": st.st_mtime_ns, "type": types[stat.S_IFMT(st.st_mode)]}
            e["xattrs"] = {} if stat.S_ISLNK(st.st_mode) else {
                x: os.getxattr(p, x, follow_symlinks=False)
                for x in os.listxattr(p, follow_symlinks=False)}
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    e["sha"] = hashlib.sha256(f.read()).hexdigest()
                e["size"] = st.st_size
                if st.st_nlink > 1:
                    inodes.setdefault(st.st_ino, set()).add(rel)
            elif stat.S_ISLNK(st.st_mode):
                e["link"] = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                e["dev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            out[rel] = e
    return out, sorted(sorted(g) for g in inodes.values() if len(g) > 1)


def check_layer(layer, tree):
    got, ggroups = tar_tree(layer)
    want, wgroups = fs_tree(tree)
    need(set(got) == set(want), "paths differ: %s" % sorted(set(got) ^ set(want))[:10])
    for p in sorted(want):
        need(got[p] == want[p], "%s: layer %r, tree %r" % (p, got[p], want[p]))
    need(ggroups == wgroups, "hardlinks: layer %r, tree %r" % (ggroups, wgroups))
    return len(want)


def check_config(cfg, tcfg, diff_id):
    c, t = json.loads(cfg), json.loads(tcfg)
    need(c["rootfs"] == {"type": "layers", "diff_ids": [diff_id]}, "rootfs %r" % c["rootfs"])
    for k in set(c) | set(t):
        if k not in ("rootfs", "history"):
            need(c.get(k) == t.get(k), "config %s changed" % k)
    h, th = c.get("history", []), t.get("history", [])
    need([e.get("created_by") for e in h] == [e.get("created_by") for e in th], "history")
    need(sum(not e.get("empty_layer") for e in h) == 1, "history: not one layer")


def cmd_image(path, tree, target, ref):
    files, _ = read_layout(path)
    idx = json.loads(files["index.json"])
    need(len(idx["manifests"]) == 1, "one manifest")
    d = idx["manifests"][0]
    an = d["annotations"]
    need(an["org.opencontainers.image.ref.name"] == ref, "ref.name %r" % an)
    need(an["io.containerd.image.name"] == ref, "containerd name %r" % an)
    man = json.loads(blob(files, d, MANIFEST))
    need(len(man["layers"]) == 1, "one layer")
    ld = man["layers"][0]
    layer = blob(files, ld)
    if ld["mediaType"].endswith("+gzip"):
        layer = gzip.decompress(layer)
    else:
        need(ld["mediaType"] == "application/vnd.oci.image.layer.v1.tar", ld["mediaType"])
    cfg = blob(files, man["config"], "application/vnd.oci.image.config.v1+json")
    _, tcfg, _, _ = image_parts(target)
    check_config(cfg, tcfg, sha(layer))
    n = check_layer(layer, tree)
    print("ocicheck: %s: valid image %s, layer holds the %d entries of %s" % (path, ref, n, tree))


def write_tar(path, items):
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in items:
            ti = tarfile.TarInfo(name)
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                t.addfile(ti, io.BytesIO(data))


def repack(files, order, man_edit, out):
    """A consistent layout after editing the artifact manifest."""
    idx = json.loads(files["index.json"])
    old = idx["manifests"][0]["digest"]
    man = json.loads(files["blobs/sha256/" + old[7:]])
    man_edit(man)
    mb = json.dumps(man, sort_keys=True, separators=(",", ":")).encode()
    idx["manifests"][0].update(digest=sha(mb), size=len(mb))
    new = dict(files)
    del new["blobs/sha256/" + old[7:]]
    new["blobs/sha256/" + sha(mb)[7:]] = mb
    new["index.json"] = json.dumps(idx, sort_keys=True, separators=(",", ":")).encode()
    items = []
    for n in order:
        if n == "blobs/sha256/" + old[7:]:
            n = "blobs/sha256/" + sha(mb)[7:]
        items.append((n, None if n.endswith("/") else new[n]))
    write_tar(out, items)


def cmd_corrupt(path, outdir):
    os.makedirs(outdir, exist_ok=True)
    data = open(path, "rb").read()
    files, members = read_layout(path)
    order = [m.name + ("/" if m.isdir() and not m.name.endswith("/") else "") for m in members]
    man = json.loads(files["blobs/sha256/" + json.loads(files["index.json"])
                           ["manifests"][0]["digest"][7:]])
    dimg_name = "blobs/sha256/" + man["layers"][0]["digest"][7:]

    def put(name, b):
        open(os.path.join(outdir, name + ".cdimg"), "wb").write(b)

    def offset_of(name):
        with tarfile.open(path, "r:") as t:
            for m in t:
                if m.name == name:
                    return m.offset_data
        raise Bad(name)

    off = offset_of(dimg_name) + len(files[dimg_name]) // 2
    put("flip-dimg", data[:off] + bytes([data[off] ^ 0x10]) + data[off + 1:])
    off = offset_of("index.json") + files["index.json"].index(b"sha256:") + 7
    put("flip-index", data[:off] + (b"0" if data[off:off + 1] != b"0" else b"1") + data[off + 1:])
    off = offset_of("index.json")
    put("break-index", data[:off] + b"[" + data[off + 1:])
    put("cut-half", data[:len(data) // 2])
    put("cut-end", data[:len(data) - 2048])

    def foreign(m):
        m["artifactType"] = "application/vnd.example.other.v1"
    repack(files, order, foreign, os.path.join(outdir, "foreign-type.cdimg"))

    def v2(m):
        m["annotations"][A + "dimg.version"] = "2"
    repack(files, order, v2, os.path.join(outdir, "version-2.cdimg"))

    def layer_type(m):
        m["layers"][0]["mediaType"] = "application/vnd.di3fs.dimg.v9"
    repack(files, order, layer_type, os.path.join(outdir, "layer-type.cdimg"))

    def no_target_manifest(m):
        del m["layers"][1]
    repack(files, order, no_target_manifest, os.path.join(outdir, "one-layer.cdimg"))

    def other_manifest(m):
        m["layers"][1] = dict(m["config"], mediaType=m["layers"][1]["mediaType"])
    repack(files, order, other_manifest, os.path.join(outdir, "manifest-layer.cdimg"))

    def wrong_tree(m):
        m["annotations"][A + "target.tree"] = "0" * 64
    repack(files, order, wrong_tree, os.path.join(outdir, "tree-mismatch.cdimg"))


def varint(raw, pos):
    v = shift = 0
    while True:
        b = raw[pos]
        pos += 1
        v |= (b & 0x7f) << shift
        shift += 7
        if not b & 0x80:
            return v, pos


def recipe_records(raw):
    """Offsets in a decompressed layer recipes blob (docs/FORMAT.md): of
    the first RAW record's data, of the first FILE record's sha256, of the
    first MODEL record's writer byte and of the first ENTRY or ENTRIES
    record's varint (None where there is none)."""
    need(raw[:8] == b"DI3LAYRS", "layer recipes magic")
    n = int.from_bytes(raw[12:16], "little")
    pos, first = 16, {}
    for _ in range(n):
        kind = raw[pos]
        pos += 36
        while kind == 1:
            t = raw[pos]
            if t == 0:
                pos += 1
                break
            if t == 1:
                ln = int.from_bytes(raw[pos + 1:pos + 5], "little")
                first.setdefault("raw", pos + 5)
                pos += 5 + ln
            elif t in (2, 3):
                size = int.from_bytes(raw[pos + 1:pos + 9], "little")
                if t == 2:
                    first.setdefault("file", pos + 9)
                pos += 41 + (size if t == 3 else 0)
            elif t == 4:
                first.setdefault("model", pos + 1)
                pos += 4 + raw[pos + 3]
            elif t in (6, 7):
                if t == 6:
                    first.setdefault("entry", pos + 1)
                pos = varint(raw, pos + 1)[1]
            elif t == 5:
                first.setdefault("entry", pos + 1)
                pos = varint(raw, pos + 1)[1]
                flags = raw[pos]
                pos += 1
                if flags & 1:
                    nops, pos = varint(raw, pos)
                    for _ in range(nops):
                        pos = varint(raw, pos)[1]
                        pos = varint(raw, pos)[1]
                        ins, pos = varint(raw, pos)
                        pos += ins
            else:
                raise Bad("record type %d" % t)
    need(pos == len(raw), "layer recipes: %d bytes after the last layer" % (len(raw) - pos))
    return first


def zstd(data, *args):
    import subprocess
    return subprocess.run(["zstd", "-q", "-c"] + list(args), input=data, check=True,
                          stdout=subprocess.PIPE).stdout


def cmd_badrecipe(path, outdir):
    """Variants of X.cdimg whose layer recipes are wrong inside but whose
    digests are all consistent: only the rebuild can tell."""
    os.makedirs(outdir, exist_ok=True)
    files, members = read_layout(path)
    order = [m.name + ("/" if m.isdir() and not m.name.endswith("/") else "") for m in members]
    man = json.loads(files["blobs/sha256/" + json.loads(files["index.json"])
                           ["manifests"][0]["digest"][7:]])
    need(len(man["layers"]) == 3, "no layer recipes in %s" % path)
    old = "blobs/sha256/" + man["layers"][2]["digest"][7:]
    raw = zstd(files[old], "-d")
    first = recipe_records(raw)

    def flip(at):
        return raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1:]
    variants = {"recipe-cut": zstd(raw[:len(raw) // 2]), "recipe-junk": b"\0" * 64}
    # a header: the writer model (another model, other bytes), or raw bytes
    if "model" in first:
        variants["recipe-flip-header"] = zstd(flip(first["model"]))
    elif "raw" in first:
        variants["recipe-flip-header"] = zstd(flip(first["raw"] + 100))
    # a content: a FILE record's sha256, or which tree entry is predicted
    if "file" in first:
        variants["recipe-flip-ref"] = zstd(flip(first["file"]))
    elif "entry" in first:
        variants["recipe-flip-ref"] = zstd(flip(first["entry"]))
    for name, blob_bytes in variants.items():
        new = dict(files)
        del new[old]
        new["blobs/sha256/" + sha(blob_bytes)[7:]] = blob_bytes

        def edit(m, b=blob_bytes):
            m["layers"][2].update(digest=sha(b), size=len(b))
        order2 = ["blobs/sha256/" + sha(blob_bytes)[7:] if n == old else n for n in order]
        repack(new, order2, edit, os.path.join(outdir, name + ".cdimg"))
        print(name)


def layer_tars(path):
    """(config bytes, [uncompressed layer tar bytes]) of an image tar."""
    man, cfg, files, _ = image_parts(path)
    if man is None:
        m = json.loads(files["manifest.json"])[0]
        raw = [files[name] for name in m["Layers"]]
    else:
        raw = [blob(files, d) for d in json.loads(man)["layers"]]
    out = []
    for b in raw:
        if b[:2] == b"\x1f\x8b":
            out.append(gzip.decompress(b))
        elif b[:4] == b"\x28\xb5\x2f\xfd":
            raise Bad("zstd layers are not checked here")
        else:
            out.append(b)
    return cfg, out


def cmd_layers(orig, out):
    """OUT gives back ORIG's config bytes and each layer tar byte for byte."""
    ocfg, otars = layer_tars(orig)
    man, cfg, files, _ = image_parts(out)
    need(cfg == ocfg, "config bytes differ from the original's")
    ids = json.loads(cfg)["rootfs"]["diff_ids"]
    descs = json.loads(man)["layers"]
    need(len(descs) == len(otars) == len(ids), "%d layers, the original has %d"
         % (len(descs), len(otars)))
    for i, d in enumerate(descs):
        b = blob(files, d)
        if d["mediaType"].endswith("+gzip"):
            need(b[:4] == b"\x1f\x8b\x08\x00" and b[4:8] == b"\0\0\0\0",
                 "layer %d: gzip header has a name or an mtime" % (i + 1))
            b = gzip.decompress(b)
        else:
            need(d["mediaType"] == LAYER, "layer %d: media type %s" % (i + 1, d["mediaType"]))
        need(sha(b) == ids[i], "layer %d: diff_id %s, config says %s" % (i + 1, sha(b), ids[i]))
        need(b == otars[i], "layer %d: tar bytes differ from the original" % (i + 1))
    print("%s: config %s, %d layers identical to %s" % (out, sha(cfg), len(descs), orig))


def main(argv):
    try:
        if argv[1] == "digest":
            cmd_digest(argv[2], argv[3])
        elif argv[1] == "cdimg":
            cmd_cdimg(*argv[2:7])
        elif argv[1] == "image":
            cmd_image(*argv[2:6])
        elif argv[1] == "badrecipe":
            cmd_badrecipe(argv[2], argv[3])
        elif argv[1] == "layers":
            cmd_layers(argv[2], argv[3])
        elif argv[1] == "corrupt":
            cmd_corrupt(argv[2], argv[3])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (Bad, KeyError, ValueError) as e:
        print("ocicheck: %s: %s" % (argv[2] if len(argv) > 2 else "", e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
