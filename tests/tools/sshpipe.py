#!/usr/bin/env python3
"""A stand-in for the ssh client that runs the real one and sits on its
stdin and stdout, for the ssh:// tests (cdimg copy --ssh-command):

    sshpipe.py [--count FILE] [--flip N] [--cut-after N] CMD ARG...

runs CMD ARG... (ssh and the arguments cdimg gives it) and copies bytes
both ways. --count FILE writes "UP DOWN" (bytes cdimg sent, bytes it
received) to FILE at the end. --flip N flips the lowest bit of the N-th
byte (from 0) cdimg sends. --cut-after N SIGKILLs the ssh process once N
bytes went up and exits 255, as a connection cut mid-transfer."""
import os
import signal
import subprocess
import sys
import threading


def main():
    args = sys.argv[1:]
    opts = {"--count": None, "--flip": None, "--cut-after": None}
    while args and args[0] in opts:
        opts[args[0]] = args[1]
        args = args[2:]
    flip = int(opts["--flip"]) if opts["--flip"] else -1
    cut = int(opts["--cut-after"]) if opts["--cut-after"] else -1
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    count = [0, 0]

    def report():
        if opts["--count"]:
            with open(opts["--count"], "w") as f:
                f.write("%d %d\n" % (count[0], count[1]))

    def down():
        while True:
            b = p.stdout.read(1 << 16)
            if not b:
                break
            count[1] += len(b)
            os.write(1, b)

    t = threading.Thread(target=down)
    t.start()
    while True:
        b = os.read(0, 1 << 16)
        if not b:
            break
        if 0 <= flip - count[0] < len(b):
            i = flip - count[0]
            b = b[:i] + bytes([b[i] ^ 1]) + b[i + 1:]
        if cut >= 0 and count[0] + len(b) >= cut:
            b = b[:cut - count[0]]
            p.stdin.write(b)
            count[0] += len(b)
            p.send_signal(signal.SIGKILL)
            p.wait()
            report()
            os._exit(255)
        p.stdin.write(b)
        count[0] += len(b)
    p.stdin.close()
    t.join()
    rc = p.wait()
    report()
    sys.exit(rc)


main()
