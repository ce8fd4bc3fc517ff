#!/usr/bin/env python3
"""The invariant checker of e2e/chaos: what an autoscaler must never do, checked
over the whole of every chaos scenario.

    invariants.py watch --kubectl K --namespace NS --trace FILE
        Every second, the namespace's Deployments, CustomScalingPolicies and Leases
        (replicas, bounds, paused/dryRun, conditions, lease holder) appended to
        FILE as JSON lines, until SIGTERM. A failed read (API server down) is
        recorded as such and the watch goes on.

    invariants.py check --trace FILE --audit AUDIT_LOG --namespace NS
                        --since T0 --until T1 [--faults FILE] [--logs GLOB...]
                        [--lease NAME] [--lease-duration S] --out FILE
        Reads every replica write of Ballast's ServiceAccount from the API server's
        audit log (level Request: the value written, when, and by which replica,
        from the user agent `ballast/VERSION (identity)`) and checks, for the
        window [T0, T1]:

        bounds      every value written is within [minReplicas, maxReplicas] of the
                    target's policy; and a target of an active policy is not seen
                    outside its bounds for longer than two poll intervals + 10 s
        paused      no write to the target of a paused or dryRun policy
        missing     no scale-down while the policy's data is missing: while its
                    MetricsAvailable condition is False, or inside a fault window
                    the scenario declared (--faults: {"start", "end", "policies"})
        one-writer  every write comes from the replica holding the Lease (the last
                    successful Lease write before it is that replica's, and it is
                    younger than the lease duration)
        rate        no write beyond the policy's scale-up/scale-down rate rules
                    (HPA's semantics: changes inside each rule's period count)
        stale       no write that repeats Ballast's previous write to the same
                    target with nobody else's write to it in between: that write
                    changed nothing, so it was decided from a replica count its own
                    previous write had already replaced (a stale cache)
        panic       no "panicked" in the operators' logs

        Writes {"violations": [...], "writes": N, ...} to --out and prints one
        line per violation; exits 1 when there are any.

    invariants.py first-down --audit AUDIT_LOG --namespace NS --target NAME --after T
        Prints the audit time of the first scale-down write to the Deployment after T.
"""
import argparse
import glob
import json
import math
import re
import signal
import subprocess
import sys
import time

import auditlog

SA = "system:serviceaccount:ballast-system:ballast"
AGENT = re.compile(r"^ballast/\S+ \((?P<who>[^)]*)\)")


def duration_seconds(s):
    """'5s', '1m30s', '500ms' -> seconds."""
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h)", s or ""):
        if m.start() != pos:
            raise ValueError(f"not a duration: {s!r}")
        pos = m.end()
        total += float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if pos != len(s or "") or pos == 0:
        raise ValueError(f"not a duration: {s!r}")
    return total


# --- watch ---------------------------------------------------------------------------


def snapshot(items):
    deployments, policies, leases = {}, {}, {}
    for o in items:
        kind, name = o.get("kind"), o["metadata"]["name"]
        if kind == "Deployment":
            deployments[name] = o.get("spec", {}).get("replicas")
        elif kind == "CustomScalingPolicy":
            spec, status = o.get("spec", {}), o.get("status") or {}
            conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
            policies[name] = {
                "target": (spec.get("targetRef") or {}).get("name"),
                "kind": (spec.get("targetRef") or {}).get("kind"),
                "min": spec.get("minReplicas", 1),
                "max": spec.get("maxReplicas"),
                "paused": bool(spec.get("paused")),
                "dryRun": bool(spec.get("dryRun")),
                "poll": spec.get("pollInterval", "15s"),
                "behavior": spec.get("behavior"),
                "metricsAvailable": conds.get("MetricsAvailable"),
                "generation": o["metadata"].get("generation"),
            }
        elif kind == "Lease":
            leases[name] = (o.get("spec") or {}).get("holderIdentity")
    return {"deployments": deployments, "policies": policies, "leases": leases}


