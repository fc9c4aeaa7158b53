"""``POST /data/_bulk`` through the coordinator: keys per second for puts, then gets.

A Python httpx client sends batches of 1,000 ops (100-byte values), several
batches at once; every result's status is checked, so a fast wrong answer
does not count as throughput. The request bodies are encoded before the clock
starts: the client shares the machine's two cores with the cluster, and
building JSON in the timed loop measured the client as much as the cluster.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import httpx
import trio

__all__ = ["BATCH", "VALUE", "preload", "run_bulk"]

BATCH = 1_000
VALUE = "v" * 100
CONCURRENT = 4


def _ops(kind: str, keys: list[str]) -> dict[str, Any]:
    if kind == "put":
        return {"ops": [{"op": "put", "key": k, "value": VALUE} for k in keys]}
    return {"ops": [{"op": kind, "key": k} for k in keys]}


def preload(url: str, keys: list[str]) -> None:
    """Write ``keys`` (100-byte values) through the coordinator in one bulk request."""
    with httpx.Client(base_url=url, timeout=60.0, trust_env=False) as http:
        for start in range(0, len(keys), BATCH):
            reply = http.post("/data/_bulk", json=_ops("put", keys[start : start + BATCH]))
            reply.raise_for_status()
            bad = [r for r in reply.json()["results"] if r["status"] != 204]
            if bad:
                raise RuntimeError(f"preload: {len(bad)} puts failed, e.g. {bad[0]}")


async def _phase(
    http: httpx.AsyncClient, kind: str, batches: list[list[str]], budget: float
) -> dict[str, Any]:
    want = 204 if kind == "put" else 200
    errors: dict[str, int] = {}
    done_keys = 0
    bodies = [json.dumps(_ops(kind, keys)).encode() for keys in batches]
    queue = [(len(keys), body) for keys, body in zip(batches, bodies, strict=True)][::-1]
    headers = {"content-type": "application/json"}

    async def worker() -> None:
        nonlocal done_keys
        while queue:
            count, body = queue.pop()
            try:
                reply = await http.post("/data/_bulk", content=body, headers=headers)
            except httpx.HTTPError as exc:
                name = type(exc).__name__
                errors[name] = errors.get(name, 0) + count
                continue
            if reply.status_code != 200:
                code = f"HTTP {reply.status_code}"
                errors[code] = errors.get(code, 0) + count
                continue
            for result in reply.json()["results"]:
                if result["status"] == want:
                    done_keys += 1
                else:
                    code = f"status {result['status']}"
                    errors[code] = errors.get(code, 0) + 1

    started = time.perf_counter()
    with trio.move_on_after(budget) as scope:
        async with trio.open_nursery() as nursery:
            for _ in range(CONCURRENT):
                nursery.start_soon(worker)
    elapsed = time.perf_counter() - started
    return {
        "keys": done_keys,
        "seconds": round(elapsed, 3),
        "keys_per_s": round(done_keys / elapsed, 1) if elapsed > 0 else math.nan,
        "errors": errors,
        "timed_out": scope.cancelled_caught,
    }


async def _bulk(url: str, batches: list[list[str]], budget: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=CONCURRENT)
    async with httpx.AsyncClient(
        base_url=url, timeout=60.0, limits=limits, trust_env=False
    ) as http:
        # one small warm-up batch so connection setup is not timed
        await http.post("/data/_bulk", json=_ops("put", ["bulk-warmup"]))
        puts = await _phase(http, "put", batches, budget)
        gets = await _phase(http, "get", batches, budget)
    return {
        "batch": BATCH,
        "concurrent_batches": CONCURRENT,
        "value_bytes": len(VALUE),
        "put": puts,
        "get": gets,
    }


def run_bulk(url: str, *, batches: int, budget: float = 120.0) -> dict[str, Any]:
    """``batches`` batches of 1,000 puts, then the same keys read back in batches of 1,000."""
    keys = [[f"bulk{b}-{i}" for i in range(BATCH)] for b in range(batches)]
    return trio.run(_bulk, url, keys, budget)
