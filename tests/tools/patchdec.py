#!/usr/bin/env python3
"""patchdec.py - applies a di3fs patch blob, written from docs/patch-format.md.

usage: patchdec.py CODEC OLD BLOB OUT

Applies BLOB (codec 1 bsdiff, 2 zstdref, 3 gzip-recompress, 4 chain) to the
file OLD and writes the new file to OUT. Exit status: 0 done; 1 the blob
breaks a rule of docs/patch-format.md (the errno name it gives is printed);
2 usage.

It is an independent check of that document: it knows only what the
document states, shares no code with the C implementation, and uses only
the Python standard library (zlib) and the `zstd` command (Debian's zstd
package) to decode zstd frames, whose headers and block framing it reads
itself (RFC 8878) to check what the document requires of them.
"""

import bz2
import hashlib
import os
import struct
import subprocess
import sys
import tempfile
import zlib

MIB = 1 << 20
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZ_MAX_RAW = 64 * MIB


class PatchError(Exception):
    """A blob that breaks a rule; err is the errno name the document gives."""

    def __init__(self, err, why):
        super().__init__("%s: %s" % (err, why))
        self.err = err


def need(cond, err, why):
    if not cond:
        raise PatchError(err, why)


class Cursor:
    """Reads a blob front to back; running past its end is EBADMSG."""

    def __init__(self, buf, pos=0, end=None):
        self.buf, self.pos = buf, pos
        self.end = len(buf) if end is None else end

    def left(self):
        return self.end - self.pos

    def take(self, n, what="field"):
        need(n <= self.left(), "EBADMSG", "%s runs past the end" % what)
        self.pos += n
        return self.buf[self.pos - n:self.pos]

    def u8(self, what="byte"):
        return self.take(1, what)[0]

    def varint(self, what="varint"):
        """Unsigned LEB128, at most 10 bytes, shortest form only."""
        v = 0
        for i in range(10):
            b = self.u8(what)
            need(i < 9 or b <= 1, "EBADMSG", "%s: more than 64 bits" % what)
            v |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                need(i == 0 or b != 0, "EBADMSG", "%s: not the shortest form" % what)
                return v
        raise PatchError("EBADMSG", "%s: longer than 10 bytes" % what)


def log2ceil(v):
    """Smallest l with 2^l >= v (0 for v <= 1)."""
    return max(v - 1, 0).bit_length()


# ---- zstd frames (RFC 8878 framing; the zstd command decodes) ----


def frame_header(blob):
    """Content size, window size and total length of the one frame at 0."""
    need(blob[:4] == ZSTD_MAGIC, "EBADMSG", "not a zstd frame (magic)")
    c = Cursor(blob, 4)
    fhd = c.u8("frame header")
    fcs_flag, single = fhd >> 6, (fhd >> 5) & 1
    need(not fhd & 0x08, "EBADMSG", "reserved frame header bit set")
    wd = None if single else c.u8("window descriptor")
    did_size = (0, 1, 2, 4)[fhd & 3]
    did = int.from_bytes(c.take(did_size, "dictionary id"), "little")
    fcs_size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    need(fcs_size > 0, "EBADMSG", "frame states no content size")
    size = int.from_bytes(c.take(fcs_size, "content size"), "little")
    size += 256 if fcs_size == 2 else 0
    if single:
        window = size
    else:
        wlog = 10 + (wd >> 3)
        window = (1 << wlog) + ((1 << wlog) >> 3) * (wd & 7)
    while True:
        bh = int.from_bytes(c.take(3, "block header"), "little")
        kind, bsize = (bh >> 1) & 3, bh >> 3
        need(kind != 3, "EBADMSG", "reserved block type")
        c.take(1 if kind == 1 else bsize, "block")
        if bh & 1:
            break
    if fhd & 0x04:
        c.take(4, "checksum")
    return {"size": size, "window": max(window, 1 << 10), "len": c.pos, "dict_id": did}


def zstd_frame(blob, wlog_max, prefix=None, dictionary=None, ratio=True):
    """Decodes a blob that must be exactly one frame with a window of at most
    2^wlog_max, the old file as raw prefix or a zstd dictionary if given;
    ratio: the stated size may not pass 32768 x the frame's length."""
    h = frame_header(blob)
    need(not ratio or h["size"] // 32768 <= len(blob), "EBADMSG",
         "stated size past 32768 x the frame")
    need(h["window"] <= 1 << wlog_max, "EOVERFLOW",
         "window %d over 2^%d" % (h["window"], wlog_max))
    need(h["len"] == len(blob), "EBADMSG", "bytes after the frame")
    need(h["dict_id"] == 0, "EBADMSG", "frame names a dictionary")
    out = run_zstd(blob, prefix, dictionary)
    need(len(out) == h["size"], "EBADMSG", "frame decodes to another size than stated")
    return out