def watch(args):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    with open(args.trace, "a") as out:
        while not stop:
            t = time.time()
            try:
                r = subprocess.run(
                    [args.kubectl, "-n", args.namespace, "get",
                     "deployments.apps,customscalingpolicies.autoscaling.ballast.dev,leases.coordination.k8s.io",
                     "-o", "json", "--request-timeout=3s"],
                    capture_output=True, text=True, timeout=10)
                if r.returncode != 0:
                    rec = {"t": t, "error": r.stderr.strip()[-300:]}
                else:
                    rec = {"t": t, **snapshot(json.loads(r.stdout).get("items", []))}
            except (subprocess.TimeoutExpired, ValueError) as e:
                rec = {"t": t, "error": str(e)}
            out.write(json.dumps(rec) + "\n")
            out.flush()
            time.sleep(max(0.0, args.interval - (time.time() - t)))


# --- check ---------------------------------------------------------------------------


def audit_records(path, namespace):
    """Ballast's successful replica writes and Lease writes in the namespace, and
    everybody else's successful writes to workloads (other_writes: time, resource,
    name)."""
    writes, lease_writes, other_writes = [], [], []
    for t, e in auditlog.events(path):
        ref = e.get("objectRef") or {}
        code = (e.get("responseStatus") or {}).get("code", 0)
        if ref.get("namespace") != namespace or not 200 <= code < 300:
            continue
        if (e.get("user") or {}).get("username") != SA:
            if (e.get("verb") in ("create", "update", "patch", "delete")
                    and ref.get("subresource") in (None, "scale")):
                other_writes.append({"t": t, "resource": ref.get("resource"), "target": ref.get("name")})
            continue
        if e.get("verb") not in ("create", "update", "patch"):
            continue
        m = AGENT.match(e.get("userAgent") or "")
        who = m.group("who") if m else (e.get("userAgent") or "?")
        if ref.get("resource") == "leases":
            lease_writes.append({"t": t, "who": who, "name": ref.get("name")})
        elif ref.get("subresource") == "scale":
            value = ((e.get("requestObject") or {}).get("spec") or {}).get("replicas")
            writes.append({"t": t, "who": who, "resource": ref.get("resource"),
                           "target": ref.get("name"), "value": value})
    writes.sort(key=lambda w: w["t"])
    lease_writes.sort(key=lambda w: w["t"])
    other_writes.sort(key=lambda w: w["t"])
    return writes, lease_writes, other_writes


def load_trace(path):
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return [r for r in out if "error" not in r]


def state_before(trace, t):
    """The last successful snapshot taken at or before t (None before the first)."""
    best = None
    for r in trace:
        if r["t"] <= t:
            best = r
        else:
            break
    return best


def policy_of(snap, target):
    if not snap:
        return None, None
    for name, p in snap["policies"].items():
        if p.get("kind") == "Deployment" and p.get("target") == target:
            return name, p
    return None, None


DEFAULT_UP = {"select": "Max", "policies": [("Percent", 100, 15), ("Pods", 4, 15)]}
DEFAULT_DOWN = {"select": "Max", "policies": [("Percent", 100, 15)]}


def rules(behavior, direction):
    r = (behavior or {}).get("scaleUp" if direction == "up" else "scaleDown") or {}
    default = DEFAULT_UP if direction == "up" else DEFAULT_DOWN
    pols = r.get("policies")
    return {
        "select": r.get("selectPolicy", "Max"),
        "policies": default["policies"] if pols is None
        else [(p["type"], int(p["value"]), int(p["periodSeconds"])) for p in pols],
    }


def rate_limit(rs, direction, current, events, t, slack):
    """The furthest the rules allow from `current` at t; events are earlier
    (t, from, to) writes to the same target. `slack` seconds are taken off each
    period: audit times are the API server's, not the operator's clock."""
    if rs["select"] == "Disabled":
        return current
    best = None
    for kind, value, period in rs["policies"]:
        inside = [e for e in events if t - period + slack < e[0] < t]
        added = sum(max(0, b - a) for _, a, b in inside)
        removed = sum(max(0, a - b) for _, a, b in inside)
        start = current - added + removed
        if direction == "up":
            lim = start + value if kind == "Pods" else math.ceil(max(start, 1) * (1 + value / 100))
            better = max if rs["select"] == "Max" else min
        else:
            lim = start - value if kind == "Pods" else int(start * (1 - value / 100))
            better = min if rs["select"] == "Max" else max
        best = lim if best is None else better(best, lim)
    if best is None:
        return math.inf if direction == "up" else -math.inf
    return best


