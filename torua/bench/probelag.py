"""Probe-schedule lag and CPU of the real HealthMonitor with 1,000 simulated nodes.

In process (one ``trio.run`` per variant: this measures the monitor itself):
1,000 watched nodes at interval 1 s, timeout 0.5 s, each probe a real HTTP GET
to one of a few tiny keep-alive servers running in a separate process (see
:mod:`torua.bench.health_server`), each simulated node with its own address
(``http://127.0.0.1:PORT/n17``) so per-node clients really are per node.

Lag of a probe = when it actually started - the tick it was scheduled for. The
monitor runs each node on a fixed-rate schedule (tick = previous tick +
interval, and a schedule more than one interval behind jumps to now), which the
probe wrapper reconstructs per node. CPU is this process's user+system time
over the measurement window divided by the wall time (1.0 = one core).

Variants, so the lead can see which client layout to adopt:

* ``httpx, shared client``: a GET through one ``httpx.AsyncClient`` (the
  coordinator's former outbound client: 512 connections, 256 kept alive), kept
  as the baseline that shows what the coordinator's own transport saves;
* ``httpx, client per node``: one small httpx client per node sharing one SSL
  context;
* ``coordinator's probe``: what the coordinator probes with
  (:class:`~torua.coordinator.nodes.http_probe.RawHttpProbe`: its own kept-alive
  connection per node, httptools parsing);
* the last again with every node watched at the same instant (``aligned``):
  all ticks coincide, as after a coordinator restart; the others spread the
  watches evenly over one interval, as nodes registering over time do;
* ``tcp connect``: the monitor's own ``tcp`` probe kind (connect, close).
"""

from __future__ import annotations

import functools
import logging
import math
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import trio

from torua.config import HealthSettings, normalize_url
from torua.coordinator.control.health import HealthMonitor, ProbeRecord
from torua.coordinator.nodes.probes import Probe, describe_error, probe_tcp

__all__ = ["percentile", "run_probe_lag"]

NODES = 1000
SERVERS = 4
INTERVAL = 1.0
TIMEOUT = 0.5
WATCH_GROUPS = 20  # nodes are watched in 20 groups spread over one interval

ProbeFactory = Callable[[], AbstractAsyncContextManager[Probe]]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def _httpx_probe(
    client: httpx.AsyncClient, addr: str, settings: HealthSettings
) -> str | None:
    """The baseline: one GET through httpx, judged as the coordinator's probe judges."""
    if settings.kind == "tcp":
        return await probe_tcp(addr, settings)
    try:
        response = await client.get(normalize_url(addr) + settings.path)
    except (httpx.HTTPError, OSError) as exc:
        return describe_error(exc)
    return None if response.status_code == 200 else f"HTTP {response.status_code}"


@asynccontextmanager
async def _shared_client() -> AsyncIterator[Probe]:
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=256)
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(10.0), limits=limits, trust_env=False
    ) as client:
        yield functools.partial(_httpx_probe, client)


@asynccontextmanager
async def _client_per_node() -> AsyncIterator[Probe]:
    context = ssl.create_default_context()
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    clients: dict[str, httpx.AsyncClient] = {}

    async def probe(addr: str, settings: HealthSettings) -> str | None:
        client = clients.get(addr)
        if client is None:
            client = clients[addr] = httpx.AsyncClient(
                verify=context, limits=limits, timeout=httpx.Timeout(10.0), trust_env=False
            )
        return await _httpx_probe(client, addr, settings)

    try:
        yield probe
    finally:
        for client in clients.values():
            await client.aclose()


@asynccontextmanager
async def _coordinator_probe() -> AsyncIterator[Probe]:
    """Exactly what the coordinator probes http:// nodes with."""
    from torua.coordinator.assembly import outbound_clients
    from torua.coordinator.nodes.http_probe import RawHttpProbe

    probe = RawHttpProbe(outbound_clients(None, cluster_id="bench").headers)
    try:
        yield probe
    finally:
        probe.close()