def run_zstd(blob, prefix, dictionary):
    cmd = ["zstd", "-d", "-c", "-q", "--long=31"]
    with tempfile.TemporaryDirectory() as tmp:
        for flag, data in (("--patch-from=", prefix), ("-D", dictionary)):
            if data:  # an empty old file is no prefix at all
                path = os.path.join(tmp, "ref")
                with open(path, "wb") as f:
                    f.write(data)
                cmd += [flag + path] if flag.endswith("=") else [flag, path]
        p = subprocess.run(cmd, input=blob, capture_output=True, check=False)
    need(p.returncode == 0, "EBADMSG", "zstd: " + p.stderr.decode(errors="replace").strip())
    return p.stdout


def plain_frame(blob, dictionary=None):
    """Full payloads, the index, gzip-recompress inner 0 ("Plain zstd frames")."""
    h = frame_header(blob)
    return zstd_frame(blob, min(max(log2ceil(h["size"]), 10), 27), dictionary=dictionary)


# ---- codec 1: bsdiff ----


def bsdiff(old, blob):
    c = Cursor(blob)
    need(len(blob) >= 64 and blob[:8] == b"DI3FSBSD", "EBADMSG", "bsdiff magic")
    c.take(8)
    version, m0, m1, m2, m3, old_size, new_size, *zlen, res2 = struct.unpack(
        "<IBBBBQQQQQQ", c.take(56))
    need(version in (1, 2), "ENOTSUP", "bsdiff version %d" % version)
    methods = (m0, m1, m2)
    if version == 1:
        need(methods == (0, 0, 0) and m3 == 0, "EBADMSG", "bsdiff v1 reserved bytes")
    else:
        need(all(m in (0, 1) for m in methods) and m3 == 0, "EBADMSG", "bsdiff v2 methods")
    need(res2 == 0, "EBADMSG", "bsdiff reserved fields")
    need(sum(zlen) == c.left() and all(z <= c.left() for z in zlen), "EBADMSG",
         "bsdiff stream lengths do not add up to the blob")
    need(old_size == len(old), "EXDEV", "old file is %d bytes, patch wants %d"
         % (len(old), old_size))
    streams, pos = [], 64
    for z, m in zip(zlen, methods):
        part = blob[pos:pos + z]
        streams.append(zstd_frame(part, 23, ratio=False) if m == 0 else bzip2_stream(part))
        pos += z
    ctrl, diff, extra = streams
    need(len(ctrl) // 30 <= new_size and len(diff) <= new_size
         and len(diff) + len(extra) == new_size, "EBADMSG", "stream sizes vs new_size")
    return bsdiff_run(old, new_size, Cursor(ctrl), diff, extra)


def bzip2_stream(part):
    """Exactly one bzip2 stream (BZh + a block size digit), nothing after it."""
    need(len(part) >= 4 and part[:3] == b"BZh" and part[3:4] in b"123456789",
         "EBADMSG", "bzip2 stream header")
    d = bz2.BZ2Decompressor()
    try:
        out = d.decompress(part)
    except (OSError, EOFError):
        raise PatchError("EBADMSG", "bzip2 stream corrupt")
    need(d.eof and not d.unused_data, "EBADMSG", "bzip2 stream truncated or followed by bytes")
    return out


def bsdiff_run(old, new_size, ctrl, diff, extra):
    out, cursor, dpos, epos = bytearray(), 0, 0, 0
    while len(out) < new_size:
        need(ctrl.left() > 0, "EBADMSG", "control stream ends early")
        z, nd, ne = ctrl.varint("seek"), ctrl.varint("diff"), ctrl.varint("extra")
        seek = (z >> 1) ^ -(z & 1)
        need(nd or ne, "EBADMSG", "empty control record")
        need(0 <= cursor + seek <= len(old), "EOVERFLOW", "seek outside old")
        cursor += seek
        left = new_size - len(out)
        need(nd <= left and ne <= left - nd and nd <= len(old) - cursor, "EOVERFLOW",
             "record runs past new or old")
        need(dpos + nd <= len(diff) and epos + ne <= len(extra), "EBADMSG",
             "diff or extra stream ends early")
        out += bytes((a + b) & 0xFF for a, b in zip(old[cursor:cursor + nd],
                                                     diff[dpos:dpos + nd]))
        out += extra[epos:epos + ne]
        cursor, dpos, epos = cursor + nd, dpos + nd, epos + ne
    need(ctrl.left() == 0, "EBADMSG", "control records left over")
    return bytes(out)


