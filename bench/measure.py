#!/usr/bin/env python3
"""bench/run's measurements (nothing here is asserted: figures are reported).

    measure.py react  --values FILE --audit LOG --policy NAME --to V --timeout S
        set one policy's metric to V in the exporter's values file, then wait for
        the operator's write to that Deployment's /scale in the API server's audit
        log; prints the seconds from the change to the write (or "timeout").
    measure.py report --results FILE --section NAME --data JSON
        compute the figures for the measured window from Prometheus and the audit
        log and write them into FILE, replacing the section NAME.
    measure.py engine --results FILE --criterion DIR
        turn criterion's estimates into decisions per second, into FILE.
    measure.py collect --data JSON --out FILE
        bench/compare: one autoscaler's figures for its measured window (CPU, RSS,
        API requests by identity, Prometheus queries/s, reactions) into FILE (JSON).
    measure.py compare --results FILE --n N RUN.json...
        bench/compare: the runs of one N side by side, with ratios to the first
        (Ballast), into FILE's section "compare n=N".
"""
import argparse
import json
import math
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import auditlog  # noqa: E402  (e2e/auditlog.py: the audit log reader)

WRITES = {"create", "update", "patch", "delete", "deletecollection"}
# The operator's identity in the audit log (others' writes to workloads are logged too).
SA = "system:serviceaccount:ballast-system:ballast"


def write_values(path, values):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(values, f)
    os.replace(tmp, path)


def react(args):
    with open(args.values) as f:
        values = json.load(f)
    offset = os.path.getsize(args.audit) if os.path.exists(args.audit) else 0
    users = set(args.users.split(",")) if args.users else {SA}
    values[args.policy] = args.to
    started = time.time()
    write_values(args.values, values)
    deadline = started + args.timeout
    while time.time() < deadline:
        for t, e in auditlog.events(args.audit, since=started - 0.01, offset=offset):
            if (e.get("user") or {}).get("username") not in users:
                continue
            ref = e.get("objectRef", {})
            if (e.get("verb") in ("update", "patch") and ref.get("resource") == "deployments"
                    and ref.get("subresource") == "scale" and ref.get("name") == args.policy):
                print(f"{t - started:.3f}")
                return 0
        time.sleep(0.2)
    print("timeout")
    return 1


def prom(url, path, **params):
    q = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}{path}?{q}", timeout=60) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus: {body}")
    return body["data"]


def quantile_from_buckets(buckets, q):
    """Prometheus' histogram_quantile over [(le, count)] sorted by le."""
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return float("nan")
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return prev_le


