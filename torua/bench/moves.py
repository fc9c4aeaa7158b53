"""One shard move between durable nodes: keys per second and bytes on the wire.

A one-shard cluster (R = 1, SQLite stores) gets :data:`KEYS` keys of 100-byte
values on its only node; a second node joins and the first is drained, so the
mover copies the whole shard across. ``POST /nodes/{id}/drain`` answers once
the copy is in sync and the old one released, so its duration is the move end
to end; the coordinator's "filled" log line gives the copy alone. Bytes are
the nodes' own metrics: the donor's export response bodies and the new copy's
import request bodies, which is what crossed the wire for the data. CPU
seconds per process during the drain show where the work went (on a busy
machine they vary less than the wall-clock figures).

Run alone with ``python -m torua.bench.moves``; it only uses the public HTTP
API and log lines, so the same file measures an older Torua for comparison.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from torua.bench.bulk import preload
from torua.bench.procs import Cluster, Procs, wait_for

__all__ = ["KEYS", "run_moves"]

KEYS = 10_000
_FILLED = re.compile(r"filled from \S+ \((\d+) records, ([\d.]+)s\)")
_EXPORT = "/shard/<int:shard_id>/export"
_IMPORT = "/shard/<int:shard_id>/import"


def _route_bytes(url: str, metric: str, route: str) -> float:
    """One counter of a node's Prometheus text (0 when the route has not run yet)."""
    text = httpx.get(url + "/metrics", timeout=10.0, trust_env=False).text
    pattern = re.compile(rf'^{metric}_total\{{route="{re.escape(route)}"\}} (\S+)$', re.M)
    found = pattern.search(text)
    return float(found.group(1)) if found else 0.0


def _copy_seconds(stderr: Path) -> tuple[int, float] | None:
    found = _FILLED.findall(stderr.read_text(errors="replace"))
    return (int(found[-1][0]), float(found[-1][1])) if found else None


def _cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    times = {name: psutil.Process(pid).cpu_times() for name, pid in pids.items()}
    return {name: t.user + t.system for name, t in times.items()}


def run_moves(keys: int = KEYS, log: Any = print) -> dict[str, Any]:
    """Move a ``keys``-key shard once; the figures of that move."""
    with tempfile.TemporaryDirectory(prefix="torua-bench-moves-") as tmp:
        work = Path(tmp)
        env = {
            "TORUA_LOG_LEVEL": "INFO",
            "TORUA_SHARDS": "1",
            "TORUA_REPLICATION_FACTOR": "1",
            "TORUA_DATA_DIR": str(work / "data"),
        }
        with Procs(work, env) as procs:
            cluster = Cluster.start(procs, nodes=1)
            try:
                if not cluster.wait_settled(within=60):
                    raise RuntimeError("the one-node cluster did not settle within 60 s")
                preload(cluster.coordinator.url, [f"key-{i:06d}" for i in range(keys)])
                second = procs.launch(
                    "n2",
                    ["node", "--id", "n2", "--listen", "127.0.0.1:0"]
                    + ["--coordinator", cluster.coordinator.url],
                )
                procs.wait_ready([second])
                cluster.nodes.append(second)
                healthy = wait_for(
                    lambda: cluster.nodes_by_id().get("n2", {}).get("status") == "healthy",
                    within=60,
                )
                if not healthy:
                    raise RuntimeError("n2 did not become healthy within 60 s")
                donor, target = cluster.nodes[0].url, second.url
                before = (
                    _route_bytes(donor, "torua_http_response_bytes", _EXPORT),
                    _route_bytes(target, "torua_http_request_bytes", _IMPORT),
                )
                cpu_before = _cpu_seconds(cluster.pids())
                started = time.perf_counter()
                with httpx.Client(timeout=300.0, trust_env=False) as http:
                    reply = http.post(cluster.coordinator.url + "/nodes/n1/drain")
                drained = time.perf_counter() - started
                cpu = {
                    name: round(seconds - cpu_before[name], 3)
                    for name, seconds in _cpu_seconds(cluster.pids()).items()
                }
                if reply.status_code != 200:
                    raise RuntimeError(f"drain answered {reply.status_code}: {reply.text[:200]}")
                exported = _route_bytes(donor, "torua_http_response_bytes", _EXPORT) - before[0]
                imported = _route_bytes(target, "torua_http_request_bytes", _IMPORT) - before[1]
                copy = _copy_seconds(cluster.coordinator.stderr)
                held = httpx.get(second.url + "/info", timeout=10.0, trust_env=False).json()
            finally:
                cluster.close()
    copied, copy_s = copy if copy is not None else (0, 0.0)
    result = {
        "keys": keys,
        "records_copied": copied,
        "keys_on_target": sum(s["keys"] for s in held["shards"]),
        "drain_s": round(drained, 3),
        "copy_s": copy_s,
        "keys_per_s": round(keys / drained, 1),
        "export_bytes": int(exported),
        "import_bytes": int(imported),
        "export_mb_per_s": round(exported / drained / 1e6, 2),
        "cpu_s": cpu,
    }
    log(
        f"move of {keys} keys: drain {drained:.2f}s, copy {copy_s:.2f}s, "
        f"{result['keys_per_s']} keys/s, export {exported / 1e6:.2f} MB, "
        f"import {imported / 1e6:.2f} MB ({result['export_mb_per_s']} MB/s), cpu s {cpu}"
    )
    return result


if __name__ == "__main__":
    print(json.dumps(run_moves(int(sys.argv[1]) if len(sys.argv) > 1 else KEYS), indent=2))
