#!/usr/bin/env python3
"""readfile.py FILE - reads FILE to its end and prints "ok <sha256>", or
the errno name (EIO, ENOENT, ...) of the open or read that failed, so a
test can tell EIO from wrong bytes from a missing file. Exit 0 either way;
2 on usage."""
import errno
import hashlib
import sys


def main():
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    try:
        with open(sys.argv[1], "rb") as f:
            h = hashlib.sha256()
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        print("ok", h.hexdigest())
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
