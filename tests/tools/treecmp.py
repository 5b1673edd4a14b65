#!/usr/bin/env python3
"""treecmp.py - strict comparison of two directory trees.

usage: treecmp.py [--max-lines N] A B

Walks A and B without following symlinks and compares, for every path
(the roots included): presence, file type, full mode (with setuid, setgid
and sticky bits), uid, gid, mtime in nanoseconds, size (regular files and
symlinks), content (SHA-256), symlink target, device major/minor, every
extended attribute (any namespace), and hardlink structure (the set of
paths sharing an inode must be the same in both trees).

Directory sizes are not compared: they depend on the file system's
history, not on the tree.

Exit status: 0 identical, 1 differences found (each printed, up to
--max-lines, default 50, then a count), 2 usage or read error.

Only the Python standard library is used; this tool shares no code with
the C implementation it checks.
"""

import errno
import hashlib
import os
import stat
import sys

TYPE_NAMES = {
    stat.S_IFREG: "regular file",
    stat.S_IFDIR: "directory",
    stat.S_IFLNK: "symlink",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


class ReadError(Exception):
    pass


def show(relpath):
    """Printable form of a relative path given as bytes."""
    if relpath == b"":
        return "."
    return relpath.decode("utf-8", "backslashreplace")


def read_xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise ReadError("listxattr %s: %s" % (os.fsdecode(path), e.strerror))
    out = {}
    for name in names:
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as e:
            if e.errno == errno.ENODATA:  # removed meanwhile
                continue
            raise ReadError("getxattr %s %s: %s"
                            % (os.fsdecode(path), name, e.strerror))
    return out


def hash_file(path):
    h = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        # O_NOATIME needs ownership; retry without it.
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as e:
            raise ReadError("open %s: %s" % (os.fsdecode(path), e.strerror))
    except OSError as e:
        raise ReadError("open %s: %s" % (os.fsdecode(path), e.strerror))
    try:
        while True:
            buf = os.read(fd, 1 << 20)
            if not buf:
                break
            h.update(buf)
    except OSError as e:
        raise ReadError("read %s: %s" % (os.fsdecode(path), e.strerror))
    finally:
        os.close(fd)
    return h.digest()


class Tree:
    """All entries of a tree: relative path (bytes) -> lstat result."""

    def __init__(self, root):
        self.root = os.fsencode(root)
        self.entries = {}
        self.inodes = {}  # (dev, ino) -> sorted list of relpaths
        self._hashes = {}  # (dev, ino) -> digest
        self._walk()
        for paths in self.inodes.values():
            paths.sort()

    def path(self, rel):
        return os.path.join(self.root, rel) if rel else self.root

    def _add(self, rel, st):
        self.entries[rel] = st
        if not stat.S_ISDIR(st.st_mode):
            self.inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)

    def _walk(self):
        try:
            st = os.lstat(self.root)
        except OSError as e:
            raise ReadError("%s: %s" % (os.fsdecode(self.root), e.strerror))
        self._add(b"", st)
        stack = [b""]
        while stack:
            rel = stack.pop()
            try:
                with os.scandir(self.path(rel)) as it:
                    children = [e.name for e in it]
            except OSError as e:
                raise ReadError("scandir %s: %s"
                                % (os.fsdecode(self.path(rel)), e.strerror))
            for name in children:
                crel = os.path.join(rel, name) if rel else name
                try:
                    cst = os.lstat(self.path(crel))
                except OSError as e:
                    raise ReadError("lstat %s: %s"
                                    % (os.fsdecode(self.path(crel)), e.strerror))
                self._add(crel, cst)
                if stat.S_ISDIR(cst.st_mode):
                    stack.append(crel)

    def links(self, rel):
        st = self.entries[rel]
        if stat.S_ISDIR(st.st_mode):
            return [rel]
        return self.inodes[(st.st_dev, st.st_ino)]

    def digest(self, rel):
        st = self.entries[rel]
        key = (st.st_dev, st.st_ino)
        if key not in self._hashes:
            self._hashes[key] = hash_file(self.path(rel))
        return self._hashes[key]


def fmt_mode(m):
    return "%04o" % stat.S_IMODE(m)


def fmt_ns(ns):
    return "%d.%09d" % divmod(ns, 1000000000)


