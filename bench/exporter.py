#!/usr/bin/env python3
"""A small Prometheus exporter for bench/run: one gauge series per policy,

    bench_load{policy="p-00042"} 0

for N policies, all 0 unless the values file (JSON: {"p-00042": 3}) says
otherwise; the file is re-read when it changes, so bench/run can step one
policy's metric and time the operator's reaction. Binds to 127.0.0.1 only.

    exporter.py --port PORT --policies N --values FILE
"""
import argparse
import http.server
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--policies", type=int, required=True)
    ap.add_argument("--values", required=True)
    args = ap.parse_args()
    if not 1 <= args.policies <= 100_000:
        sys.exit("--policies must be 1..100000")
    state = {"mtime": None, "values": {}}
    names = [f"p-{i:05d}" for i in range(args.policies)]

    def values():
        try:
            mtime = os.stat(args.values).st_mtime_ns
        except FileNotFoundError:
            return {}
        if mtime != state["mtime"]:
            try:
                with open(args.values) as f:
                    state["values"] = {k: float(v) for k, v in json.load(f).items()}
                state["mtime"] = mtime
            except (ValueError, OSError) as e:
                print(f"exporter: keeping the old values, {args.values}: {e}", file=sys.stderr)
        return state["values"]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            v = values()
            lines = ["# TYPE bench_load gauge"]
            lines += [f'bench_load{{policy="{n}"}} {v.get(n, 0.0)}' for n in names]
            body = ("\n".join(lines) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
