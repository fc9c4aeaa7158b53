"""Failure-detection time with K of N real nodes hung (SIGSTOP) at the same instant.

A coordinator with ``HEALTH_CHECK_INTERVAL=2s`` (the timeout derives to 1 s,
three failures to unhealthy) and N ``torua node --memory`` processes. Once all
are healthy and the cluster is green, K nodes are suspended one right after
the other; ``GET /nodes`` is polled every 50 ms and each hung node's detection
time is the first poll that shows it ``unhealthy``, minus the moment it was
suspended. Polling goes on for one more interval after the last detection so
a healthy node wrongly marked unhealthy shows up too.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from torua.bench.procs import Cluster, Procs, RssSampler

__all__ = ["CASES", "INTERVAL", "run_case"]

INTERVAL = 2.0
TIMEOUT = 1.0  # what HEALTH_CHECK_INTERVAL=2s derives
FAILURES = 3
POLL = 0.05
CASES = ((2, 1), (20, 1), (20, 5), (20, 10))  # 20:1 is the baseline of the target ratio


def _hung_ids(ids: list[str], k: int) -> list[str]:
    """K ids spread evenly over the sorted list (not all the first registered)."""
    step = len(ids) / k
    return [ids[int(i * step)] for i in range(k)]


def run_case(n: int, k: int, *, log: Any = print) -> dict[str, Any]:
    """One N:K case on a fresh cluster; returns its row of results.json."""
    bound = (FAILURES - 1) * INTERVAL + TIMEOUT + INTERVAL  # worst phase of a hang vs the tick
    give_up = bound + 15.0
    with tempfile.TemporaryDirectory(prefix="torua-bench-detect-") as tmp:
        env = {
            "TORUA_LOG_LEVEL": "WARNING",
            "TORUA_MEMORY": "1",
            "HEALTH_CHECK_INTERVAL": f"{INTERVAL:g}s",
        }
        with Procs(Path(tmp), env) as procs:
            cluster = Cluster.start(procs, nodes=n)
            try:
                green = cluster.wait_settled(within=60.0 + 3 * n)
                if not green and not cluster.wait_settled(within=5.0, green=False):
                    raise RuntimeError(
                        f"{n}:{k}: nodes not all healthy in time: "
                        f"{cluster.http.get('/cluster/info').json()}"
                    )
                by_name = {p.name: p for p in cluster.nodes}
                hung = _hung_ids(sorted(by_name), k)
                with RssSampler({"coordinator": cluster.coordinator.pid}) as rss:
                    result = _hang_and_watch(cluster, [by_name[h] for h in hung], give_up)
                for name in hung:
                    by_name[name].resume()
                problems = cluster.coordinator.problems()
            finally:
                cluster.close()
    times = [t for t in result["detected_s"].values() if t is not None]
    row = {
        "n": n,
        "k": k,
        "green_before": green,
        "detected": len(times),
        "undetected": k - len(times),
        "max_s": round(max(times), 3) if times else None,
        "mean_s": round(statistics.fmean(times), 3) if times else None,
        "min_s": round(min(times), 3) if times else None,
        "false_unhealthy": result["false_unhealthy"],
        "poll_errors": result["poll_errors"],
        "coordinator_peak_rss_mb": round(rss.peak["coordinator"] / 2**20, 1),
        "coordinator_errors": problems,
        "per_node_s": result["detected_s"],
    }
    log(
        f"  detection {n}:{k}: max {row['max_s']} s, mean {row['mean_s']} s, "
        f"false unhealthy {row['false_unhealthy'] or 'none'}"
    )
    return row


def _hang_and_watch(cluster: Cluster, hung: list[Any], give_up: float) -> dict[str, Any]:
    suspended_at: dict[str, float] = {}
    for proc in hung:  # back to back: the K suspensions span well under a millisecond each
        proc.suspend()
        suspended_at[proc.name] = time.monotonic()
    detected: dict[str, float | None] = dict.fromkeys(suspended_at)
    false_unhealthy: set[str] = set()
    poll_errors = 0
    started = time.monotonic()
    deadline = started + give_up
    settle_until: float | None = None
    http = httpx.Client(base_url=cluster.coordinator.url, timeout=2.0, trust_env=False)
    try:
        while time.monotonic() < deadline:
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            next_poll = time.monotonic() + POLL
            try:
                nodes = http.get("/nodes").json()["nodes"]
            except (httpx.HTTPError, ValueError):
                poll_errors += 1
                nodes = []
            seen = time.monotonic()
            for node in nodes:
                if node["status"] != "unhealthy":
                    continue
                name = node["id"]
                if name in detected:
                    if detected[name] is None:
                        detected[name] = round(seen - suspended_at[name], 3)
                else:
                    false_unhealthy.add(name)
            if settle_until is None and all(v is not None for v in detected.values()):
                settle_until = time.monotonic() + INTERVAL
            time.sleep(max(0.0, next_poll - time.monotonic()))
    finally:
        http.close()
    return {
        "detected_s": detected,
        "false_unhealthy": sorted(false_unhealthy),
        "poll_errors": poll_errors,
    }


def expected_bound() -> float:
    """F x I + T: the detection bound for one hung node, before scheduling noise."""
    return FAILURES * INTERVAL + TIMEOUT
