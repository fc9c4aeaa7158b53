"""Coordinator failover: SIGKILL the leader, time until writes are served again.

A one-member etcd, three coordinators (``TORUA_LEADER_TTL``, default the
product default of 10 s) and two in-memory nodes. Each run: a writer thread
keeps putting keys through a follower; the leader is SIGKILLed; the failover
time is from the kill to the first write acknowledged after it. The writer
also records what happened to the requests in flight at the kill and to those
sent during the election. Every acknowledged write is read back after each
run (lost writes must be 0); the killed coordinator is then restarted on its
port so the next run again has three.

``python -m torua.bench.failover [--runs 10] [--ttl 10s]`` or the ``failover``
section of ``python -m torua.bench``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from torua.bench.procs import Proc, Procs, wait_for
from torua.config import parse_duration
from torua.ha.local_etcd import MISSING_ETCD, etcd_argv, find_etcd, free_port

__all__ = ["run_failover"]

INTERVAL = "1s"


class Writer(threading.Thread):
    """Puts keys through one coordinator as fast as answers come back."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=url, timeout=15.0, trust_env=False)
        self.prefix = prefix
        self.acked: dict[str, bytes] = {}
        self.acks: list[tuple[float, float]] = []  # (sent, answered) of each 204
        self.failures: list[tuple[float, str]] = []  # (sent, outcome) of each failure
        self.stopping = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            key, value = f"{self.prefix}{i % 200}", f"v{i}".encode()
            sent = time.monotonic()
            try:
                response = self.client.put(f"/data/{key}", content=value)
                outcome = str(response.status_code)
                if response.status_code == 503:
                    outcome = "503 " + response.json().get("error", "")
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
                response = None
            if response is not None and response.status_code == 204:
                self.acked[key] = value
                self.acks.append((sent, time.monotonic()))
            else:
                self.acked.pop(key, None)  # its fate is unknown now
                self.failures.append((sent, outcome))
                time.sleep(0.01)
            i += 1

    def first_ack_after(self, moment: float, *, nth: int = 1) -> float | None:
        """When the ``nth`` write sent after ``moment`` was acknowledged, if it was yet."""
        answered = [a for s, a in list(self.acks) if s >= moment]
        return answered[nth - 1] if len(answered) >= nth else None

    def lost(self, reader: httpx.Client) -> int:
        return sum(
            1 for key, value in self.acked.items() if reader.get(f"/data/{key}").content != value
        )


def _info(url: str) -> dict[str, Any] | None:
    try:
        response = httpx.get(url + "/cluster/info", timeout=1.0, trust_env=False)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def _green(url: str) -> bool:
    return (_info(url) or {}).get("cluster_state") == "green"


def _agreed_leader(coordinators: list[Proc], not_: str | None = None) -> str | None:
    leaders = {(_info(c.url) or {}).get("leader") for c in coordinators}
    leader = leaders.pop() if len(leaders) == 1 else None
    return leader if leader and leader != not_ else None


def run_failover(runs: int = 10, ttl: str = "10s", *, log: Any = print) -> dict[str, Any]:
    binary = find_etcd()
    if binary is None:
        raise RuntimeError(MISSING_ETCD)
    ttl_s = parse_duration(ttl, setting="--ttl")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="torua-bench-failover-") as tmp:
        work = Path(tmp)
        client_port = free_port()
        env = {
            "TORUA_LOG_LEVEL": "WARNING",
            "TORUA_MEMORY": "1",
            "HEALTH_CHECK_INTERVAL": INTERVAL,
            "TORUA_LEADER_TTL": ttl,
            "TORUA_ETCD_ENDPOINTS": f"http://127.0.0.1:{client_port}",
        }
        with Procs(work, env) as procs:
            procs.launch(
                "etcd", [], command=etcd_argv(binary, work / "etcd", client_port, free_port())
            )
            ports = [free_port() for _ in range(3)]

            def coordinator(port: int, generation: int = 0) -> Proc:
                argv = ["coordinator", "--listen", f"127.0.0.1:{port}"]
                proc = procs.launch(f"coordinator-{port}-{generation}", argv)
                procs.wait_ready([proc])
                return proc

            coordinators = [coordinator(p) for p in ports]
            urls = ",".join(c.url for c in coordinators)
            nodes = [
                procs.launch(
                    f"n{i}",
                    ["node", "--id", f"n{i}", "--listen", "127.0.0.1:0"],
                    {"COORDINATOR_ADDR": urls},
                )
                for i in (1, 2)
            ]
            procs.wait_ready(nodes)
            if not wait_for(lambda: _agreed_leader(coordinators), within=60):
                raise RuntimeError("no leader agreed on")
            for run in range(runs):
                leader_url = _agreed_leader(coordinators)
                assert leader_url is not None
                leader = next(c for c in coordinators if c.url == leader_url)
                follower = next(c for c in coordinators if c is not leader)
                wait_for(partial(_green, leader.url), within=60)
                writer = Writer(follower.url, f"r{run}-")
                writer.start()
                wait_for(partial(writer.first_ack_after, 0.0, nth=50), within=30, every=0.02)
                killed = time.monotonic()
                leader.popen.kill()
                leader.popen.wait()
                served = wait_for(
                    partial(writer.first_ack_after, killed), within=ttl_s + 30, every=0.01
                )
                elected = _agreed_leader([c for c in coordinators if c is not leader], leader_url)
                writer.stopping.set()
                writer.join()
                with httpx.Client(base_url=follower.url, timeout=10.0, trust_env=False) as reader:
                    lost = writer.lost(reader)
                in_flight = Counter(o for s, o in writer.failures if s < killed)
                during = Counter(o for s, o in writer.failures if s >= killed)
                row = {
                    "run": run + 1,
                    "failover_s": round(served - killed, 3) if served else None,
                    "new_leader": elected,
                    "acked_writes": len(writer.acks),
                    "lost_writes": lost,
                    "in_flight_at_kill": dict(in_flight),
                    "failed_during_failover": dict(during),
                }
                results.append(row)
                log(
                    f"  run {run + 1}: writes served again {row['failover_s']}s after the kill; "
                    f"in flight: {dict(in_flight)}; during: {dict(during)}; lost {lost}"
                )
                # Bring the killed coordinator back on its port for the next run.
                port = int(leader.url.rsplit(":", 1)[1])
                coordinators[coordinators.index(leader)] = coordinator(port, run + 1)
    times = [r["failover_s"] for r in results if r["failover_s"] is not None]
    return {
        "ttl": ttl,
        "interval": INTERVAL,
        "runs": results,
        "failover_s": {
            "min": min(times),
            "median": round(statistics.median(times), 3),
            "max": max(times),
        }
        if times
        else None,
        "lost_writes": sum(r["lost_writes"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--ttl", default="10s")
    args = parser.parse_args()
    summary = run_failover(args.runs, args.ttl)
    print({k: v for k, v in summary.items() if k != "runs"})


if __name__ == "__main__":
    main()
