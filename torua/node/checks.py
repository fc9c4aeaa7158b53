"""A node's self-checks: what the node can see about itself that a probe cannot.

A coordinator's probe only learns that the node answers. A node whose disk is
nearly full, whose store no longer commits, or whose event loop stalls still
answers ``/health``; these checks let it say so. States follow Consul's
``passing | warning | critical``: a warning is shown to the operator and keeps
new copies away (the disk check), a critical check turns ``/health`` into a 503
so the coordinator marks the node unhealthy and moves its copies off.

Checks run on a fixed schedule in the node's own nursery, never inside a
health request: a probe must answer quickly even when a check hangs, and the
answer is the last completed result.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import trio

from torua.cluster.states import CheckState
from torua.config import DiskLimit
from torua.node.store import Store
from torua.sim import seam

__all__ = ["PROBE_SHARD", "CheckResult", "SelfChecks"]

log = logging.getLogger(__name__)

State = CheckState

# A shard id no client can name (the API takes 0 or more): the store probe's
# record never mixes with user data and is never exported or moved.
PROBE_SHARD = -1
_PROBE_KEY = "torua-self-check"

# A loop that wakes this late cannot answer probes or writes on time; it is a
# warning only, because a stalled loop recovers and killing a slow node's copies
# would move load onto the others exactly when the cluster is busiest.
LAG_WARN = 0.5


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    state: State
    output: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "output": self.output}


class SelfChecks:
    """Runs the checks every ``interval`` seconds and keeps the latest results.

    ``data_dir`` is None for an in-memory node (it has no disk to watch).
    ``disk_usage`` is a seam for tests; it defaults to :func:`shutil.disk_usage`.
    """

    def __init__(
        self,
        store: Store,
        *,
        data_dir: str | None,
        warn: DiskLimit,
        critical: DiskLimit,
        interval: float,
        disk_usage: Callable[[str], DiskUsage] | None = None,
    ) -> None:
        self._store = store
        self._data_dir = data_dir
        self._warn, self._critical = warn, critical
        self.interval = interval
        self._disk_usage = disk_usage or _disk_usage
        self._lag = 0.0
        self._results: dict[str, CheckResult] = {}

    def results(self) -> list[CheckResult]:
        return list(self._results.values())

    def critical(self) -> list[CheckResult]:
        return [r for r in self._results.values() if r.state == CheckState.CRITICAL]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Check once before reporting started (the first probe sees real results),
        then on a fixed schedule; lateness of the schedule is the loop-lag check."""
        await self.check_all()
        task_status.started()
        tick = trio.current_time()
        while True:
            tick += self.interval
            await trio.sleep_until(tick)
            self._lag = max(0.0, trio.current_time() - tick)
            await self.check_all()
            tick = max(tick, trio.current_time() - self.interval)  # no burst after a stall

    async def check_all(self) -> None:
        results = [self._check_disk(), await self._check_store(), self._check_lag()]
        for result in results:
            if result is None:
                continue
            old = self._results.get(result.name)
            if old is None or old.state != result.state:
                level = logging.INFO if result.state == CheckState.PASSING else logging.WARNING
                log.log(level, "self-check %s: %s (%s)", result.name, result.state, result.output)
            self._results[result.name] = result

    def _check_disk(self) -> CheckResult | None:
        if self._data_dir is None:
            return None
        try:
            usage = self._disk_usage(self._data_dir)
        except OSError as exc:
            return CheckResult(
                "disk", CheckState.CRITICAL, f"cannot read disk usage: {exc.strerror}"
            )
        # "Used" is everything this node cannot write to (blocks reserved for root
        # included), as the watermarks measure it.
        percent = 100.0 * (usage.total - usage.free) / usage.total if usage.total else 100.0
        text = f"{_size(usage.free)} free of {_size(usage.total)} ({percent:.1f}% used)"
        if self._critical.crossed(usage.total, usage.free):
            return CheckResult("disk", CheckState.CRITICAL, f"{text}; critical at {self._critical}")
        if self._warn.crossed(usage.total, usage.free):
            return CheckResult("disk", CheckState.WARNING, f"{text}; warning at {self._warn}")
        return CheckResult("disk", CheckState.PASSING, text)

    async def _check_store(self) -> CheckResult:
        """Write a record and read it back through the real store: a full disk, a
        read-only file or a dead writer task all fail here before a client sees it."""
        started = trio.current_time()
        state: State = CheckState.CRITICAL
        with trio.move_on_after(max(self.interval, 1.0)) as scope:
            try:
                current = await self._store.get(PROBE_SHARD, _PROBE_KEY)
                version = (current.version if current is not None else 0) + 1
                value = str(seam.current().time_ns()).encode()
                await self._store.put(PROBE_SHARD, _PROBE_KEY, value, version)
                back = await self._store.get(PROBE_SHARD, _PROBE_KEY)
                if back is not None and back.value == value:
                    state, output = CheckState.PASSING, "wrote and read back a record"
                else:
                    output = "a record written was not read back"
            except Exception as exc:  # any store failure is the finding, not a crash
                output = f"store failed: {type(exc).__name__}: {exc}"[:200]
        if scope.cancelled_caught:
            output = "store write did not complete in time"
        elapsed = trio.current_time() - started
        return CheckResult("store", state, f"{output} ({elapsed * 1000:.1f} ms)")

    def _check_lag(self) -> CheckResult:
        state: State = CheckState.WARNING if self._lag >= LAG_WARN else CheckState.PASSING
        return CheckResult("event_loop", state, f"last check woke {self._lag * 1000:.0f} ms late")


def _disk_usage(path: str) -> DiskUsage:
    os.makedirs(path, exist_ok=True)
    usage = shutil.disk_usage(path)
    return DiskUsage(usage.total, usage.used, usage.free)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
