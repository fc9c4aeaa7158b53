"""GET and PUT through the coordinator and directly on one node, with wrk; bulk; memory.

Also, in the same run and under the same load, the ceiling: a minimal Trio +
httptools server answering the same paths from a dict (:mod:`torua.bench.ceiling`).
The HTTP server under test is the processes' default, or TORUA_SERVER.

One cluster per configuration (a coordinator and two nodes as real processes),
1,000 keys ``k0..k999`` with 100-byte values written first. The direct-to-node
runs use only the keys whose shard the chosen node holds, on the node's own
path ``/shard/{id}/store/{key}``; the cluster keeps running so the node keeps
its lease from the coordinator.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from torua.bench import bulk
from torua.bench.procs import Cluster, CpuMeter, Procs, RssSampler
from torua.bench.profile import find_py_spy, start_recording
from torua.bench.wrk import run_wrk, write_script
from torua.cluster import shard_for_key
from torua.coordinator.nodes.client import key_path

__all__ = ["CONFIGS", "Config", "run_config"]

KEYS = [f"k{i}" for i in range(1000)]
BODY = b"x" * 100
CONCURRENCY = (1, 32)


@dataclass(frozen=True)
class Config:
    name: str
    replicas: int
    memory: bool
    read_cache: bool = True  # a durable node's read cache (TORUA_READ_CACHE_MB)
    only: frozenset[str] | None = None  # these wrk runs (and no bulk) when set
    targets: bool = True  # whether the targets table judges this configuration


CONFIGS = (
    Config("R=1 memory", 1, True),
    Config("R=2 durable", 2, False),
    # The same GETs with every read going to SQLite: what the cache is worth,
    # and what a node does on reads of keys it has not read lately.
    Config(
        "R=2 durable, no read cache",
        2,
        False,
        read_cache=False,
        only=frozenset({"GET:32"}),
        targets=False,
    ),
)


def _direct_paths(cluster: Cluster) -> tuple[str, str, list[str]]:
    """(node id, node url, paths of the keys whose shard that node holds)."""
    num_shards = cluster.http.get("/shards").json()["num_shards"]
    nodes = cluster.nodes_by_id()
    node_id = sorted(nodes)[0]
    held = set(nodes[node_id]["shards"])
    paths = []
    for key in KEYS:
        shard = shard_for_key(key, num_shards)
        if shard in held:
            paths.append(key_path(shard, key))
    if not paths:
        raise RuntimeError(f"node {node_id} holds no shard of any benchmark key")
    return node_id, nodes[node_id]["addr"], paths


def _check(url: str, path: str) -> None:
    """One plain GET before wrk, so a wrong path fails loudly instead of as fast 404s."""
    reply = httpx.get(url + path, timeout=5.0, trust_env=False)
    if reply.status_code != 200:
        raise RuntimeError(f"GET {url}{path} answered {reply.status_code}: {reply.text[:200]}")


def _env(config: Config, data_dir: Path) -> dict[str, str]:
    env = {"TORUA_LOG_LEVEL": "WARNING", "TORUA_REPLICATION_FACTOR": str(config.replicas)}
    if config.memory:
        env["TORUA_MEMORY"] = "1"
    else:
        env["TORUA_DATA_DIR"] = str(data_dir)
    if not config.read_cache:
        env["TORUA_READ_CACHE_MB"] = "0"
    return env


def _start(config: Config, procs: Procs) -> Cluster:
    cluster = Cluster.start(procs, nodes=2)
    if not cluster.wait_settled(within=60):
        raise RuntimeError(
            f"{config.name}: cluster not green within 60 s: "
            f"{cluster.http.get('/cluster/info').json()}"
        )
    return cluster


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _profile(
    config: Config,
    loads: list[tuple[str, str, Path, dict[str, int]]],
    *,
    seconds: float,
    out: Path,
    log: Any,
) -> list[dict[str, Any]]:
    """Under each load (wrk GET c=32, not measured), py-spy on each named process.

    A run of its own, after the measured ones, because sampling costs the
    sampled process some CPU.
    """
    py_spy = find_py_spy()
    if py_spy is None:
        log("  profile: py-spy is not installed (pip install py-spy); no flame graphs")
        return []
    profiles = []
    for load, url, script, pids in loads:
        recordings = [
            start_recording(
                py_spy, name, pid, seconds, out, _slug(f"flame {config.name} {load} {name}")
            )
            for name, pid in pids.items()
        ]
        run_wrk(url, script, connections=32, seconds=seconds + 1)
        for recording in recordings:
            result = {"config": config.name, "load": load, **recording.finish(within=30)}
            profiles.append(result)
            if "error" in result:
                log(f"  profile {load} {recording.name}: py-spy failed: {result['error']}")
            else:
                top = ", ".join(f"{t['function']} {t['self_pct']}%" for t in result["top"][:3])
                log(f"  profile {load} {recording.name}: {result['svg']}; top {top}")
    return profiles


def run_config(
    config: Config,
    *,
    seconds: float,
    bulk_batches: int,
    log: Any = print,
    profile_to: Path | None = None,
    profile_seconds: float = 5.0,
    rows: frozenset[str] | None = None,
) -> dict[str, Any]:
    """All runs of one configuration; returns its section of results.json.

    With ``profile_to``, also flame graphs of the node and the coordinator
    under GET load (:func:`_profile`), written there. ``rows`` (e.g.
    ``{"GET:32", "bulk"}``) keeps only those wrk runs and the bulk run, for
    measuring one change without the whole section.
    """
    if config.only is not None:
        rows = config.only if rows is None else rows & config.only
    runs: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    get_scripts: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="torua-bench-") as tmp:
        work = Path(tmp)
        scripts = work / "scripts"
        scripts.mkdir()
        with Procs(work, _env(config, work / "data")) as procs:
            cluster = _start(config, procs)
            try:
                bulk.preload(cluster.coordinator.url, KEYS)
                node_id, node_url, direct = _direct_paths(cluster)
                coordinator_paths = [f"/data/{k}" for k in KEYS]
                _check(cluster.coordinator.url, coordinator_paths[0])
                _check(node_url, direct[0])
                ceiling = procs.launch(
                    "ceiling", [], command=[sys.executable, "-m", "torua.bench.ceiling"]
                )
                procs.wait_ready([ceiling])
                targets = [
                    ("coordinator", cluster.coordinator.url, coordinator_paths),
                    (f"node {node_id}", node_url, direct),
                    ("ceiling", ceiling.url, coordinator_paths),
                ]
                with RssSampler(cluster.pids()) as rss:
                    for target, url, paths in targets:
                        for method in ("GET", "PUT"):
                            script = write_script(
                                scripts / f"{len(runs)}.lua",
                                method,
                                paths,
                                BODY if method == "PUT" else None,
                            )
                            if method == "GET":
                                get_scripts[target] = script
                            for connections in CONCURRENCY:
                                if rows is not None and f"{method}:{connections}" not in rows:
                                    continue
                                with CpuMeter({**cluster.pids(), "ceiling": ceiling.pid}) as cpu:
                                    result = run_wrk(
                                        url, script, connections=connections, seconds=seconds
                                    )
                                log(
                                    f"  {config.name} {target} {method} c={connections}: "
                                    f"{result.rps:.0f} req/s p50 {result.p50_ms:.2f} ms "
                                    f"p99 {result.p99_ms:.2f} ms, cpu {cpu.cores}"
                                )
                                runs.append(
                                    {
                                        "target": target,
                                        "method": method,
                                        "concurrency": connections,
                                        "keys": len(paths),
                                        **result.to_json(),
                                        "cpu_cores": cpu.cores,
                                    }
                                )
                    bulk_result: dict[str, Any] | None = None
                    if rows is None or "bulk" in rows:
                        bulk_result = bulk.run_bulk(cluster.coordinator.url, batches=bulk_batches)
                        log(
                            f"  {config.name} bulk: put {bulk_result['put']['keys_per_s']:.0f} "
                            f"keys/s, get {bulk_result['get']['keys_per_s']:.0f} keys/s"
                        )
                if profile_to is not None:
                    pids = cluster.pids()
                    node_name = f"node {node_id}"
                    loads = [
                        (
                            f"{node_name} GET",
                            node_url,
                            get_scripts[node_name],
                            {node_id: pids[node_id]},
                        ),
                        (
                            "coordinator GET",
                            cluster.coordinator.url,
                            get_scripts["coordinator"],
                            {"coordinator": pids["coordinator"], node_id: pids[node_id]},
                        ),
                    ]
                    profiles = _profile(
                        config, loads, seconds=profile_seconds, out=profile_to, log=log
                    )
                errors = {
                    p.name: problems
                    for p in [cluster.coordinator, *cluster.nodes]
                    if (problems := p.problems())
                }
            finally:
                cluster.close()
    peaks = rss.peak
    node_peaks = {k: v for k, v in peaks.items() if k != "coordinator"}
    return {
        "config": config.name,
        "targets": config.targets,
        "replication_factor": config.replicas,
        "memory": config.memory,
        "nodes": 2,
        "seconds_per_run": seconds,
        "runs": runs,
        "bulk": bulk_result,
        "peak_rss_mb": {k: round(v / 2**20, 1) for k, v in peaks.items()},
        "peak_rss_nodes_max_mb": round(max(node_peaks.values()) / 2**20, 1),
        "stderr_tails": errors,
        "profiles": profiles,
    }
