"""One seed: build the cluster, run clients and the nemesis, heal, check.

Everything runs in one ``trio.run`` on a ``MockClock(autojump_threshold=0)``:
virtual time jumps whenever every task waits, so a simulated minute costs
only the CPU its messages need. Trio's scheduler shuffles each batch of
runnable tasks with a module-level random source; it is seeded from the
seed here, which (with a fixed ``PYTHONHASHSEED``, see ``__main__``) makes a
seed replay exactly.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio
import trio._core._run as trio_run
import trio.testing

from ..jepsen.workload import History
from ..linearizability import Op, check_history
from .client import WireClient, one_op
from .cluster import COORDINATOR_PORT, SimCluster
from .nemesis import NETWORK_FAULTS, PROCESS_FAULTS, FaultLog, Nemesis
from .network import SimNetwork
from .plants import PLANTS
from .stable import stable_hashes

__all__ = ["SimConfig", "SeedResult", "run_seed"]

SETTLE_LIMIT = 300.0  # simulated seconds the healed cluster gets to converge
STOP_LIMIT = 60.0  # simulated seconds every process gets to shut down


@dataclass(frozen=True)
class SimConfig:
    seed: int
    seconds: float = 60.0
    nodes: int = 4
    replicas: int = 2
    shards: int = 8
    clients: int = 3
    keys: int = 5
    coordinators: int = 1  # more than one: HA coordinators on the fake etcd
    overlap: bool = True  # network faults and process faults at the same time
    plant: str | None = None  # a bug from tests.sim.plants to install for this run


@dataclass
class SeedResult:
    seed: int
    failures: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    shortest: list[str] = field(default_factory=list)  # the failing key's ops
    warnings: list[str] = field(default_factory=list)  # the last ones Torua logged
    ops: int = 0
    simulated: float = 0.0
    cpu: float = 0.0  # CPU seconds the seed took (wall time depends on the machine's load)

    @property
    def ok(self) -> bool:
        return not self.failures

    def history_bytes(self) -> bytes:
        return "\n".join([*self.faults, *self.history]).encode()


def run_seed(config: SimConfig) -> SeedResult:
    undo = PLANTS[config.plant]() if config.plant is not None else None
    trio_run._r.seed(config.seed)
    capture = _Recent()
    root = logging.getLogger()
    root.addHandler(capture)
    started = time.process_time()
    try:
        clock = trio.testing.MockClock(autojump_threshold=0)
        with stable_hashes():
            result = trio.run(_simulate, config, clock=clock)
    finally:
        root.removeHandler(capture)
        if undo is not None:
            undo()
    result.cpu = time.process_time() - started
    result.warnings = list(capture.lines)
    return result


class _Recent(logging.Handler):
    """Keeps the last warnings Torua logged (with simulated times) for a failure report."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: deque[str] = deque(maxlen=25)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            at = f"{trio.current_time():9.3f}"
        except RuntimeError:
            at = "        -"
        self.lines.append(f"{at}  {record.name}: {record.getMessage()}"[:300])


async def _simulate(config: SimConfig) -> SeedResult:
    result = SeedResult(config.seed)
    rng = random.Random(config.seed)
    net = SimNetwork(random.Random(f"{config.seed}:net"))
    cluster = SimCluster(
        net,
        config.seed,
        nodes=config.nodes,
        replicas=config.replicas,
        shards=config.shards,
        coordinators=config.coordinators,
    )
    log = FaultLog()
    history = History()
    keys = [f"k{i}" for i in range(config.keys)]
    async with trio.open_nursery() as nursery:
        cluster.start(nursery)
        if not await _wait(lambda: _healthy(cluster, config.nodes), 120.0):
            result.failures.append("the cluster never became healthy before any fault")
        start = trio.current_time()
        until = start + config.seconds

        def healthy() -> bool:
            return _healthy(cluster, config.nodes)

        nemeses = [
            Nemesis(cluster, random.Random(f"{config.seed}:{name}"), log, healthy=healthy)
            for name in ("nemesis", "network nemesis")
        ]
        async with trio.open_nursery() as work:
            for client in range(config.clients):
                work.start_soon(
                    _client, cluster, client, keys, random.Random(rng.random()), history, until
                )
            with trio.move_on_at(until):
                if config.overlap:
                    async with trio.open_nursery() as faults:
                        faults.start_soon(nemeses[0].run, nursery, until, PROCESS_FAULTS)
                        faults.start_soon(nemeses[1].run, nursery, until, NETWORK_FAULTS)
                else:
                    await nemeses[0].run(nursery, until)
        await nemeses[0].heal_all(nursery)
        for nemesis in nemeses:
            await nemesis.aclose()
        if not await _wait(lambda: _healthy(cluster, config.nodes), SETTLE_LIMIT):
            result.failures.append(f"not back to full replication: {_replication(cluster)}")
        missing = await _final_reads(cluster, keys, history)
        if missing:
            result.failures.append(f"keys never readable after healing: {missing}")
        result.simulated = trio.current_time()
        for proc in cluster.procs():
            proc.stop()
        with trio.move_on_after(STOP_LIMIT):
            for proc in cluster.procs():
                await proc.done.wait()
        stuck = [p.name for p in cluster.procs() if not p.done.is_set()]
        if stuck:
            result.failures.append(f"did not shut down within {STOP_LIMIT:g}s: {stuck}")
        for proc in cluster.procs():
            for error in proc.errors:
                result.failures.append(f"{proc.name} died of an exception:\n{error}")
        left = _leftover_tasks()
        if left:
            result.failures.append(f"tasks left over after every process stopped: {left}")
        nursery.cancel_scope.cancel(reason="simulation over")
    _check(history, result)
    result.faults = log.lines
    return result


