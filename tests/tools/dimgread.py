#!/usr/bin/env python3
"""dimgread.py - reads a .dimg delta, written from docs/FORMAT.md alone.

usage: dimgread.py DELTA.dimg            lists the stored entries (JSON lines)
       dimgread.py DELTA.dimg PATH OUT   writes PATH's blob to OUT

Checks the header, the trailer, the dictionary's place and magic, the
index (one zstd frame, decoded by patchdec.plain_frame) and every entry
record against the rules docs/FORMAT.md states; a break is reported as
dimgread.FormatError (exit status 1). Blob checksums (XXH3-64) are not
checked: the standard library has no XXH3. Only the Python standard
library and tests/tools/patchdec.py are used.
"""

import hashlib
import json
import os
import stat
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import patchdec  # noqa: E402

MAGIC = b"\x89DIM\r\n\x1a\n"
HEADER, TRAILER = 96, 64
PAYLOADS = {0: "none", 1: "empty", 2: "same", 3: "full", 4: "patch"}


class FormatError(Exception):
    pass


def need(cond, why):
    if not cond:
        raise FormatError(why)


class Dimg:
    """A parsed .dimg: ids, trailer fields, dictionary, ops and entries."""

    def __init__(self, data):
        self.data = data
        need(len(data) >= HEADER + TRAILER, "shorter than header + trailer")
        need(data[:8] == MAGIC, "header magic")
        version, flags = struct.unpack_from("<II", data, 8)
        need(version == 1 and flags == 0, "version or flags")
        self.base_id, self.target_id = data[16:48], data[48:80]
        need(data[80:96] == bytes(16), "reserved header bytes")
        self._trailer()
        raw = patchdec.plain_frame(data[self.index_off:self.index_off + self.index_len])
        need(len(raw) == self.index_raw_len, "index raw length")
        self.ops, self.entries = [], []
        self._index(patchdec.Cursor(raw))
        kept = sum(n for op, n in self.ops if op == "keep")
        need(kept + len(self.entries) == self.entry_count, "entry count")

    def _trailer(self):
        t = len(self.data) - TRAILER
        (self.index_off, self.index_len, self.index_raw_len, _, self.entry_count,
         dict_len, dict_xxh3) = struct.unpack_from("<7Q", self.data, t)
        need(self.data[t + 56:] == b"DIMGIDX\n", "trailer magic")
        need(HEADER <= self.index_off <= t and self.index_len == t - self.index_off,
             "index place")
        need(1 <= self.index_raw_len <= 1 << 30, "index raw length range")
        need(dict_len == 0 and dict_xxh3 == 0 or 8 <= dict_len <= 1 << 20,
             "dictionary length")
        self.dictionary = self.data[HEADER:HEADER + dict_len] if dict_len else None
        need(HEADER + dict_len <= self.index_off, "dictionary reaches the index")
        need(not dict_len or self.dictionary[:4] == b"\x37\xa4\x30\xec", "dictionary magic")
        self.blobs_off = HEADER + dict_len

    def _index(self, c):
        while True:
            op = c.u8("op")
            if op == 0:
                need(c.left() == 0, "bytes after END")
                return
            if op in (1, 2):
                n = struct.unpack("<I", c.take(4))[0]
                need(n >= 1, "empty run")
                self.ops.append(("keep" if op == 1 else "skip", n))
            else:
                need(op == 3, "unknown op %d" % op)
                self.ops.append(("entry", len(self.entries)))
                self.entries.append(self._entry(c))

    def _entry(self, c):
        f = struct.unpack("<BBBBIIIqIIIQQQQIIII", c.take(84, "entry record"))
        e = dict(zip(("type", "payload", "codec", "flags", "mode", "uid", "gid", "mtime",
                      "nsec", "major", "minor", "size", "blob_off", "blob_len", "xxh3",
                      "path_len", "link_len", "src_len", "nxattrs"), f))
        need(1 <= e["type"] <= 7 and e["mode"] & ~0o7777 == 0 and e["nsec"] < 10**9,
             "type, mode or nanoseconds")
        need(max(e["path_len"], e["link_len"], e["src_len"]) < 4096, "string length")
        self._payload_rules(e)
        reg_hash = e["type"] == 2 and e["payload"] != 2
        e["sha256"] = c.take(32).hex() if reg_hash else None
        for k in ("path", "link", "src"):
            b = c.take(e[k + "_len"])
            need(b"\0" not in b, "NUL in a string")
            e[k] = b.decode("utf-8", "surrogateescape")
        e["xattrs"] = [self._xattr(c) for _ in range(e["nxattrs"])]
        e["payload"] = PAYLOADS[e["payload"]]
        return e

    def _payload_rules(self, e):
        p, reg = e["payload"], e["type"] == 2
        need(p <= 4 and reg == (p != 0), "payload vs type")
        need((p == 4) == (e["codec"] != 0) and e["codec"] <= 4, "codec vs payload")
        need(e["src_len"] == 0 or p in (2, 4), "source path on this payload")
        need(p != 1 or e["size"] == 0, "empty payload with a size")
        need(e["flags"] in (0, 1) and (not e["flags"] or p == 3 and self.dictionary),
             "flags")
        if p in (3, 4):
            need(self.blobs_off <= e["blob_off"] <= self.index_off and
                 e["blob_len"] <= self.index_off - e["blob_off"], "blob range")
        else:
            need(e["blob_off"] == e["blob_len"] == e["xxh3"] == 0, "blob fields")

    @staticmethod
    def _xattr(c):
        nl, vl = struct.unpack("<II", c.take(8))
        need(1 <= nl <= 255 and vl <= 1 << 24, "xattr lengths")
        return c.take(nl), c.take(vl)

    def blob(self, e):
        return self.data[e["blob_off"]:e["blob_off"] + e["blob_len"]]

    def full_content(self, e):
        """A full payload's content (its frame, with the dictionary if ZDICT)."""
        return patchdec.plain_frame(self.blob(e), self.dictionary if e["flags"] else None)