def fmt_xattr(v):
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def compare_entry(rel, a, b, out):
    sa, sb = a.entries[rel], b.entries[rel]
    p = show(rel)
    ta, tb = stat.S_IFMT(sa.st_mode), stat.S_IFMT(sb.st_mode)
    if ta != tb:
        out.append("%s: type %s != %s" % (p, TYPE_NAMES.get(ta, oct(ta)),
                                          TYPE_NAMES.get(tb, oct(tb))))
        return
    if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
        out.append("%s: mode %s != %s" % (p, fmt_mode(sa.st_mode), fmt_mode(sb.st_mode)))
    if sa.st_uid != sb.st_uid:
        out.append("%s: uid %d != %d" % (p, sa.st_uid, sb.st_uid))
    if sa.st_gid != sb.st_gid:
        out.append("%s: gid %d != %d" % (p, sa.st_gid, sb.st_gid))
    if sa.st_mtime_ns != sb.st_mtime_ns:
        out.append("%s: mtime %s != %s" % (p, fmt_ns(sa.st_mtime_ns), fmt_ns(sb.st_mtime_ns)))
    if ta in (stat.S_IFREG, stat.S_IFLNK) and sa.st_size != sb.st_size:
        out.append("%s: size %d != %d" % (p, sa.st_size, sb.st_size))
    elif ta == stat.S_IFREG and a.digest(rel) != b.digest(rel):
        out.append("%s: content differs" % p)
    if ta == stat.S_IFLNK:
        la, lb = os.readlink(a.path(rel)), os.readlink(b.path(rel))
        if la != lb:
            out.append("%s: symlink target %s != %s" % (p, show(la), show(lb)))
    if ta in (stat.S_IFCHR, stat.S_IFBLK) and sa.st_rdev != sb.st_rdev:
        out.append("%s: device %d:%d != %d:%d" % (
            p, os.major(sa.st_rdev), os.minor(sa.st_rdev),
            os.major(sb.st_rdev), os.minor(sb.st_rdev)))
    xa, xb = read_xattrs(a.path(rel)), read_xattrs(b.path(rel))
    for name in sorted(set(xa) | set(xb)):
        if name not in xb:
            out.append("%s: xattr %s only in A" % (p, name))
        elif name not in xa:
            out.append("%s: xattr %s only in B" % (p, name))
        elif xa[name] != xb[name]:
            out.append("%s: xattr %s %s != %s" % (p, name, fmt_xattr(xa[name]),
                                                  fmt_xattr(xb[name])))
    if ta != stat.S_IFDIR:
        la, lb = a.links(rel), b.links(rel)
        if la != lb:
            out.append("%s: hardlinks [%s] != [%s]" % (
                p, " ".join(show(x) for x in la), " ".join(show(x) for x in lb)))


def main(argv):
    args = argv[1:]
    max_lines = 50
    if len(args) >= 2 and args[0] == "--max-lines":
        try:
            max_lines = int(args[1])
        except ValueError:
            max_lines = -1
        if max_lines < 0:
            sys.stderr.write("treecmp: --max-lines needs a number >= 0\n")
            return 2
        args = args[2:]
    if len(args) != 2:
        sys.stderr.write("usage: treecmp.py [--max-lines N] A B\n")
        return 2
    for d in args:
        if not os.path.isdir(d) or os.path.islink(d):
            sys.stderr.write("treecmp: %s: not a directory\n" % d)
            return 2
    try:
        a, b = Tree(args[0]), Tree(args[1])
        diffs = []
        for rel in sorted(set(a.entries) | set(b.entries)):
            if rel not in b.entries:
                diffs.append("%s: only in A (%s)" % (show(rel), TYPE_NAMES.get(
                    stat.S_IFMT(a.entries[rel].st_mode), "?")))
            elif rel not in a.entries:
                diffs.append("%s: only in B (%s)" % (show(rel), TYPE_NAMES.get(
                    stat.S_IFMT(b.entries[rel].st_mode), "?")))
            else:
                compare_entry(rel, a, b, diffs)
    except ReadError as e:
        sys.stderr.write("treecmp: error: %s\n" % e)
        return 2
    except OSError as e:
        sys.stderr.write("treecmp: error: %s: %s\n"
                         % (os.fsdecode(e.filename or ""), e.strerror))
        return 2
    if not diffs:
        print("treecmp: identical (%d entries)" % len(a.entries))
        return 0
    for line in diffs[:max_lines]:
        print(line)
    if len(diffs) > max_lines:
        print("... %d more" % (len(diffs) - max_lines))
    print("treecmp: %d difference(s) between %s and %s" % (len(diffs), args[0], args[1]))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