def check(args):
    t0, t1 = args.since, args.until
    trace = load_trace(args.trace)
    writes, lease_writes, other_writes = audit_records(args.audit, args.namespace)
    faults = []
    if args.faults:
        try:
            with open(args.faults) as f:
                faults = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            faults = []
    if args.lease:
        lease_writes = [w for w in lease_writes if w["name"] == args.lease]
    violations = []

    def violation(kind, t, msg):
        violations.append({"invariant": kind, "t": round(t, 3), "message": msg})

    # Replicas before each write: the previous write to the target, else what the
    # trace saw last.
    last_value, last_write, events = {}, {}, {}
    checked = 0
    for w in writes:
        key = (w["resource"], w["target"])
        snap = state_before(trace, w["t"])
        prev = last_value.get(key)
        if prev is None and snap:
            prev = snap["deployments"].get(w["target"])
        last_value[key] = w["value"]
        previous_write, last_write[key] = last_write.get(key), w
        ev = events.setdefault(key, [])
        if not t0 <= w["t"] <= t1:
            if prev is not None and w["value"] is not None:
                ev.append((w["t"], prev, w["value"]))
            continue
        checked += 1
        where = f"{w['resource']}/{w['target']} -> {w['value']} by {w['who']}"
        if w["value"] is None:
            violation("bounds", w["t"], f"{where}: a replica write without spec.replicas")
            continue
        name, pol = policy_of(snap, w["target"]) if w["resource"] == "deployments" else (None, None)
        if pol:
            lo, hi = pol["min"], pol["max"]
            if hi is not None and not lo <= w["value"] <= hi:
                violation("bounds", w["t"], f"{where}: outside [{lo}, {hi}] of policy {name}")
            if pol["paused"] or pol["dryRun"]:
                violation("paused", w["t"], f"{where}: policy {name} is {'paused' if pol['paused'] else 'dryRun'}")
            if prev is not None and w["value"] < prev:
                if pol["metricsAvailable"] == "False":
                    violation("missing", w["t"], f"{where}: scale-down from {prev} while {name} had MetricsAvailable=False")
                for fw in faults:
                    if fw["start"] <= w["t"] <= fw.get("end", math.inf) and (fw["policies"] == "*" or name in fw["policies"]):
                        violation("missing", w["t"], f"{where}: scale-down from {prev} inside fault window {fw.get('what', '')}")
            if prev is not None and w["value"] != prev:
                direction = "up" if w["value"] > prev else "down"
                lim = rate_limit(rules(pol["behavior"], direction), direction, prev, ev, w["t"], args.slack)
                # The bounds win over the rate (HPA clamps after limiting).
                if direction == "up" and w["value"] > max(lim, lo):
                    violation("rate", w["t"], f"{where}: from {prev}, beyond the scale-up limit {lim}")
                if direction == "down" and w["value"] < min(lim, hi if hi is not None else lim):
                    violation("rate", w["t"], f"{where}: from {prev}, beyond the scale-down limit {lim}")
        # One writer: the Lease's last successful writer, not expired.
        before = [lw for lw in lease_writes if lw["t"] <= w["t"]]
        if not before:
            violation("one-writer", w["t"], f"{where}: no Lease write before it")
        else:
            holder = before[-1]
            mine = [lw for lw in before if lw["who"] == w["who"]]
            if holder["who"] != w["who"]:
                violation("one-writer", w["t"], f"{where}: the Lease was last written by {holder['who']} at {holder['t']:.3f}")
            elif w["t"] - mine[-1]["t"] > args.lease_duration:
                violation("one-writer", w["t"], f"{where}: its lease was {w['t'] - mine[-1]['t']:.1f}s old (duration {args.lease_duration}s)")
        # Stale: the same value again, and nobody else wrote the target since.
        if previous_write is not None and previous_write["value"] == w["value"]:
            touched = any(previous_write["t"] <= o["t"] <= w["t"] and (o["resource"], o["target"]) == key
                          for o in other_writes)
            if not touched:
                violation("stale", w["t"], f"{where}: the same value as its write at {previous_write['t']:.3f} "
                          f"by {previous_write['who']}, with no other write between: decided from a replica "
                          f"count that write had already replaced")
        if prev is not None:
            ev.append((w["t"], prev, w["value"]))

    # Out of bounds for too long, as seen by the watch (reported once per stretch).
    outside, reported = {}, set()
    for r in trace:
        if not t0 <= r["t"] <= t1:
            continue
        for name, pol in r["policies"].items():
            if pol.get("kind") != "Deployment" or pol["paused"] or pol["max"] is None:
                continue
            n = r["deployments"].get(pol["target"])
            key = (name, pol["target"])
            if n is None or pol["min"] <= n <= pol["max"]:
                outside.pop(key, None)
                reported.discard(key)
                continue
            first = outside.setdefault(key, r["t"])
            try:
                grace = 2 * duration_seconds(pol["poll"]) + 10
            except ValueError:
                grace = 40
            if r["t"] - first > grace and key not in reported:
                reported.add(key)
                violation("bounds", r["t"], f"Deployment/{pol['target']} at {n} outside [{pol['min']}, {pol['max']}] of {name} for {r['t'] - first:.0f}s")

    panics = 0
    for pattern in args.logs or []:
        for p in glob.glob(pattern):
            with open(p, errors="replace") as f:
                for i, line in enumerate(f, 1):
                    if "panicked" in line:
                        panics += 1
                        violation("panic", t1, f"{p}:{i}: {line.strip()[:200]}")

    report = {
        "since": t0, "until": t1, "writes": checked,
        "writers": sorted({w["who"] for w in writes if t0 <= w["t"] <= t1}),
        "lease_writes": sum(1 for lw in lease_writes if t0 <= lw["t"] <= t1),
        "trace_samples": sum(1 for r in trace if t0 <= r["t"] <= t1),
        "panics": panics,
        "violations": violations,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    for v in violations:
        print(f"    VIOLATION {v['invariant']} at {v['t']}: {v['message']}")
    print(f"    invariants: {checked} replica writes by {', '.join(report['writers']) or 'nobody'}, "
          f"{report['trace_samples']} watch samples, {len(violations)} violations")
    return 1 if violations else 0


def first_down(args):
    """The audit time of the first write to the target lower than the one before it."""
    writes, _, _ = audit_records(args.audit, args.namespace)
    prev = None
    for w in writes:
        if w["target"] != args.target or w["value"] is None:
            continue
        if prev is not None and w["t"] > args.after and w["value"] < prev:
            print(f"{w['t']:.3f}")
            return 0
        prev = w["value"]
    return 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--kubectl", required=True)
    w.add_argument("--namespace", required=True)
    w.add_argument("--trace", required=True)
    w.add_argument("--interval", type=float, default=1.0)
    c = sub.add_parser("check")
    c.add_argument("--trace", required=True)
    c.add_argument("--audit", required=True)
    c.add_argument("--namespace", required=True)
    c.add_argument("--since", type=float, required=True)
    c.add_argument("--until", type=float, required=True)
    c.add_argument("--faults")
    c.add_argument("--logs", nargs="*")
    c.add_argument("--lease", help="only this Lease's writes decide the holder")
    c.add_argument("--lease-duration", type=float, default=6.0)
    c.add_argument("--slack", type=float, default=1.0, help="seconds taken off each rate period")
    c.add_argument("--out", required=True)
    fd = sub.add_parser("first-down")
    fd.add_argument("--audit", required=True)
    fd.add_argument("--namespace", required=True)
    fd.add_argument("--target", required=True)
    fd.add_argument("--after", type=float, required=True)
    args = ap.parse_args()
    if args.cmd == "first-down":
        return first_down(args)
    if args.cmd == "watch":
        watch(args)
        return 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