class _Stats:
    """Per-probe schedule lag (reconstructed per node) and outcomes, while recording."""

    def __init__(self) -> None:
        self.recording = False
        self.expected: dict[str, float] = {}
        self.lags: list[float] = []
        self.skipped = 0
        self.ok = 0
        self.failed = 0
        self.errors: Counter[str] = Counter()

    def wrap(self, probe: Probe) -> Probe:
        async def timed(addr: str, settings: HealthSettings) -> str | None:
            now = trio.current_time()
            previous = self.expected.get(addr)
            if previous is None:
                self.expected[addr] = now  # the first probe runs at its first tick
            else:
                tick = previous + settings.interval
                lag = now - tick
                if self.recording:
                    self.lags.append(lag)
                if lag > settings.interval:  # the monitor dropped missed ticks
                    self.skipped += self.recording
                    tick = now
                self.expected[addr] = tick
            return await probe(addr, settings)

        return timed

    def on_probe(self, node_id: str, record: ProbeRecord) -> None:
        if not self.recording:
            return
        if record.ok:
            self.ok += 1
        else:
            self.failed += 1
            self.errors[(record.error or "")[:80]] += 1


async def _loop_lag(samples: list[float], recording: Callable[[], bool]) -> None:
    """How late a 10 ms sleep wakes: the event loop's own lag."""
    while True:
        due = trio.current_time() + 0.01
        await trio.sleep_until(due)
        if recording():
            samples.append(trio.current_time() - due)


