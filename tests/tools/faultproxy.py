#!/usr/bin/env python3
"""faultproxy.py - a proxy in front of a registry (plain HTTP, loopback) that
misbehaves on purpose, for the registry client's tests (python3 stdlib only).

    faultproxy.py --port P --upstream PORT [FAULT...] [--log FILE]

Every request is forwarded to 127.0.0.1:UPSTREAM as it came (Host kept, so
the registry's Locations point back here) unless a fault matches it:

  --cut-blob DIGEST:N        the first GET of that blob: all headers, N bytes, then the
                             connection is closed (later GETs pass: a resume works)
  --truncate-blob DIGEST:N   every GET of it ends so after N bytes
  --corrupt-blob DIGEST      its bytes with one flipped (the same length)
  --endless-blob DIGEST      a chunked body of zeros that never ends
  --huge-manifest REF        manifests/REF: a 17 MiB body
  --redirect-loop DIGEST     GET of that blob: 307 to itself, forever
  --redirect-blob DIGEST     GET of that blob: 307 to a second listener on "localhost"
                             (another host) that serves it and logs whether it
                             received an Authorization header
  --require-basic USER:PASS  401 (Basic) unless the request carries these
  --drop-patch N             the Nth and N+1th PATCH are read whole and dropped (the
                             connection closed; twice, as libcurl itself sends a request
                             again once when a reused connection closes unanswered)
  --cut-patch N              the Nth PATCH: half its body goes upstream, then both close
  --foreign-location         upload Locations are rewritten to another host
  --fail N                   the first N requests are answered 503 (Retry-After: 0)
  --referrers                GET referrers/...: an index of three artifacts in two pages
                             (a stub: distribution 2.8 has no referrers API)
  --index-referrers          a referrers API over the registry: manifests PUT through the
                             proxy with a subject are remembered, GET referrers/DIGEST
                             lists them (filtered by ?artifactType=)

Each request is logged to --log as "METHOD PATH range=R auth=yes|no".
"""
import argparse
import base64
import http.client
import http.server
import hashlib
import json
import socket
import threading
import urllib.parse

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate"}


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.patches = 0
        self.requests = 0
        self.cut_done = set()
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.storage_port = 0
        self.referrers = {}  # (repo, subject digest) -> [descriptor]

    def note(self, line):
        if self.log:
            with self.lock:
                self.log.write(line + "\n")


