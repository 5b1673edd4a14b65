#!/usr/bin/env python3
"""housecheck.py SRC: checks the house rules anyone can check by reading
the tree (docs/ARCHITECTURE.md):

  1. layers include only downward: a source file of a layer includes only
     headers of its own layer or of layers below it (libdimg's layers, the
     project's folders, the snapshotter's libraries);
  2. no C source or header over 1,000 lines;
  3. none of the banned functions (sprintf strcpy strcat gets atoi atol
     strtok) is called.

Prints each violation and exits 1 if there is any."""
import os
import re
import sys

MAX_LINES = 1000
BANNED = ("sprintf", "strcpy", "strcat", "gets", "atoi", "atol", "strtok")

# libdimg's layers, lowest first, and the public headers each one owns.
DIMG_LAYERS = ["common", "codec", "tree", "format", "oci", "image"]
DIMG_PUBLIC = {
    "types.h": "common", "hash.h": "common", "varint.h": "common", "codec.h": "codec",
    "tree.h": "tree", "write.h": "tree", "fileio.h": "tree", "dimg.h": "format",
    "oci.h": "oci", "image.h": "image", "tar.h": "common", "cas.h": "image",
}
# The project's folders, lowest first: a folder may include what it owns
# and what the folders before it own. Folders not listed are not checked.
FOLDERS = ["dimg", "differ", "packer", "registry", "ctrd", "transport",
           "snapshotter", "ctr-tools"]
# Within the snapshotter, its libraries, lowest first.
SNAP_LAYERS = ["common", "lazyfs", "core", "grpc"]


def sources(src):
    for top, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not d.startswith("build")]
        for f in files:
            if f.endswith((".c", ".h")):
                yield os.path.join(top, f)


def includes(path):
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if m:
                yield n, m.group(1)


def header_index(src):
    """Header basename -> the folders (relative to src) defining it."""
    idx = {}
    for p in sources(src):
        if p.endswith(".h"):
            idx.setdefault(os.path.basename(p), []).append(os.path.relpath(p, src))
    return idx


def rank(rel):
    """(folder rank, sub-layer rank) of a file, or None when unchecked."""
    parts = rel.split(os.sep)
    if parts[0] not in FOLDERS:
        return None
    top = FOLDERS.index(parts[0])
    if parts[0] == "dimg":
        if parts[1] == "lib" and parts[2] in DIMG_LAYERS:
            return (top, DIMG_LAYERS.index(parts[2]))
        if parts[1] == "include":
            return (top, DIMG_LAYERS.index(DIMG_PUBLIC.get(parts[-1], "image")))
    if parts[0] == "snapshotter" and len(parts) > 2 and parts[1] in SNAP_LAYERS:
        return (top, SNAP_LAYERS.index(parts[1]))
    if parts[0] == "snapshotter":
        return (top, len(SNAP_LAYERS))  # main.c: over all of them
    return (top, 0)


def target_rank(inc, rel, idx):
    if inc.startswith("dimg/"):
        return (FOLDERS.index("dimg"), DIMG_LAYERS.index(DIMG_PUBLIC.get(inc[5:], "image")))
    here = os.path.dirname(rel)
    cands = idx.get(os.path.basename(inc), [])
    # the header next to the file wins, as the compiler's "" lookup does
    for c in cands:
        if os.path.dirname(c) == here:
            return rank(c)
    ranks = [rank(c) for c in cands if rank(c) is not None]
    return min(ranks) if ranks else None


def check_layers(src, problems):
    idx = header_index(src)
    for p in sources(src):
        rel = os.path.relpath(p, src)
        me = rank(rel)
        if me is None:
            continue
        for n, inc in includes(p):
            t = target_rank(inc, rel, idx)
            if t is not None and t > me:
                problems.append(f"{rel}:{n}: includes \"{inc}\" from a higher layer")


def check_sizes_and_banned(src, problems):
    call = re.compile(r"(?<![\w.>])(" + "|".join(BANNED) + r")\s*\(")
    for p in sources(src):
        rel = os.path.relpath(p, src)
        with open(p, encoding="utf-8", errors="replace") as fh:
            lines = fh.readlines()
        if len(lines) > MAX_LINES:
            problems.append(f"{rel}: {len(lines)} lines (the house keeps files under {MAX_LINES})")
        for n, line in enumerate(lines, 1):
            code = line.split("//")[0]
            if code.lstrip().startswith(("*", "/*")):
                continue
            m = call.search(code)
            if m:
                problems.append(f"{rel}:{n}: calls banned {m.group(1)}()")


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "."
    problems = []
    check_layers(src, problems)
    check_sizes_and_banned(src, problems)
    for p in problems:
        print(p)
    print(f"housecheck: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
