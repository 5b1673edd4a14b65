#!/usr/bin/env python3
"""tokenserver.py - a token server of distribution's token auth, for the
registry client's tests: RS256 JWTs that docker-registry verifies through
its auth.token config (rootcertbundle = --cert). Needs python3-jwt.

    tokenserver.py --port P --key KEY.pem --cert CERT.pem --issuer I --service S
                   --user USER:PASS [--user ...] [--ttl SECONDS] [--log FILE]

GET /token?service=S&scope=repository:NAME:ACTIONS&scope=... with HTTP basic
credentials: a known user gets every action asked for; anonymous callers get
pull on repositories under public/ only; wrong credentials get 401. Each
request is logged as "user=NAME scope=... scope=..." (never a password).
"""
import argparse
import base64
import http.server
import json
import secrets
import ssl
import time
import urllib.parse

import jwt


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    args = None
    key = None
    x5c = None
    log = None

    def log_message(self, fmt, *a):
        pass

    def reply(self, code, doc, extra=()):
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def user(self):
        """(name, ok): name None for anonymous; ok False for wrong credentials."""
        h = self.headers.get("Authorization", "")
        if not h.startswith("Basic "):
            return None, True
        try:
            name, _, pw = base64.b64decode(h[6:]).decode().partition(":")
        except ValueError:
            return None, False
        return name, self.args.users.get(name) == pw

    def access(self, name, scopes):
        out = []
        for s in scopes:
            parts = s.split(":")
            if len(parts) != 3 or parts[0] != "repository":
                continue
            want = parts[2].split(",")
            if name is None:
                want = [a for a in want if a == "pull" and parts[1].startswith("public/")]
            if want:
                out.append({"type": "repository", "name": parts[1], "actions": want})
        return out

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        scopes = q.get("scope", [])
        name, ok = self.user()
        if self.log:
            self.log.write("user=%s service=%s %s\n" % (
                name or "-", ",".join(q.get("service", [])),
                " ".join("scope=" + s for s in scopes)))
            self.log.flush()
        if url.path != "/token":
            return self.reply(404, {"error": "not found"})
        if not ok:
            return self.reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                                "message": "wrong credentials"}]},
                              [("WWW-Authenticate", 'Basic realm="token"')])
        now = int(time.time())
        claims = {"iss": self.args.issuer, "sub": name or "", "aud": self.args.service,
                  "iat": now, "nbf": now - 5, "exp": now + self.args.ttl,
                  "jti": secrets.token_hex(8), "access": self.access(name, scopes)}
        tok = jwt.encode(claims, self.key, algorithm="RS256", headers={"x5c": [self.x5c]})
        self.reply(200, {"token": tok, "access_token": tok, "expires_in": self.args.ttl})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--user", action="append", default=[])
    ap.add_argument("--ttl", type=int, default=300)
    ap.add_argument("--log")
    args = ap.parse_args()
    args.users = dict(u.split(":", 1) for u in args.user)

    Handler.args = args
    with open(args.key, "rb") as f:
        Handler.key = f.read()
    with open(args.cert) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    Handler.x5c = base64.b64encode(der).decode()
    Handler.log = open(args.log, "a") if args.log else None
    http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