def tree_entries(root):
    """The tree of a directory as docs/FORMAT.md "Trees" defines it: sorted
    by path bytes, the root first, hardlinks as type 4 after the first path."""
    paths = [b""]
    for d, dirs, files in os.walk(os.fsencode(root)):
        rel = os.path.relpath(d, os.fsencode(root))
        rel = b"" if rel == b"." else rel + b"/"
        paths += [rel + n for n in dirs + files]
    leaders, out = {}, []
    for path in sorted(paths):
        full = os.path.join(os.fsencode(root), path) if path else os.fsencode(root)
        st = os.lstat(full)
        out.append(tree_entry(path, full, st, leaders))
    return out


def tree_entry(path, full, st, leaders):
    kinds = ((stat.S_ISDIR, 1), (stat.S_ISREG, 2), (stat.S_ISLNK, 3), (stat.S_ISCHR, 5),
             (stat.S_ISBLK, 6), (stat.S_ISFIFO, 7))
    e = {"path": path, "type": next(k for f, k in kinds if f(st.st_mode)), "link": b"",
         "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
         "sec": st.st_mtime_ns // 10**9, "nsec": st.st_mtime_ns % 10**9, "size": 0,
         "rdev": (0, 0), "sha256": bytes(32), "xattrs": []}
    if e["type"] == 2 and st.st_nlink > 1:
        key = (st.st_dev, st.st_ino)
        if key in leaders:
            return dict(e, type=4, link=leaders[key], mode=0, uid=0, gid=0, sec=0, nsec=0)
        leaders[key] = path
    if e["type"] == 2:
        with open(full, "rb") as f:
            e["sha256"] = hashlib.sha256(f.read()).digest()
        e["size"] = st.st_size
    elif e["type"] == 3:
        e["link"] = os.readlink(full)
        e["size"] = len(e["link"])
    elif e["type"] in (5, 6):
        e["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
    names = sorted(os.listxattr(full, follow_symlinks=False))
    e["xattrs"] = [(n.encode(), os.getxattr(full, n, follow_symlinks=False)) for n in names]
    return e


def tree_id(root):
    """docs/FORMAT.md "Tree id" of a directory tree."""
    ents = tree_entries(root)
    h = hashlib.sha256(b"di3fs-tree-v1".ljust(16, b"\0") + struct.pack("<Q", len(ents)))
    for e in ents:
        h.update(struct.pack("<I", len(e["path"])) + e["path"] + bytes([e["type"]]))
        h.update(struct.pack("<IIIqIQII", e["mode"], e["uid"], e["gid"], e["sec"], e["nsec"],
                             e["size"], *e["rdev"]))
        h.update(e["sha256"] + struct.pack("<I", len(e["link"])) + e["link"])
        h.update(struct.pack("<I", len(e["xattrs"])))
        for name, value in e["xattrs"]:
            h.update(struct.pack("<I", len(name)) + name + struct.pack("<I", len(value)) + value)
    return h.digest()


def main():
    if len(sys.argv) not in (2, 4):
        sys.stderr.write(__doc__)
        return 2
    with open(sys.argv[1], "rb") as f:
        try:
            d = Dimg(f.read())
        except (FormatError, patchdec.PatchError) as e:
            print("dimgread: %s" % e, file=sys.stderr)
            return 1
    for e in d.entries:
        if len(sys.argv) == 2:
            keys = ("path", "type", "payload", "codec", "size", "src", "blob_len", "sha256")
            print(json.dumps({k: e[k] for k in keys}))
        elif e["path"] == sys.argv[2] and e["payload"] in ("full", "patch"):
            with open(sys.argv[3], "wb") as f:
                f.write(d.blob(e))
            return 0
    return 0 if len(sys.argv) == 2 else 1


if __name__ == "__main__":
    sys.exit(main())
