#!/usr/bin/env python3
"""Unit tests of e2e/invariants.py's checker on synthetic audit logs and traces:
each invariant is caught when broken, and a clean run has none.

    python3 -m unittest discover -s e2e -p 'test_*.py'     (part of make unit)
"""
import contextlib
import io
import json
import os
import tempfile
import unittest
from datetime import datetime, timezone
from types import SimpleNamespace

import invariants

NS = "ns"
T = 1_800_000_000.0


def stamp(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit(t, who, resource, name, verb="patch", code=200, replicas=None, subresource=None, user=invariants.SA):
    e = {
        "stage": "ResponseComplete", "verb": verb,
        "user": {"username": user},
        "userAgent": f"ballast/0.1.0 ({who})",
        "objectRef": {"resource": resource, "namespace": NS, "name": name},
        "responseStatus": {"code": code},
        "requestReceivedTimestamp": stamp(t),
    }
    if subresource:
        e["objectRef"]["subresource"] = subresource
    if replicas is not None:
        e["requestObject"] = {"spec": {"replicas": replicas}}
    return e


def lease(t, who, code=200):
    return audit(t, who, "leases", "ballast-leader", verb="update", code=code)


def scale(t, who, target, replicas):
    return audit(t, who, "deployments", target, replicas=replicas, subresource="scale")


def policy(target, lo=1, hi=8, paused=False, dry=False, available="True", up=2, down=2):
    rule = lambda v: {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": v, "periodSeconds": 10}]}
    return {"target": target, "kind": "Deployment", "min": lo, "max": hi, "paused": paused,
            "dryRun": dry, "poll": "3s", "behavior": {"scaleUp": rule(up), "scaleDown": rule(down)},
            "metricsAvailable": available, "generation": 1}


class Checker(unittest.TestCase):
    def run_check(self, events, trace, faults=(), logs=None):
        d = tempfile.mkdtemp()
        paths = {k: os.path.join(d, k) for k in ("audit", "trace", "faults", "out")}
        with open(paths["audit"], "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in events)
        with open(paths["trace"], "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in trace)
        with open(paths["faults"], "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in faults)
        args = SimpleNamespace(trace=paths["trace"], audit=paths["audit"], namespace=NS, since=T, until=T + 100,
                               faults=paths["faults"], logs=logs, lease="ballast-leader", lease_duration=6.0,
                               slack=1.0, out=paths["out"])
        rc = invariants.check(args)
        with open(paths["out"]) as f:
            report = json.load(f)
        return rc, sorted({v["invariant"] for v in report["violations"]}), report

    def trace(self, replicas=1, **pol):
        return [{"t": T + i, "deployments": {"web": replicas}, "policies": {"p": policy("web", **pol)},
                 "leases": {"ballast-leader": "a"}} for i in range(0, 100, 1)]

    def test_clean_run_has_no_violation(self):
        events = [lease(T + 1, "a"), scale(T + 2, "a", "web", 3), lease(T + 9, "a"), scale(T + 13, "a", "web", 5)]
        rc, kinds, report = self.run_check(events, self.trace())
        self.assertEqual((rc, kinds), (0, []))
        self.assertEqual(report["writes"], 2)

    def test_write_outside_bounds(self):
        events = [lease(T + 1, "a"), scale(T + 2, "a", "web", 9)]
        self.assertIn("bounds", self.run_check(events, self.trace(up=100))[1])

    def test_write_while_paused_or_dry_run(self):
        events = [lease(T + 1, "a"), scale(T + 2, "a", "web", 2)]
        self.assertEqual(self.run_check(events, self.trace(paused=True))[1], ["paused"])
        self.assertEqual(self.run_check(events, self.trace(dry=True))[1], ["paused"])

    def test_scale_down_while_metrics_missing(self):
        events = [lease(T + 1, "a"), scale(T + 2, "a", "web", 1)]
        self.assertEqual(self.run_check(events, self.trace(replicas=3, available="False"))[1], ["missing"])
        fault = {"start": T + 1, "end": T + 3, "what": "prometheus-killed", "policies": ["p"]}
        self.assertEqual(self.run_check(events, self.trace(replicas=3), faults=[fault])[1], ["missing"])
        # A scale-up during the same fault is fine.
        up = [lease(T + 1, "a"), scale(T + 2, "a", "web", 4)]
        self.assertEqual(self.run_check(up, self.trace(replicas=3), faults=[fault])[1], [])

    def test_write_by_a_replica_not_holding_the_lease(self):
        events = [lease(T + 1, "a"), lease(T + 2, "b"), scale(T + 3, "a", "web", 2)]
        self.assertEqual(self.run_check(events, self.trace())[1], ["one-writer"])
        # A failed Lease write does not make b the holder.
        events = [lease(T + 1, "a"), lease(T + 2, "b", code=409), scale(T + 3, "a", "web", 2)]
        self.assertEqual(self.run_check(events, self.trace())[1], [])
        # An expired lease (last renewed 10 s before, duration 6 s).
        events = [lease(T + 1, "a"), scale(T + 11, "a", "web", 2)]
        self.assertEqual(self.run_check(events, self.trace())[1], ["one-writer"])

    def test_rate_beyond_the_rules(self):
        # 2 pods per 10 s: 1 -> 3 then 3 -> 5 four seconds later is too fast.
        events = [lease(T + 1, "a"), scale(T + 2, "a", "web", 3), scale(T + 6, "a", "web", 5)]
        self.assertEqual(self.run_check(events, self.trace())[1], ["rate"])
        # Ten seconds apart is allowed.
        events = [lease(T + 1, "a"), scale(T + 2, "a", "web", 3), lease(T + 7, "a"), scale(T + 12.5, "a", "web", 5)]
        self.assertEqual(self.run_check(events, self.trace())[1], [])
        # Down: 6 -> 2 at once is beyond 2 pods per 10 s.
        events = [lease(T + 1, "a"), scale(T + 2, "a", "web", 2)]
        self.assertEqual(self.run_check(events, self.trace(replicas=6))[1], ["rate"])

    def test_a_write_repeating_our_own_is_stale(self):
        # The acceptance finding: 3 -> 5 written again and again from a stale cache.
        events = [lease(T + 1, "a"), scale(T + 2, "a", "web", 5), lease(T + 9, "a"), scale(T + 14, "a", "web", 5)]
        self.assertEqual(self.run_check(events, self.trace(replicas=3, up=4))[1], ["stale"])
        # Somebody else scaled it back in between: writing 5 again is a decision.
        kubectl = audit(T + 8, "kubectl", "deployments", "web", replicas=3, subresource="scale", user="admin")
        self.assertEqual(self.run_check(events + [kubectl], self.trace(replicas=3, up=4))[1], [])
        # A status update by a controller is not a write to the target.
        status = audit(T + 8, "kcm", "deployments", "web", verb="update", subresource="status", user="kcm")
        self.assertEqual(self.run_check(events + [status], self.trace(replicas=3, up=4))[1], ["stale"])
        # Another namespace's writes do not count either.
        other = audit(T + 8, "kubectl", "deployments", "web", replicas=3, subresource="scale", user="admin")
        other["objectRef"]["namespace"] = "elsewhere"
        self.assertEqual(self.run_check(events + [other], self.trace(replicas=3, up=4))[1], ["stale"])

    def test_outside_bounds_too_long_in_the_watch(self):
        rc, kinds, _ = self.run_check([], self.trace(replicas=12))
        self.assertEqual((rc, kinds), (1, ["bounds"]))

    def test_panic_in_a_log(self):
        d = tempfile.mkdtemp()
        with open(os.path.join(d, "op-x-a.log"), "w") as f:
            f.write("thread 'tokio-runtime-worker' panicked at src/x.rs:1:1\n")
        self.assertEqual(self.run_check([], self.trace(), logs=[os.path.join(d, "op-x-*.log")])[1], ["panic"])

    def test_first_down_finds_the_first_lower_write_after_a_time(self):
        d = tempfile.mkdtemp()
        path = os.path.join(d, "audit")
        events = [scale(T + 1, "a", "web", 5), scale(T + 5, "a", "web", 3), scale(T + 20, "a", "web", 6),
                  scale(T + 30, "a", "web", 4), scale(T + 40, "a", "other", 1)]
        with open(path, "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in events)
        args = SimpleNamespace(audit=path, namespace=NS, target="web", after=T + 10)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = invariants.first_down(args)
        self.assertEqual((rc, out.getvalue().strip()), (0, f"{T + 30:.3f}"))
        args.after = T + 35
        with contextlib.redirect_stdout(io.StringIO()):
            self.assertEqual(invariants.first_down(args), 1)

    def test_durations(self):
        self.assertEqual(invariants.duration_seconds("1m30s"), 90)
        self.assertEqual(invariants.duration_seconds("500ms"), 0.5)
        with self.assertRaises(ValueError):
            invariants.duration_seconds("3 s")


if __name__ == "__main__":
    unittest.main()