def pct(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def fmt(x, digits=2):
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def replace_section(path, name, text):
    head = ("# Benchmark results\n\n"
            "Written by `make bench` (`bench/run`) and `make bench-compare` (`bench/compare`),\n"
            "one section per run size; a run replaces its own section. Never edited by hand.\n"
            "Targets are reported, not asserted.\n")
    try:
        with open(path) as f:
            content = f.read()
    except FileNotFoundError:
        content = head
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(content):
        content = pattern.sub(lambda _: block, content)
    else:
        content = content.rstrip() + "\n\n" + block
    with open(path, "w") as f:
        f.write(content)


def report(args):
    d = json.loads(args.data)
    t0, t1, n, k, interval = d["t0"], d["t1"], d["n"], d["k"], d["interval"]
    window = max(1, int(round(t1 - t0)))
    url = d["prometheus"]

    # Tick lag: the operator's histogram over the window.
    res = prom(url, "/api/v1/query", query=f"sum by (le) (increase(ballast_tick_lag_seconds_bucket[{window}s]))", time=t1)["result"]
    buckets = sorted((float(r["metric"]["le"]), float(r["value"][1])) for r in res)
    ticks = buckets[-1][1] if buckets else 0
    lag50 = quantile_from_buckets(buckets, 0.5)
    lag99 = quantile_from_buckets(buckets, 0.99)
    lag_max = next((le for le, c in buckets if c >= ticks), float("nan")) if ticks else float("nan")

    # Queries per second at the source (Prometheus' own counter, scraped every 1 s).
    qps = qps_window(url, t0, t1)
    qps_mean = sum(qps) / len(qps) if qps else float("nan")
    qps_max = max(qps) if qps else float("nan")

    # The operator's API requests in the window, from the audit log.
    counts = {}
    for t, e in auditlog.events(d["audit"], since=t0):
        if t > t1 or (e.get("user") or {}).get("username") != SA:
            continue
        ref = e.get("objectRef", {})
        res_name = ref.get("resource", e.get("requestURI", "?"))
        if ref.get("subresource"):
            res_name += "/" + ref["subresource"]
        key = (e.get("verb"), res_name)
        counts[key] = counts.get(key, 0) + 1
    intervals = (t1 - t0) / interval
    # Lease renewals are the leader election's own, whatever the load.
    writes = sum(c for (verb, res_name), c in counts.items() if verb in WRITES and res_name != "leases")
    renewals = sum(c for (verb, res_name), c in counts.items() if verb in WRITES and res_name == "leases")

    cpu = (d["cpu1"] - d["cpu0"]) / (t1 - t0)
    react = [float(x) for x in d["reactions"] if x != "timeout"]
    timeouts = sum(1 for x in d["reactions"] if x == "timeout")
    jitter = d.get("jitter", 0.1)
    reaction_target = interval * (1 + jitter) + 1

    lines = [
        f"## N = {n:,} policies",
        "",
        f"Run {datetime.utcfromtimestamp(t1).strftime('%Y-%m-%d %H:%M UTC')}, "
        f"`{d['command']}`.",
        f"Machine: {d['machine']}. Versions: {d['versions']}.",
        f"Measured over K = {k} poll intervals of {interval} s ({t1 - t0:.0f} s) after warm-up; "
        f"every policy: one metric `bench_load{{policy=...}}` from a {n:,}-series exporter, "
        f"pollInterval {interval}s, jitter {jitter}, a Deployment at 0 replicas (scale to zero).",
        "",
        "| figure | value | target at N = 10,000 |",
        "| --- | --- | --- |",
        f"| ticks evaluated in the window | {ticks:,.0f} ({ticks / max(intervals, 1e-9) / n:.2f} per policy per interval) | 1 per policy per interval |",
        f"| tick lag p50 / p99 / max | {fmt(lag50, 3)} s / {fmt(lag99, 3)} s / ≤ {fmt(lag_max, 3)} s | p99 < 1 s |",
        f"| operator CPU | {cpu:.3f} cores | < 0.25 |",
        f"| CPU per evaluation (operator CPU time / ticks) | {cpu * (t1 - t0) / max(ticks, 1) * 1e6:.0f} µs | ≤ 195 µs (half of 390 µs at b1aebaa) |",
        f"| operator peak RSS | {d['rss_kib'] / 1024:.1f} MiB | < 200 MiB |",
        f"| writes per interval (steady state), Lease renewals apart | {writes / max(intervals, 1e-9):.2f} ({writes} in the window; {renewals} Lease renewals) | 0 |",
        f"| Prometheus queries/s: mean / max (per second) | {fmt(qps_mean)} / {fmt(qps_max)} (max/mean {fmt(qps_max / qps_mean if qps_mean else float('nan'))}) | max ≤ 1.5 × mean |",
        f"| reaction (metric step → /scale write), {len(react)} steps | p50 {fmt(pct(react, 0.5))} s, p99 {fmt(pct(react, 0.99))} s, max {fmt(max(react) if react else float('nan'))} s{f', {timeouts} timed out' if timeouts else ''} | p99 ≤ {reaction_target:.1f} s |",
        "",
        "API requests by the operator in the window (audit log, its ServiceAccount):",
        "",
        "| verb | resource | requests | per interval |",
        "| --- | --- | --- | --- |",
    ]
    for (verb, res_name), c in sorted(counts.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {verb} | {res_name} | {c} | {c / max(intervals, 1e-9):.1f} |")
    if not counts:
        lines.append("| (none) | | 0 | 0 |")
    replace_section(args.results, f"n={n}", "\n".join(lines))
    print("\n".join(lines))
    return 0


def engine(args):
    rows = []
    for name in ("1_metrics", "4_metrics", "16_metrics"):
        path = os.path.join(args.criterion, "decide", name, "new", "estimates.json")
        try:
            with open(path) as f:
                est = json.load(f)
        except FileNotFoundError:
            print(f"engine: no estimates at {path}", file=sys.stderr)
            return 1
        ns = est["mean"]["point_estimate"]
        low = est["mean"]["confidence_interval"]["lower_bound"]
        high = est["mean"]["confidence_interval"]["upper_bound"]
        rows.append(f"| {name.split('_')[0]} | {ns:,.0f} ns ({low:,.0f}–{high:,.0f}) | {1e9 / ns:,.0f} |")
    text = "\n".join([
        "## Engine (criterion, one core)",
        "",
        f"Run {datetime.utcnow().strftime('%Y-%m-%d %H:%M UTC')}, `cargo bench --bench engine`: "
        "`engine::decide` with smoothing, both windows, Pods and Percent policies and an hour of history. "
        f"Machine: {args.machine}.",
        "",
        "| metrics | time per decision (95% CI) | decisions/s |",
        "| --- | --- | --- |",
        *rows,
        "",
        "Target: ≥ 1,000,000 decisions/s for one metric.",
    ])
    replace_section(args.results, "engine", text)
    print(text)
    return 0


def qps_window(url, t0, t1):
    """Prometheus instant queries per second at the source, one figure per second."""
    rng = prom(url, "/api/v1/query_range",
               query='sum(irate(prometheus_http_requests_total{handler="/api/v1/query"}[3s]))',
               start=t0, end=t1, step=1)["result"]
    return [float(v) for _, v in rng[0]["values"]] if rng else []


def collect(args):
    """One autoscaler's run: everything measured from outside it, the same way
    whichever autoscaler it is."""
    d = json.loads(args.data)
    t0, t1, interval = d["t0"], d["t1"], d["interval"]
    users = set(d["users"])
    requests = {}
    for t, e in auditlog.events(d["audit"], since=t0):
        user = (e.get("user") or {}).get("username")
        if t > t1 or user not in users:
            continue
        ref = e.get("objectRef", {})
        res_name = ref.get("resource", e.get("requestURI", "?"))
        if ref.get("subresource"):
            res_name += "/" + ref["subresource"]
        if ref.get("apiGroup") == "external.metrics.k8s.io":
            res_name = "external.metrics.k8s.io (via the aggregator)"
        key = f"{user}\t{e.get('verb')}\t{res_name}"
        requests[key] = requests.get(key, 0) + 1
    qps = qps_window(d["prometheus"], t0, t1)
    react = [float(x) for x in d["reactions"] if x != "timeout"]
    out = {
        "label": d["label"], "n": d["n"], "window": t1 - t0, "interval": interval,
        "cpu": {p: (c1 - c0) / (t1 - t0) for p, (c0, c1) in d["cpu"].items()},
        "rss_mib": {p: kib / 1024 for p, kib in d["rss_kib"].items()},
        "autoscaler": d["autoscaler"],
        "requests": requests,
        "qps_mean": sum(qps) / len(qps) if qps else float("nan"),
        "qps_max": max(qps) if qps else float("nan"),
        "ready_s": d["ready_s"], "ready_count": d["ready_count"],
        "reactions": react, "timeouts": sum(1 for x in d["reactions"] if x == "timeout"),
        "settings": d["settings"], "versions": d["versions"], "machine": d["machine"],
        "load": d.get("load", float("nan")),
        "time": t1,
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    return 0


def compare(args):
    runs = []
    for path in args.runs:
        with open(path) as f:
            runs.append(json.load(f))
    base = runs[0]
    n = args.n
    # The HPA controller's share of kube-controller-manager: its CPU in this run
    # less its CPU in the run without HPAs (Ballast's, same N Deployments).
    kcm_base = base["cpu"].get("kube-controller-manager", float("nan"))

    def autoscaling_cpu(r):
        own = sum(r["cpu"][p] for p in r["autoscaler"])
        hpa = r["cpu"].get("kube-controller-manager", kcm_base) - kcm_base if r is not base else 0.0
        return own + max(hpa, 0.0), hpa

    def ratio(x, b):
        if isinstance(x, float) and math.isnan(x) or isinstance(b, float) and math.isnan(b) or not b:
            return "n/a"
        return f"{x / b:.1f}×"

    def row(name, fn, digits=3, unit="", ratios=True):
        cells = []
        bv = fn(base)
        for r in runs:
            v = fn(r)
            cell = f"{fmt(v, digits)}{unit}" if isinstance(v, float) else str(v)
            if ratios and r is not base and isinstance(v, float):
                cell += f" ({ratio(v, bv)})"
            cells.append(cell)
        return f"| {name} | " + " | ".join(cells) + " |"

    # Access reviews are created, not stored: the metrics server's delegated
    # authorization of each aggregated request, not a write to cluster state.
    reviews = {"subjectaccessreviews", "tokenreviews"}

    def api_total(r, writes_only=False):
        return sum(c for k, c in r["requests"].items()
                   if not writes_only or (k.split("\t")[1] in WRITES and k.split("\t")[2] not in reviews)) / r["window"]

    def react_cell(r):
        x = r["reactions"]
        if not x:
            return f"none ({r['timeouts']} timed out)"
        t = f", {r['timeouts']} timed out" if r["timeouts"] else ""
        return f"p50 {fmt(pct(x, 0.5))} s, max {fmt(max(x))} s{t}"

    def ready_cell(r):
        if r["ready_count"] < n:
            return f"{r['ready_count']:,}/{n:,} after {r['ready_s']:.0f} s"
        return f"{r['ready_s']:.0f} s"

    header = "| figure | " + " | ".join(r["label"] for r in runs) + " |"
    lines = [
        f"## N = {n:,}: Ballast and KEDA side by side",
        "",
        f"Run {datetime.utcfromtimestamp(max(r['time'] for r in runs)).strftime('%Y-%m-%d %H:%M UTC')}, "
        f"`{args.command}`: one autoscaler at a time, each on a fresh cluster.",
        f"Machine: {base['machine']}. Versions: {base['versions']}.",
        f"Every run: {n:,} Deployments at 1 replica on KWOK nodes, one metric `bench_load{{policy=...}}` each "
        f"from a {n:,}-series exporter scraped every second, target AverageValue 1, min 1, max 2, "
        f"no scale-down window, poll interval {base['interval']} s; "
        f"measured over {base['window']:.0f} s after every target was evaluated and one more interval. "
        "In brackets: the figure over Ballast's.",
        "",
        header,
        "| --- |" + " --- |" * len(runs),
        row("CPU doing the autoscaling (cores)", lambda r: autoscaling_cpu(r)[0]),
    ]
    procs = []
    for r in runs:
        for p in r["autoscaler"]:
            if p not in procs:
                procs.append(p)
    for p in procs:
        lines.append(row(f"· {p} (cores)", lambda r, p=p: r["cpu"][p] if p in r["cpu"] and p in r["autoscaler"] else "–", ratios=False))
    lines += [
        row("· HPA controller: kube-controller-manager CPU less the run without HPAs (cores)",
            lambda r: autoscaling_cpu(r)[1] if r is not base else "–", ratios=False),
        row("CPU per object per poll interval (µs)", lambda r: autoscaling_cpu(r)[0] * r["interval"] / n * 1e6, 0),
        row("kube-apiserver CPU, whole (cores)", lambda r: r["cpu"].get("kube-apiserver", float("nan"))),
        row("kube-controller-manager CPU, whole (cores)", lambda r: r["cpu"].get("kube-controller-manager", float("nan"))),
        row("peak RSS of the autoscaling processes, summed (MiB)",
            lambda r: sum(r["rss_mib"][p] for p in r["autoscaler"]), 1),
        row("API requests/s by the autoscaling identities", lambda r: api_total(r), 2),
        row("· of which writes/s (access reviews apart)", lambda r: api_total(r, True), 2),
        row("Prometheus queries/s, mean", lambda r: r["qps_mean"], 2),
        row("Prometheus queries/s, max in one second", lambda r: r["qps_max"], 2),
        row(f"time from creating the {n:,} objects until every target is evaluated", ready_cell, ratios=False),
        row("reaction: metric step → /scale write", react_cell, ratios=False),
        *([row("machine load average (1 min) at the end of the window", lambda r: r.get("load", float("nan")), 2, ratios=False)]
          if any(not math.isnan(r.get("load", float("nan"))) for r in runs) else []),
        "",
        *([args.note, ""] if args.note else []),
        "Settings: " + "; ".join(f"**{r['label']}**: {r['settings']}" for r in runs) + ".",
        "",
        "API requests in the window by identity, verb and resource (audit log):",
        "",
        "| run | identity | verb | resource | per second |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        for key, c in sorted(r["requests"].items(), key=lambda kv: -kv[1]):
            user, verb, res_name = key.split("\t")
            lines.append(f"| {r['label']} | {user} | {verb} | {res_name} | {c / r['window']:.2f} |")
    replace_section(args.results, f"compare n={n}", "\n".join(lines))
    print("\n".join(lines))
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("react")
    r.add_argument("--values", required=True)
    r.add_argument("--audit", required=True)
    r.add_argument("--policy", required=True)
    r.add_argument("--to", type=float, required=True)
    r.add_argument("--timeout", type=float, required=True)
    r.add_argument("--users", help="comma-separated usernames whose /scale write counts (default: Ballast's ServiceAccount)")
    c = sub.add_parser("collect")
    c.add_argument("--data", required=True)
    c.add_argument("--out", required=True)
    m = sub.add_parser("compare")
    m.add_argument("--results", required=True)
    m.add_argument("--n", type=int, required=True)
    m.add_argument("--command", required=True)
    m.add_argument("--note", help="a sentence on the conditions of the run, printed under the table")
    m.add_argument("runs", nargs="+")
    p = sub.add_parser("report")
    p.add_argument("--results", required=True)
    p.add_argument("--data", required=True)
    e = sub.add_parser("engine")
    e.add_argument("--results", required=True)
    e.add_argument("--criterion", required=True)
    e.add_argument("--machine", required=True)
    args = ap.parse_args()
    return {"react": react, "report": report, "engine": engine, "collect": collect, "compare": compare}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
