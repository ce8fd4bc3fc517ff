#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of a real Prometheus, for e2e/chaos: the
one place a fake server is right, because a real Prometheus will not misbehave on
demand. Binds to 127.0.0.1 only.

    faultproxy.py --port PORT --upstream http://127.0.0.1:9090
    faultproxy.py --port PORT --upstream URL --tls-cert C --tls-key K \
        [--client-ca CA] [--require-header NAME=VALUE]

With --tls-cert it serves HTTPS; with --client-ca it requires a client
certificate signed by that CA (mutual TLS: a handshake without one fails); with
--require-header it answers 401 to a request without that header and value (a
gateway's API key), saying which header, never the value it expected. With
--set-header NAME=VALUE it adds that header to what it forwards (a gateway that
sets the tenant: Debian's Prometheus 2.42 does not send remote_write `headers`).

Every request is forwarded to the upstream, unless a fault is set:

    curl -X PUT 'http://127.0.0.1:PORT/-/fault?mode=MODE'
    curl 'http://127.0.0.1:PORT/-/count?since=UNIX_SECONDS'   -> {"requests": N}

MODE is one of:
    pass          forward (the default)
    delay:S       wait S seconds, then forward
    hang          hold the connection without an answer (up to 120 s, or until the
                  mode changes)
    status:N      answer HTTP N with a Prometheus error body
    reset         close the connection without an answer
    truncated     the upstream's answer cut in half
    huge          a 50 MiB JSON body (a vector with one enormous label)
    nan / inf     a vector with one sample of NaN / +Inf
    empty         a vector with no series
    series        the upstream's vector plus a second series
    string        a result of type string
    matrix        a result of type matrix
    html          200 with Content-Type text/html and a login page
"""
import argparse
import http.server
import json
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

MODES = {"pass", "hang", "reset", "truncated", "huge", "nan", "inf", "empty", "series", "string", "matrix", "html"}


def valid_mode(m):
    if m in MODES:
        return True
    kind, _, arg = m.partition(":")
    try:
        return (kind == "delay" and float(arg) >= 0) or (kind == "status" and 100 <= int(arg) <= 599)
    except ValueError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca")
    ap.add_argument("--require-header", action="append", default=[])
    ap.add_argument("--set-header", action="append", default=[])
    args = ap.parse_args()

    def pairs(flag, values):
        out = []
        for h in values:
            name, sep, value = h.partition("=")
            if not sep or not name:
                ap.error(f"{flag} {name!r}: expected NAME=VALUE")
            out.append((name, value))
        return out

    required = pairs("--require-header", args.require_header)
    added = pairs("--set-header", args.set_header)
    state = {"mode": "pass", "changed": time.time()}
    hits = []
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, code, body, ctype="application/json"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self):
            u = urlsplit(self.path)
            if u.path != "/-/fault":
                return self.reply(404, b'{"error":"PUT /-/fault?mode=..."}')
            mode = parse_qs(u.query).get("mode", [""])[0]
            if not valid_mode(mode):
                return self.reply(400, json.dumps({"error": f"unknown mode {mode!r}"}).encode())
            with lock:
                state["mode"], state["changed"] = mode, time.time()
            self.reply(200, json.dumps({"mode": mode}).encode())

        def do_GET(self):
            self.handle_any()

        def do_POST(self):
            self.handle_any()

        def upstream(self, body):
            req = urllib.request.Request(args.upstream.rstrip("/") + self.path, data=body, method=self.command)
            for h in ("Content-Type", "Content-Encoding", "X-Prometheus-Remote-Write-Version"):
                if self.headers.get(h):
                    req.add_header(h, self.headers[h])
            for name, value in added:
                req.add_header(name, value)
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status, r.read(), r.headers.get("Content-Type", "application/json")
            except urllib.error.HTTPError as e:
                return e.code, e.read(), e.headers.get("Content-Type", "application/json")

        def handle_any(self):
            u = urlsplit(self.path)
            if u.path == "/-/count":
                since = float(parse_qs(u.query).get("since", ["0"])[0])
                with lock:
                    n = sum(1 for t in hits if t >= since)
                return self.reply(200, json.dumps({"requests": n, "mode": state["mode"]}).encode())
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else None
            for name, value in required:
                if self.headers.get(name) != value:
                    return self.reply(401, f"missing or wrong {name} header\n".encode(), "text/plain")
            with lock:
                hits.append(time.time())
                mode, changed = state["mode"], state["changed"]
            now = time.time()
            if mode == "hang":
                while time.time() - now < 120 and state["changed"] == changed:
                    time.sleep(0.2)
                self.close_connection = True
                return
            if mode == "reset":
                self.close_connection = True
                return
            if mode.startswith("status:"):
                code = int(mode.split(":")[1])
                return self.reply(code, json.dumps({"status": "error", "errorType": "internal", "error": f"injected {code}"}).encode())
            if mode == "html":
                return self.reply(200, b"<html><body><form>Sign in</form></body></html>", "text/html")
            if mode == "huge":
                pad = b"x" * (50 * 1024 * 1024)
                body = b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pad":"' + pad + b'"},"value":[%d,"1"]}]}}' % int(now)
                return self.reply(200, body)
            fixed = {
                "nan": {"resultType": "vector", "result": [{"metric": {}, "value": [now, "NaN"]}]},
                "inf": {"resultType": "vector", "result": [{"metric": {}, "value": [now, "+Inf"]}]},
                "empty": {"resultType": "vector", "result": []},
                "string": {"resultType": "string", "result": [now, "6"]},
                "matrix": {"resultType": "matrix", "result": [{"metric": {}, "values": [[now - 1, "6"], [now, "6"]]}]},
            }
            if mode in fixed:
                return self.reply(200, json.dumps({"status": "success", "data": fixed[mode]}).encode())
            if mode.startswith("delay:"):
                time.sleep(float(mode.split(":")[1]))
            try:
                code, data, ctype = self.upstream(body)
            except (OSError, urllib.error.URLError) as e:
                return self.reply(502, json.dumps({"status": "error", "error": f"upstream: {e}"}).encode())
            if mode == "truncated":
                data = data[: len(data) // 2]
            elif mode == "series" and code == 200:
                try:
                    doc = json.loads(data)
                    result = doc["data"]["result"]
                    if result:
                        extra = dict(result[0])
                        extra["metric"] = {**extra.get("metric", {}), "injected": "second"}
                        result.append(extra)
                    data = json.dumps(doc).encode()
                except (ValueError, KeyError, TypeError):
                    pass
            self.reply(code, data, ctype)

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

    srv = Server(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.client_ca)
        # A failed handshake raises ssl.SSLError (an OSError) in accept, which
        # socketserver drops: that connection ends, the server goes on.
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