def split_spec(spec):
    """'sha256:HEX:N' -> ('sha256:HEX', N); 'sha256:HEX' -> ('sha256:HEX', None)."""
    parts = spec.split(":")
    if len(parts) == 3:
        return parts[0] + ":" + parts[1], int(parts[2])
    return spec, None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, fmt, *a):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send_plain(self, code, headers, data=b"", length=None):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        return True

    def hang_up(self):
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def upstream(self, method, body, path=None, whole=False):
        c = http.client.HTTPConnection("127.0.0.1", self.state.args.upstream, timeout=60)
        c.putrequest(method, path or self.path, skip_host=True, skip_accept_encoding=True)
        drop = HOP | {"content-length"} | ({"range"} if whole else set())
        for k, v in self.headers.items():
            if k.lower() not in drop:
                c.putheader(k, v)
        c.putheader("Content-Length", str(len(body)))
        c.endheaders()
        if body:
            c.send(body)
        return c, c.getresponse()

    def forward(self, body, rewrite_location=False):
        c, r = self.upstream(self.command, body)
        data = r.read()
        headers = [(k, v) for k, v in r.getheaders()
                   if k.lower() not in HOP and k.lower() != "content-length"]
        if rewrite_location:
            headers = [(k, v.replace("127.0.0.1", "elsewhere.invalid") if k.lower() == "location"
                        else v) for k, v in headers]
        c.close()
        # a HEAD says the length of what a GET would send
        self.send_plain(r.status, headers, data, r.getheader("Content-Length")
                        if self.command == "HEAD" else None)

    def fetch(self, path=None):
        """The whole blob (a Range is ignored, as some servers do)."""
        c, r = self.upstream("GET", b"", path, whole=True)
        data = r.read()
        c.close()
        return r.status, data

    def authorized(self):
        want = self.state.args.require_basic
        if not want:
            return True
        got = self.headers.get("Authorization", "")
        return got == "Basic " + base64.b64encode(want.encode()).decode()

    def blob_digest(self):
        if "/blobs/sha256:" not in self.path:
            return None
        return self.path.split("/blobs/")[1].split("?")[0]

    def blob_fault(self, d):
        a = self.state.args
        for spec in a.cut_blob:
            dd, n = split_spec(spec)
            if dd == d and d not in self.state.cut_done and not self.headers.get("Range"):
                self.state.cut_done.add(d)
                return self.send_cut(n)
        for spec in a.truncate_blob:
            dd, n = split_spec(spec)
            if dd == d:
                return self.send_cut(n)
        if d in a.corrupt_blob:
            st, data = self.fetch()
            data = bytearray(data)
            if data:
                data[len(data) // 2] ^= 0xFF
            return self.send_plain(st, [("Content-Type", "application/octet-stream")],
                                   bytes(data))
        if d in a.endless_blob:
            return self.send_endless()
        if d in a.redirect_loop:
            return self.send_plain(307, [("Location", self.path)])
        if d in a.redirect_blob:
            repo = self.path.split("/v2/")[1].split("/blobs/")[0]
            url = "http://localhost:%d/storage/%s?repo=%s" % (self.state.storage_port, d, repo)
            return self.send_plain(307, [("Location", url)])
        return False

    def send_cut(self, n):
        st, data = self.fetch()
        self.send_response(st)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.wfile.write(data[:n])
        self.hang_up()
        return True

    def send_endless(self):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"\0" * 65536
        try:
            for _ in range(1 << 16):  # 4 GiB at most, should the client not stop
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass
        self.hang_up()
        return True

    def referrers(self):
        host = self.headers.get("Host")
        base = self.path.split("?")[0]
        def desc(i, at):
            return {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:" + ("%02d" % i) * 32, "size": 100 + i,
                    "artifactType": at}
        if "page=2" in self.path:
            doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [desc(3, "application/vnd.di3fs.delta.v1")]}
            links = []
        else:
            doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [desc(1, "application/vnd.di3fs.delta.v1"),
                                 desc(2, "application/vnd.example.sbom")]}
            links = [("Link", '<http://%s%s?page=2>; rel="next"' % (host, base))]
        data = json.dumps(doc).encode()
        self.send_plain(200, [("Content-Type", "application/vnd.oci.image.index.v1+json")] +
                        links, data)

    def remember_referrer(self, body):
        """--index-referrers: a manifest PUT with a subject."""
        try:
            doc = json.loads(body)
        except ValueError:
            return
        if not isinstance(doc, dict) or "subject" not in doc:
            return
        repo = self.path.split("/v2/")[1].split("/manifests/")[0]
        d = {"mediaType": doc.get("mediaType"),
             "digest": "sha256:" + hashlib.sha256(body).hexdigest(), "size": len(body)}
        for k in ("artifactType", "annotations"):
            if k in doc:
                d[k] = doc[k]
        with self.state.lock:
            lst = self.state.referrers.setdefault((repo, doc["subject"]["digest"]), [])
            if d["digest"] not in [x["digest"] for x in lst]:
                lst.append(d)

    def index_referrers(self):
        repo, rest = self.path.split("/v2/")[1].split("/referrers/")
        digest = rest.split("?")[0]
        at = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("artifactType")
        with self.state.lock:
            lst = list(self.state.referrers.get((repo, digest), []))
        if at:
            lst = [x for x in lst if x.get("artifactType") == at[0]]
        doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": lst}
        self.send_plain(200, [("Content-Type", "application/vnd.oci.image.index.v1+json")],
                        json.dumps(doc).encode())

    def patch_fault(self):
        a = self.state.args
        with self.state.lock:
            self.state.patches += 1
            n = self.state.patches
        if a.drop_patch and n in (a.drop_patch, a.drop_patch + 1):
            self.body()
            self.hang_up()
            return True
        if n == a.cut_patch:
            data = self.body()
            c = socket.create_connection(("127.0.0.1", a.upstream))
            head = "PATCH %s HTTP/1.1\r\n" % self.path
            for k, v in self.headers.items():
                head += "%s: %s\r\n" % (k, v)
            c.sendall(head.encode() + b"\r\n" + data[:len(data) // 2])
            c.close()
            self.hang_up()
            return True
        return False

    def handle_any(self):
        self.state.note("%s %s range=%s auth=%s" % (
            self.command, self.path, self.headers.get("Range", "-"),
            "yes" if self.headers.get("Authorization") else "no"))
        body = self.body() if self.command not in ("PATCH",) else None
        with self.state.lock:
            self.state.requests += 1
            failing = self.state.requests <= self.state.args.fail
        if failing:
            if body is None:
                self.body()
            return self.send_plain(503, [("Retry-After", "0")], b"busy")
        if not self.authorized():
            if body is None:
                self.body()
            return self.send_plain(401, [("WWW-Authenticate", 'Basic realm="faultproxy"')])
        a = self.state.args
        d = self.blob_digest() if self.command == "GET" else None
        if d and self.blob_fault(d):
            return
        if self.command == "GET" and "/manifests/" in self.path and \
                self.path.split("/manifests/")[1] in a.huge_manifest:
            return self.send_plain(200, [("Content-Type",
                                          "application/vnd.oci.image.manifest.v1+json")],
                                   b" " * (17 << 20))
        if self.command == "GET" and "/referrers/" in self.path and a.referrers:
            return self.referrers()
        if self.command == "GET" and "/referrers/" in self.path and a.index_referrers:
            return self.index_referrers()
        if self.command == "PUT" and "/manifests/" in self.path and a.index_referrers:
            self.remember_referrer(body)
        if self.command == "PATCH" and self.patch_fault():
            return
        if body is None:
            body = self.body()
        self.forward(body, rewrite_location=a.foreign_location and self.command == "POST")

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = handle_any


class Storage(Handler):
    """The "other host" a blob is redirected to."""

    def handle_any(self):
        self.state.note("storage %s %s auth=%s" % (
            self.command, self.path, "yes" if self.headers.get("Authorization") else "no"))
        d = self.path.split("/storage/")[1].split("?")[0]
        repo = self.path.split("repo=")[1]
        st, data = self.fetch("/v2/%s/blobs/%s" % (repo, d))
        self.send_plain(st, [("Content-Type", "application/octet-stream")], data)

    do_GET = do_HEAD = handle_any


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", type=int, required=True)
    ap.add_argument("--log")
    for f in ("cut-blob", "truncate-blob", "corrupt-blob", "endless-blob", "huge-manifest",
              "redirect-loop", "redirect-blob"):
        ap.add_argument("--" + f, action="append", default=[])
    ap.add_argument("--require-basic")
    ap.add_argument("--drop-patch", type=int, default=0)
    ap.add_argument("--cut-patch", type=int, default=0)
    ap.add_argument("--foreign-location", action="store_true")
    ap.add_argument("--referrers", action="store_true")
    ap.add_argument("--index-referrers", action="store_true")
    ap.add_argument("--fail", type=int, default=0)
    args = ap.parse_args()

    state = State(args)
    Handler.state = state
    Storage.state = state
    if args.redirect_blob:
        storage = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Storage)
        storage.handle_error = lambda request, address: None
        state.storage_port = storage.server_address[1]
        threading.Thread(target=storage.serve_forever, daemon=True).start()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.handle_error = lambda request, address: None  # clients hang up on purpose
    srv.serve_forever()


if __name__ == "__main__":
    main()