# ---- codec 2: zstdref ----


def zstdref(old, blob):
    h = frame_header(blob)
    return zstd_frame(blob, min(max(log2ceil(len(old) + h["size"]), 10), 31), prefix=old)


# ---- codec 3: gzip-recompress ----


def gz_header_len(buf, pos):
    """Length of a valid member header at pos, or None."""
    n = len(buf) - pos
    if n < 10 or buf[pos:pos + 3] != b"\x1f\x8b\x08" or buf[pos + 3] & 0xE0:
        return None
    flg, at = buf[pos + 3], pos + 10
    if flg & 0x04:
        if len(buf) - at < 2:
            return None
        xlen = int.from_bytes(buf[at:at + 2], "little")
        if len(buf) - at - 2 < xlen:
            return None
        at += 2 + xlen
    for bit in (0x08, 0x10):
        if flg & bit:
            z = buf.find(b"\0", at)
            if z < 0:
                return None
            at = z + 1
    if flg & 0x02:
        at += 2
    return at - pos if at <= len(buf) and at - pos <= MIB else None


def gz_member(buf, pos, have):
    """(header, content, length) of the member at pos, or None."""
    hl = gz_header_len(buf, pos)
    if hl is None:
        return None
    d = zlib.decompressobj(-15)
    try:
        data = d.decompress(buf[pos + hl:], GZ_MAX_RAW - have + 1)
    except zlib.error:
        return None
    if not d.eof or len(data) > GZ_MAX_RAW - have or len(d.unused_data) < 8:
        return None
    crc, isize = struct.unpack("<II", d.unused_data[:8])
    if crc != zlib.crc32(data) or isize != len(data) & 0xFFFFFFFF:
        return None
    used = len(buf) - pos - len(d.unused_data) + 8
    return buf[pos:pos + hl], data, used


def gz_split(buf):
    """The members' headers, the content and the tail; None if not gzip."""
    pos, heads, content = 0, [], bytearray()
    while len(heads) < 4096 and pos < len(buf):
        m = gz_member(buf, pos, len(content))
        if m is None:
            break
        heads.append(m[0])
        content += m[1]
        pos += m[2]
    return (heads, bytes(content), buf[pos:]) if heads else None