class _LogCounter(logging.Handler):
    """Counts the health monitor's warnings (stalls, convictions) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.stalls = 0
        self.unhealthy = 0
        self.other: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "stalled" in message:
            self.stalls += 1
        elif "-> unhealthy" in message:
            self.unhealthy += 1
        else:
            self.other[message[:80]] += 1


class _Window:
    """CPU of this process, of the servers and of everything else, over the window."""

    def __init__(self, server_pid: int) -> None:
        self._me, self._server = psutil.Process(), psutil.Process(server_pid)
        self.cpu = self.server_cpu = self.other_cpu = self.wall = math.nan
        self._start: tuple[float, float, float, float] | None = None

    @staticmethod
    def _machine() -> float:
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    @staticmethod
    def _busy(process: psutil.Process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    def begin(self) -> None:
        self._start = (
            self._busy(self._me),
            self._busy(self._server),
            self._machine(),
            time.perf_counter(),
        )

    def end(self) -> None:
        if self._start is None or not math.isnan(self.wall):
            return
        me, server, machine, wall = self._start
        self.wall = time.perf_counter() - wall
        self.cpu = (self._busy(self._me) - me) / self.wall
        self.server_cpu = (self._busy(self._server) - server) / self.wall
        busy = (self._machine() - machine) / self.wall
        self.other_cpu = max(0.0, busy - self.cpu - self.server_cpu)


@dataclass(frozen=True)
class Variant:
    name: str
    factory: ProbeFactory
    aligned: bool = False
    kind: str = "http"


async def _measure(
    variant: Variant, ports: list[int], *, warmup: float, window: float, server_pid: int
) -> dict[str, Any]:
    """One variant; gives up (``finished: false``) if the monitor cannot keep up at all.

    Watching runs in its own task and the window is timed from the start, so a
    monitor that drowns still yields its lags so far instead of no data at all.
    """
    settings = HealthSettings(interval=INTERVAL, timeout=TIMEOUT, kind=variant.kind)  # type: ignore[arg-type]
    stats, meter, logs = _Stats(), _Window(server_pid), _LogCounter()
    loop_lags: list[float] = []
    watched = 0
    send, receive = trio.open_memory_channel[Any](math.inf)
    health_log = logging.getLogger("torua.coordinator.control.health")
    health_log.addHandler(logs)
    health_log.propagate = False

    async def drain() -> None:
        async for _ in receive:
            pass

    async def watch_all(monitor: HealthMonitor, start: float) -> None:
        nonlocal watched
        per_group = NODES // WATCH_GROUPS
        for group in range(WATCH_GROUPS):  # spread the schedules over one interval
            if not variant.aligned:
                await trio.sleep_until(start + group * INTERVAL / WATCH_GROUPS)
            for i in range(group * per_group, (group + 1) * per_group):
                monitor.watch(f"n{i}", f"http://127.0.0.1:{ports[i % len(ports)]}/n{i}")
                watched += 1

    monitor: HealthMonitor | None = None
    cap = trio.CancelScope(deadline=trio.current_time() + INTERVAL + warmup + window + 30)
    try:
        with trio.move_on_after(INTERVAL + warmup + window + 60):  # clients' close included
            async with variant.factory() as probe:
                with cap:
                    async with trio.open_nursery() as nursery:
                        monitor = HealthMonitor(
                            stats.wrap(probe), send, settings, on_probe=stats.on_probe
                        )
                        nursery.start_soon(drain)
                        await nursery.start(monitor.run)
                        nursery.start_soon(_loop_lag, loop_lags, lambda: stats.recording)
                        start = trio.current_time()
                        nursery.start_soon(watch_all, monitor, start)
                        await trio.sleep_until(start + INTERVAL + warmup)
                        meter.begin()
                        stats.recording = True
                        await trio.sleep_until(start + INTERVAL + warmup + window)
                        stats.recording = False
                        meter.end()
                        nursery.cancel_scope.cancel()
                stats.recording = False
                meter.end()
    finally:
        health_log.removeHandler(logs)
        health_log.propagate = True
    statuses: Counter[str] = Counter()
    if monitor is not None:
        statuses.update(monitor.health(n).status for n in monitor.watched())
    lags_ms = [lag * 1000.0 for lag in stats.lags]
    wall = meter.wall
    return {
        "aligned": variant.aligned,
        "kind": variant.kind,
        "finished": not cap.cancelled_caught,
        "watched": watched,
        "probes": len(stats.lags),
        "probes_per_s": None if math.isnan(wall) else round(len(stats.lags) / wall, 1),
        "lag_p50_ms": round(percentile(lags_ms, 50), 2),
        "lag_p99_ms": round(percentile(lags_ms, 99), 2),
        "lag_max_ms": round(max(lags_ms), 2) if lags_ms else math.nan,
        "skipped_ticks": stats.skipped,
        "cpu_cores": round(meter.cpu, 3),
        "server_cpu_cores": round(meter.server_cpu, 3),
        "other_cpu_cores": round(meter.other_cpu, 3),
        "loop_lag_p99_ms": round(percentile([x * 1000 for x in loop_lags], 99), 2),
        "ok": stats.ok,
        "failed": stats.failed,
        "errors": dict(stats.errors.most_common(3)),
        "stall_warnings": logs.stalls,
        "marked_unhealthy": logs.unhealthy,
        "statuses_at_end": dict(statuses),
    }


def _start_servers(work: Path) -> tuple[subprocess.Popen[bytes], list[int]]:
    out = work / "health_server.out"
    with open(out, "wb") as stdout:
        server = subprocess.Popen(
            [sys.executable, "-m", "torua.bench.health_server", str(SERVERS)],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.poll() is None:
        for line in out.read_text().splitlines():
            if line.startswith("READY "):
                return server, [int(p) for p in line.split()[1:]]
        time.sleep(0.05)
    server.kill()
    server.wait(timeout=10)
    raise RuntimeError("the health servers printed no READY line within 30 s")


def run_probe_lag(*, warmup: float, window: float, log: Any = print) -> dict[str, Any]:
    variants = [
        Variant("httpx, shared client", _shared_client),
        Variant("httpx, client per node", _client_per_node),
    ]
    variants.append(Variant("coordinator's probe (RawHttpProbe)", _coordinator_probe))
    variants.append(Variant("coordinator's probe, ticks aligned", _coordinator_probe, aligned=True))
    variants.append(Variant("tcp connect (HEALTH_CHECK_TYPE=tcp)", _coordinator_probe, kind="tcp"))
    results = []
    with tempfile.TemporaryDirectory(prefix="torua-bench-probes-") as tmp:
        server, ports = _start_servers(Path(tmp))
        try:
            for variant in variants:
                measure = functools.partial(
                    _measure, variant, ports, warmup=warmup, window=window, server_pid=server.pid
                )
                row = {"variant": variant.name, **trio.run(measure)}
                log(
                    f"  probe lag {variant.name}: p50 {row['lag_p50_ms']} ms, "
                    f"p99 {row['lag_p99_ms']} ms, cpu {row['cpu_cores']} cores, "
                    f"failed {row['failed']}"
                )
                results.append(row)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
    return {
        "nodes": NODES,
        "interval_s": INTERVAL,
        "timeout_s": TIMEOUT,
        "servers": SERVERS,
        "warmup_s": warmup,
        "window_s": window,
        "variants": results,
    }
