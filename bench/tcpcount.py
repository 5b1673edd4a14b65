#!/usr/bin/env python3
"""tcpcount.py - a TCP relay that counts the bytes on the wire, for
bench-copy.sh (python3 stdlib only).

    tcpcount.py --port P --upstream PORT --log FILE

Every connection to 127.0.0.1:P is relayed to 127.0.0.1:UPSTREAM as it is
(HTTP untouched: Host and Location stay the relay's). When a connection
closes, "UP DOWN" (bytes client -> server, server -> client) is appended
to FILE; the bench sums the lines a run left and then empties the file.
"""
import argparse
import socket
import threading

BUF = 1 << 20


def pump(src, dst, counts, i):
    buf = bytearray(BUF)
    view = memoryview(buf)
    try:
        while True:
            n = src.recv_into(buf)
            if n == 0:
                break
            dst.sendall(view[:n])
            counts[i] += n
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve(conn, upstream, log, lock):
    try:
        up = socket.create_connection(("127.0.0.1", upstream))
    except OSError:
        conn.close()
        return
    counts = [0, 0]
    t = threading.Thread(target=pump, args=(up, conn, counts, 1), daemon=True)
    t.start()
    pump(conn, up, counts, 0)
    t.join()
    conn.close()
    up.close()
    with lock, open(log, "a") as f:
        f.write("%d %d\n" % (counts[0], counts[1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", type=int, required=True)
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    lock = threading.Lock()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", a.port))
    s.listen(64)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn, a.upstream, a.log, lock), daemon=True).start()


if __name__ == "__main__":
    main()
