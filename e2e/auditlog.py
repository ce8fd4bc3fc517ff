"""Reading the kube-apiserver's JSON audit log (e2e/cluster writes one for
Ballast's ServiceAccount), for bench/measure.py."""
import json
from datetime import datetime, timezone


def parse_time(text):
    """2026-11-27T05:40:12.123456Z (any fraction) -> Unix seconds (float)."""
    text = text.rstrip("Z")
    base, _, frac = text.partition(".")
    seconds = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return seconds + (float("0." + frac) if frac else 0.0)


def events(path, since=0.0, offset=0):
    """Yield (time, event) for each completed request from byte `offset` on, at or
    after `since` (Unix seconds, by requestReceivedTimestamp). A missing file has
    none; an unreadable line is skipped."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("stage") != "ResponseComplete":
                    continue
                t = parse_time(e.get("requestReceivedTimestamp", "1970-01-01T00:00:00Z"))
                if t >= since:
                    yield t, e
    except FileNotFoundError:
        return