def gzre_parse(blob):
    need(len(blob) >= 2, "EBADMSG", "gzip-recompress blob too short")
    need(blob[0] == 1, "ENOTSUP", "gzip-recompress version %d" % blob[0])
    c = Cursor(blob, 2)
    b = {"inner": blob[1]}
    need(b["inner"] <= 2, "EBADMSG", "inner kind %d" % b["inner"])
    for name, top in (("members", 4096), ("old_raw", GZ_MAX_RAW), ("new_raw", GZ_MAX_RAW),
                      ("tail_len", 1 << 64), ("block_len", 1 << 64)):
        b[name] = c.varint(name)
        need(b[name] <= top, "EBADMSG", "%s out of range" % name)
    need(b["members"] > 0, "EBADMSG", "no member")
    need(b["inner"] or not b["old_raw"], "EBADMSG", "old_raw set with inner 0")
    need(c.left() // 7 >= b["members"], "EBADMSG", "member records past the blob")
    b["m"] = [gzre_record(c) for _ in range(b["members"])]
    need(sum(m["raw"] for m in b["m"]) == b["new_raw"], "EBADMSG", "raw lengths vs new_raw")
    for m in b["m"]:
        m["hdr"] = c.take(m["hdr_len"], "member header")
    need(b["block_len"] <= c.left() and b["tail_len"] <= c.left() - b["block_len"],
         "EBADMSG", "block table or tail past the blob")
    gzre_blocks(Cursor(blob, c.pos, c.pos + b["block_len"]), b["m"])
    c.take(b["block_len"])
    b["tail"] = c.take(b["tail_len"])
    b["payload"] = blob[c.pos:]
    return b


def gzre_record(c):
    level, wbits, memlevel, strategy = c.take(4, "member parameters")
    need(1 <= level <= 9 and 9 <= wbits <= 15 and 1 <= memlevel <= 9 and strategy <= 4,
         "EBADMSG", "member parameters out of range")
    m = {"p": (level, wbits, memlevel, strategy)}
    m["hdr_len"], m["raw"], m["nends"] = c.varint(), c.varint(), c.varint()
    need(10 <= m["hdr_len"] <= MIB and m["raw"] <= GZ_MAX_RAW and m["nends"] < 1 << 32,
         "EBADMSG", "member record out of range")
    return m


def gzre_blocks(c, members):
    for m in members:
        at, m["ends"] = 0, []
        for _ in range(m["nends"]):
            gap = c.varint("block end")
            need(gap >= 1 and at + gap < m["raw"], "EBADMSG", "block end outside its member")
            at += gap
            m["ends"].append(at)
    need(c.left() == 0, "EBADMSG", "block table bytes left over")


def gzre(old, blob, piece=4093):
    b = gzre_parse(blob)
    if b["inner"] == 0:
        content = plain_frame(b["payload"])
    else:
        split = gz_split(old)
        need(split is not None and len(split[1]) == b["old_raw"], "EXDEV",
             "old file is not the gzip file the blob wants")
        content = apply(b["inner"], split[1], b["payload"])
    need(len(content) == b["new_raw"], "EBADMSG", "inner payload gives another length")
    out, pos = bytearray(), 0
    for m in b["m"]:
        out += m["hdr"]
        out += gz_deflate(content[pos:pos + m["raw"]], m, piece)
        out += struct.pack("<II", zlib.crc32(content[pos:pos + m["raw"]]),
                           m["raw"] & 0xFFFFFFFF)
        pos += m["raw"]
    return bytes(out + b["tail"])


def gz_deflate(raw, m, piece):
    """Deflates one member, its content fed in pieces, Z_BLOCK at each end."""
    level, wbits, memlevel, strategy = m["p"]
    z = zlib.compressobj(level, zlib.DEFLATED, -wbits, memlevel, strategy)
    out, pos = bytearray(), 0
    for stop in m["ends"] + [len(raw)]:
        for at in range(pos, stop, piece):
            out += z.compress(raw[at:min(at + piece, stop)])
        if stop < len(raw):
            out += z.flush(zlib.Z_BLOCK)
        pos = stop
    return bytes(out + z.flush(zlib.Z_FINISH))


# ---- codec 4: chain ----


def chain_parse(blob):
    need(len(blob) >= 1, "EBADMSG", "empty chain blob")
    need(blob[0] == 1, "ENOTSUP", "chain version %d" % blob[0])
    c = Cursor(blob, 1)
    n = c.varint("steps")
    need(2 <= n <= 64, "EBADMSG", "%d steps" % n)
    steps = []
    for i in range(n):
        s = {"codec": c.u8("step codec")}
        need(1 <= s["codec"] <= 3, "EBADMSG", "step codec %d" % s["codec"])
        if i + 1 < n:
            s["size"] = c.varint("step size")
            s["sha256"] = c.take(32, "step sha256")
        s["blob"] = c.take(c.varint("step length"), "step blob")
        steps.append(s)
    need(c.left() == 0, "EBADMSG", "bytes after the last step")
    return steps


def chain(old, blob):
    cur = old
    for s in chain_parse(blob):
        cur = apply(s["codec"], cur, s["blob"])
        if "size" in s:
            need(len(cur) == s["size"] and hashlib.sha256(cur).digest() == s["sha256"],
                 "EBADMSG", "step output is not the recorded one")
    return cur


CODECS = {1: bsdiff, 2: zstdref, 3: gzre, 4: chain}


def apply(codec, old, blob):
    need(codec in CODECS, "ENOTSUP", "codec %d" % codec)
    return CODECS[codec](bytes(old), bytes(blob))


def main():
    if len(sys.argv) != 5 or not sys.argv[1].isdigit():
        sys.stderr.write(__doc__)
        return 2
    with open(sys.argv[2], "rb") as f:
        old = f.read()
    with open(sys.argv[3], "rb") as f:
        blob = f.read()
    try:
        new = apply(int(sys.argv[1]), old, blob)
    except PatchError as e:
        print(e.err, file=sys.stderr)
        print(e, file=sys.stderr)
        return 1
    with open(sys.argv[4], "wb") as f:
        f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
