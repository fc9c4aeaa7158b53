"""Clients that read, write and delete hot keys and record every op.

Each op is stamped with monotonic invoke and completion times. A definite
answer (204, 200, 404, another 4xx) completes it; a timeout, a 5xx or a broken
connection leaves its outcome unknown: the request may still take effect later.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import httpx
import trio

from ..linearizability import Kind, Op

__all__ = ["History", "Record", "final_reads", "record_answer", "run_client"]

OP_TIMEOUT = 2.5
# After an answer-less failure (coordinator down), pause a little so a dead
# coordinator does not turn into thousands of connection-refused ops.
BACKOFF = 0.1


@dataclass(slots=True)
class Record:
    op: Op
    outcome: str  # "ok", "fail" (a definite refusal) or "unknown"
    detail: str = ""


@dataclass
class History:
    """Times are seconds since ``origin`` (monotonic), to keep reports readable."""

    origin: float = 0.0
    records: list[Record] = field(default_factory=list)

    def add(
        self,
        key: str,
        kind: Kind,
        value: bytes | None,
        invoke: float,
        complete: float | None,
        client: int,
        outcome: str,
        detail: str = "",
    ) -> None:
        invoke -= self.origin
        complete = None if complete is None else complete - self.origin
        op = Op(key, kind, value, invoke, complete, client, len(self.records))
        self.records.append(Record(op, outcome, detail))

    def checkable(self) -> list[Op]:
        """What the checker sees: definite refusals did not happen, so they go."""
        return [r.op for r in self.records if r.outcome != "fail"]

    def counts(self) -> Counter[tuple[str, str]]:
        return Counter((r.op.kind, r.outcome) for r in self.records)


async def run_client(
    client: int,
    url: str,
    keys: list[str],
    rng: random.Random,
    history: History,
    stop: trio.Event,
) -> None:
    """Issue random ops on the hot keys until ``stop`` is set."""
    serial = 0
    async with httpx.AsyncClient(base_url=url, timeout=OP_TIMEOUT, trust_env=False) as http:
        while not stop.is_set():
            key = rng.choice(keys)
            roll = rng.random()
            if roll < 0.45:
                outcome = await one_op(http, history, client, key, "read", None)
            elif roll < 0.85:
                serial += 1
                value = f"c{client}-{serial}".encode()
                outcome = await one_op(http, history, client, key, "write", value)
            else:
                outcome = await one_op(http, history, client, key, "delete", None)
            if outcome == "unknown":
                await trio.sleep(BACKOFF)


async def one_op(
    http: httpx.AsyncClient,
    history: History,
    client: int,
    key: str,
    kind: Kind,
    value: bytes | None,
) -> str:
    """Run one op, record it, return its outcome."""
    invoke = trio.current_time()
    path = f"/data/{key}"
    try:
        if kind == "read":
            response = await http.get(path)
        elif kind == "write":
            response = await http.put(path, content=value)
        else:
            response = await http.delete(path)
    except httpx.HTTPError as exc:
        history.add(key, kind, value, invoke, None, client, "unknown", type(exc).__name__)
        return "unknown"
    return record_answer(
        history, client, key, kind, value, invoke, response.status_code, response.content
    )


def record_answer(
    history: History,
    client: int,
    key: str,
    kind: Kind,
    value: bytes | None,
    invoke: float,
    status: int,
    body: bytes,
) -> str:
    """Record an op the cluster answered; its outcome ("ok", "fail" or "unknown").

    A 5xx may have taken effect (unknown); another error did not (fail)."""
    complete = trio.current_time()
    if kind == "read" and status in (200, 404):
        history.add(key, kind, body if status == 200 else None, invoke, complete, client, "ok")
        return "ok"
    if kind != "read" and status == 204:
        history.add(key, kind, value, invoke, complete, client, "ok")
        return "ok"
    outcome = "unknown" if status >= 500 else "fail"
    history.add(key, kind, value, invoke, None, client, outcome, f"HTTP {status}")
    return outcome


async def final_reads(url: str, keys: list[str], history: History, *, within: float) -> list[str]:
    """Read every key once more after healing; keys never read successfully are returned."""
    missing = []
    async with httpx.AsyncClient(base_url=url, timeout=OP_TIMEOUT, trust_env=False) as http:
        for key in keys:
            if not await _read_back(http, history, key, within):
                missing.append(key)
    return missing


async def _read_back(http: httpx.AsyncClient, history: History, key: str, within: float) -> bool:
    with trio.move_on_after(within):
        while True:
            if await one_op(http, history, -1, key, "read", None) == "ok":
                return True
            await trio.sleep(BACKOFF)
    return False