async def _client(
    cluster: SimCluster,
    client: int,
    keys: list[str],
    rng: random.Random,
    history: History,
    until: float,
) -> None:
    async with _clients(cluster) as https:
        serial = 0
        while trio.current_time() < until:
            http = rng.choice(https)
            key = rng.choice(keys)
            roll = rng.random()
            if roll < 0.45:
                await one_op(http, history, client, key, "read", None)
            elif roll < 0.9:
                serial += 1
                value = f"c{client}-{serial}".encode()
                await one_op(http, history, client, key, "write", value)
            else:
                await one_op(http, history, client, key, "delete", None)
            await trio.sleep(rng.uniform(0.02, 0.3))


async def _final_reads(cluster: SimCluster, keys: list[str], history: History) -> list[str]:
    missing = []
    async with _clients(cluster) as https:
        for key in keys:
            with trio.move_on_after(60.0):
                # A bounded retry, in virtual time, through each coordinator in turn.
                attempt = 0
                while (
                    await one_op(https[attempt % len(https)], history, -1, key, "read", None)
                    != "ok"
                ):  # noqa: ASYNC110
                    attempt += 1
                    await trio.sleep(0.5)
                continue
            missing.append(key)
    return missing


@asynccontextmanager
async def _clients(cluster: SimCluster) -> AsyncIterator[list[WireClient]]:
    """One client connection per coordinator, from the client host."""
    clients = [
        WireClient(cluster.client_host, name, COORDINATOR_PORT) for name in cluster.coordinators
    ]
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()


async def _wait(condition: Callable[[], bool], limit: float) -> bool:
    with trio.move_on_after(limit):
        # Polls the coordinator's state in memory, in virtual time.
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.5)
        return True
    return False


def _healthy(cluster: SimCluster, nodes: int) -> bool:
    """Every node registered and up, every shard at its factor, every copy in sync."""
    state = cluster.leader_state()
    if state is None:
        return False
    if len(state.registry) < nodes or not all(state.is_up(n) for n in cluster.nodes):
        return False
    factor = state.settings.replication_factor
    return all(
        len(s.copies) == factor and set(s.copies) <= s.in_sync for s in state.table.shards
    ) and not any(any(group.values()) for group in (state.lost, state.dropping, state.retiring))


def _replication(cluster: SimCluster) -> str:
    state = cluster.leader_state()
    if state is None:
        return "no coordinator leads"
    down = [n for n in cluster.nodes if not state.is_up(n)]
    short = [
        f"shard {s.shard_id} copies={s.copies} in_sync={sorted(s.in_sync)}"
        for s in state.table.shards
        if len(s.copies) != state.settings.replication_factor or not set(s.copies) <= s.in_sync
    ]
    return f"down={down} lost={dict(state.lost)} {'; '.join(short[:4])}"


def _leftover_tasks() -> list[str]:
    """Every task still alive under this runner once every process has stopped
    (the clients and the nemesis are done by then too)."""
    names = []
    pending = list(trio.lowlevel.current_task().child_nurseries)
    while pending:
        nursery = pending.pop()
        for task in nursery.child_tasks:
            names.append(task.name)
            pending.extend(task.child_nurseries)
    return sorted(names)


def _shortest(history: History, key: str, failing: list[Op]) -> list[str]:
    """The checker's failing ops, plus the writes of unknown outcome that one of
    them could have read (the checker leaves those out, but they explain it)."""
    reads = [op for op in failing if op.kind == "read"]

    def explains(op: Op) -> bool:
        return any(r.value == op.value and (r.complete or 0.0) > op.invoke for r in reads)

    unknown = [
        r.op
        for r in history.records
        if r.op.key == key and r.outcome == "unknown" and r.op.kind != "read" and explains(r.op)
    ]
    ops = sorted({*failing, *unknown}, key=lambda op: (op.invoke, op.index))
    return [op.describe() for op in ops]


def _check(history: History, result: SeedResult) -> None:
    result.ops = len(history.records)
    result.history = [
        f"{r.op.key} {r.op.describe()} {r.outcome}{' ' + r.detail if r.detail else ''}"
        for r in history.records
    ]
    for key_result in check_history(history.checkable()):
        if key_result.ok is False:
            result.failures.append(
                f"key {key_result.key!r} is not linearizable: {key_result.explanation}"
            )
            if not result.shortest:
                result.shortest = _shortest(history, key_result.key, key_result.failing)
        elif key_result.ok is None:
            result.failures.append(f"key {key_result.key!r}: the checker ran out of budget")
