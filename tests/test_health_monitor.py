"""The health monitor on Trio's virtual clock.

Fake nodes are async probe functions whose behaviour a test flips (pass, fail,
hang forever), so hours of probing run in milliseconds and every detection time
is asserted exactly. Covers the nine behaviours of the Go original's tests plus
what the Go version got wrong (detection time independent of hung nodes) and
what it lacked (success threshold, history, live settings, stall rule).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest
import trio
import trio.testing

from torua.config import HealthSettings
from torua.coordinator.control.health import (
    SPREAD_AFTER,
    HealthMonitor,
    ProbeRecord,
    first_probe_offset,
)
from torua.events import ClusterEvent, NodeHealthChanged

EPOCH = 1_700_000_000.0
DEFAULT = HealthSettings()  # I = 5 s, T = 2 s, F = 3, S = 1


class FakeNode:
    """One fake node: ``mode`` is "pass", "fail" or "hang"; records probe start times."""

    def __init__(self, mode: str = "pass") -> None:
        self.mode = mode
        self.calls: list[float] = []
        self.addrs: list[str] = []
        self.settings_seen: list[HealthSettings] = []
        self.unwatched = False  # set by a test when it unwatches this node
        self.probed_after_unwatch = 0


class FakeCluster:
    def __init__(self) -> None:
        self.nodes: dict[str, FakeNode] = {}

    def add(self, addr: str, mode: str = "pass") -> FakeNode:
        node = self.nodes[addr] = FakeNode(mode)
        return node

    async def probe(self, addr: str, settings: HealthSettings) -> str | None:
        node = self.nodes[addr]
        node.calls.append(trio.current_time())
        node.probed_after_unwatch += node.unwatched
        node.addrs.append(addr)
        node.settings_seen.append(settings)
        await trio.lowlevel.checkpoint()
        if node.mode == "pass":
            return None
        if node.mode == "fail":
            return "connection refused"
        await trio.sleep_forever()
        raise AssertionError("unreachable")


def wall() -> float:
    """A wall clock that follows virtual time, so ``at`` values are exact."""
    return EPOCH + trio.current_time()


def make(
    cluster: FakeCluster, settings: HealthSettings = DEFAULT
) -> tuple[HealthMonitor, trio.MemoryReceiveChannel[ClusterEvent]]:
    send, receive = trio.open_memory_channel[ClusterEvent](math.inf)
    return HealthMonitor(cluster.probe, send, settings, wall_clock=wall), receive


@asynccontextmanager
async def running(monitor: HealthMonitor) -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        try:
            yield nursery
        finally:
            nursery.cancel_scope.cancel()


async def wait_for_status(
    receive: trio.MemoryReceiveChannel[ClusterEvent],
    node_id: str,
    status: str,
    seen: list[NodeHealthChanged] | None = None,
) -> float:
    """Virtual time of the node's next change to ``status``, read off the event bus.

    Events, not polling: a poll loop would add its own rounding to exact times.
    Every event consumed on the way is appended to ``seen``.
    """
    while True:
        event = await next_change(receive)
        if seen is not None:
            seen.append(event)
        if (event.node_id, event.new) == (node_id, status):
            return trio.current_time()


async def next_change(receive: trio.MemoryReceiveChannel[ClusterEvent]) -> NodeHealthChanged:
    """The next event, which the monitor only ever makes a NodeHealthChanged."""
    event = await receive.receive()
    assert isinstance(event, NodeHealthChanged)
    return event


def drain(receive: trio.MemoryReceiveChannel[ClusterEvent]) -> list[NodeHealthChanged]:
    out: list[NodeHealthChanged] = []
    while True:
        try:
            event = receive.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return out
        assert isinstance(event, NodeHealthChanged)
        out.append(event)


def probe_tasks() -> list[trio.lowlevel.Task]:
    """Every live task named as a probe task, found by walking the whole task tree."""
    found: list[trio.lowlevel.Task] = []
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        if task.name.startswith("health-probe:"):
            found.append(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found


# -- the nine behaviours of the Go original -----------------------------------


async def test_construct() -> None:
    cluster = FakeCluster()
    monitor, _ = make(cluster)
    assert monitor.settings == DEFAULT
    assert monitor.watched() == []
    monitor.watch("n1", "127.0.0.1:8081")
    health = monitor.health("n1")
    assert (health.status, health.consecutive_failures, health.consecutive_successes) == (
        "unknown",
        0,
        0,
    )
    assert health.last_check is None
    assert health.history() == []


async def test_start_and_stop(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    cluster.add("a")
    monitor, receive = make(cluster)
    monitor.watch("n1", "a")  # before run(): starts probing when run() starts
    with trio.move_on_after(7) as scope:
        await monitor.run()  # runs until cancelled
    assert scope.cancelled_caught
    assert cluster.nodes["a"].calls == [0.0, 5.0]
    assert probe_tasks() == []
    assert isinstance(drain(receive)[0], NodeHealthChanged)
    with pytest.raises(trio.EndOfChannel):
        await receive.receive()  # run() closed the events channel on exit
    with pytest.raises(RuntimeError):
        await monitor.run()


async def test_failures_make_unhealthy_after_exactly_f(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeCluster()
    node = cluster.add("a", "fail")
    monitor, receive = make(cluster)
    async with running(monitor):
        monitor.watch("n1", "a")
        await trio.sleep(DEFAULT.interval + 0.5)  # two failures
        assert monitor.health("n1").status == "unknown"
        assert monitor.health("n1").consecutive_failures == 2
        assert await wait_for_status(receive, "n1", "unhealthy") == 10.0
        assert node.calls == [0.0, 5.0, 10.0]
        assert monitor.health("n1").consecutive_failures == 3
        assert monitor.watched() == ["n1"]  # unhealthy nodes stay listed


async def test_recovery(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    node = cluster.add("a", "fail")
    monitor, receive = make(cluster)
    events: list[NodeHealthChanged] = []
    async with running(monitor):
        monitor.watch("n1", "a")
        await wait_for_status(receive, "n1", "unhealthy", events)
        node.mode = "pass"
        assert await wait_for_status(receive, "n1", "healthy", events) == 15.0
        health = monitor.health("n1")
        assert (health.consecutive_failures, health.consecutive_successes) == (0, 1)
    events += drain(receive)
    assert [(e.old, e.new) for e in events] == [("unknown", "unhealthy"), ("unhealthy", "healthy")]
    assert events[1].reason == "1 consecutive success"


async def test_unwatch_stops_probing(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    node = cluster.add("a", "pass")
    monitor, _ = make(cluster)
    async with running(monitor):
        monitor.watch("n1", "a")
        await trio.sleep(12)
        monitor.unwatch("n1")
        calls = len(node.calls)
        assert calls == 3
        await trio.sleep(3600)
        assert len(node.calls) == calls
        assert monitor.watched() == []
        with pytest.raises(KeyError):
            monitor.health("n1")
        assert probe_tasks() == []


async def test_unwatch_before_the_task_runs(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    node = cluster.add("a", "pass")
    monitor, _ = make(cluster)
    async with running(monitor):
        monitor.watch("n1", "a")  # task scheduled, not yet run
        monitor.unwatch("n1")
        await trio.sleep(60)
        assert node.calls == []


async def test_unwatch_at_the_very_tick(autojump_clock: trio.testing.MockClock) -> None:
    """Unwatch in the same scheduling batch as the tick's wake-up: still no probe after."""
    cluster = FakeCluster()
    nodes = [cluster.add(f"a{i}") for i in range(50)]
    monitor, _ = make(cluster)
    async with running(monitor):
        for i, node in enumerate(nodes):
            # one at a time (each first probe runs before the next watch), so no
            # burst spreading: all fifty ticks coincide
            monitor.watch(f"n{i}", f"a{i}")
            await trio.testing.wait_all_tasks_blocked()
            assert node.calls == [0.0]
        await trio.sleep_until(5.0)  # woken together with the probe tasks
        for i, node in enumerate(nodes):
            monitor.unwatch(f"n{i}")
            node.unwatched = True
        await trio.sleep(60)
    assert sum(node.probed_after_unwatch for node in nodes) == 0
    assert all(node.calls in ([0.0], [0.0, 5.0]) for node in nodes)


async def test_unwatch_then_watch_starts_fresh(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    node = cluster.add("a", "fail")
    monitor, receive = make(cluster)
    async with running(monitor):
        monitor.watch("n1", "a")
        await trio.sleep(6)
        monitor.unwatch("n1")
        monitor.watch("n1", "a")
        assert monitor.health("n1").history() == []
        assert await wait_for_status(receive, "n1", "unhealthy") == 16.0
    assert node.calls == [0.0, 5.0, 6.0, 11.0, 16.0]


async def test_unwatch_a_hung_probe_cancels_it(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    node = cluster.add("a", "hang")
    monitor, receive = make(cluster)
    async with running(monitor):
        monitor.watch("n1", "a")
        await trio.sleep(1)  # mid-probe
        monitor.unwatch("n1")
        await trio.sleep(60)
        assert node.calls == [0.0]
        assert probe_tasks() == []
    assert drain(receive) == []


async def test_stop_leaks_nothing(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    for i, mode in enumerate(["pass", "fail", "hang"] * 4):
        cluster.add(f"a{i}", mode)
    monitor, receive = make(cluster)
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        for i in range(12):
            monitor.watch(f"n{i}", f"a{i}")
        await trio.sleep(31)
        assert len(probe_tasks()) == 12
        nursery.cancel_scope.cancel()
    assert probe_tasks() == []
    drain(receive)
    with pytest.raises(trio.EndOfChannel):
        await receive.receive()


async def test_concurrency_hung_nodes_do_not_delay_a_healthy_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeCluster()
    healthy = cluster.add("ok", "pass")
    for i in range(19):
        cluster.add(f"hung{i}", "hang")
    monitor, _ = make(cluster)
    async with running(monitor):
        monitor.watch("ok", "ok")
        for i in range(19):
            monitor.watch(f"hung{i}", f"hung{i}")
        await trio.sleep(100.5)
        assert healthy.calls == [5.0 * k for k in range(21)]
        assert monitor.health("ok").status == "healthy"
        assert all(monitor.health(f"hung{i}").status == "unhealthy" for i in range(19))


async def test_health_lookup() -> None:
    monitor, _ = make(FakeCluster())
    with pytest.raises(KeyError):
        monitor.health("nope")
    monitor.watch("n1", "a")
    monitor.watch("n2", "b")
    assert monitor.watched() == ["n1", "n2"]
    assert monitor.health("n2").status == "unknown"


async def test_unhealthy_event_published(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    cluster.add("a", "hang")
    monitor, receive = make(cluster)
    async with running(monitor):
        monitor.watch("n1", "a")
        event = await next_change(receive)
        assert trio.current_time() == 12.0
    assert isinstance(event, NodeHealthChanged)
    assert (event.node_id, event.old, event.new) == ("n1", "unknown", "unhealthy")
    assert event.reason == "3 consecutive failures: timeout after 2s"


# -- detection time -------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "probe_timeout", "failures", "expected"),
    [(5.0, 2.0, 3, 12.0), (2.0, 1.5, 3, 5.5), (1.0, 0.5, 1, 0.5), (10.0, 1.0, 5, 41.0)],
)
async def test_exact_detection_time_of_a_hung_node(
    autojump_clock: trio.testing.MockClock,
    interval: float,
    probe_timeout: float,
    failures: int,
    expected: float,
) -> None:
    """(F - 1) * I + T after watch: F - 1 full intervals, then the last timeout."""
    cluster = FakeCluster()
    cluster.add("a", "hang")
    settings = HealthSettings(interval=interval, timeout=probe_timeout, failures=failures)
    monitor, receive = make(cluster, settings)
    async with running(monitor):
        await trio.sleep(7.25)  # watched some time after the monitor started
        start = trio.current_time()
        monitor.watch("n1", "a")
        detected = await wait_for_status(receive, "n1", "unhealthy")
        assert detected - start == expected == (failures - 1) * interval + probe_timeout


@pytest.mark.parametrize("hung", [1, 10, 19])
async def test_detection_time_independent_of_other_hung_nodes(
    autojump_clock: trio.testing.MockClock, hung: int
) -> None:
    """K hung of 20 are all detected at 12.0 s, as 1 of 20 is (the Go original: 53 s)."""
    cluster = FakeCluster()
    for i in range(20):
        cluster.add(f"a{i}", "hang" if i < hung else "pass")
    monitor, receive = make(cluster)
    async with running(monitor):
        for i in range(20):
            monitor.watch(f"n{i}", f"a{i}")
        times: dict[str, float] = {}
        while len(times) < hung:
            event = await next_change(receive)
            if event.new == "unhealthy":
                times[event.node_id] = trio.current_time()
        assert set(times.values()) == {12.0}
        await trio.sleep(60)
        assert [monitor.health(f"n{i}").status for i in range(hung, 20)] == ["healthy"] * (
            20 - hung
        )


async def test_a_large_burst_of_watches_is_spread_over_one_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Many nodes watched together (a coordinator restart) do not all tick at once:
    the first SPREAD_AFTER are probed at once, each later one at its own offset,
    fixed by its id, within one interval."""
    cluster = FakeCluster()
    nodes = [cluster.add(f"a{i}") for i in range(200)]
    monitor, _ = make(cluster)
    async with running(monitor):
        for i in range(200):
            monitor.watch(f"n{i}", f"a{i}")
        await trio.sleep(5.0 - 1e-6)  # just under one interval: every first probe, once
        firsts = [node.calls for node in nodes]
    assert firsts[:SPREAD_AFTER] == [[0.0]] * SPREAD_AFTER
    assert firsts[SPREAD_AFTER:] == [
        [first_probe_offset(f"n{i}", 5.0)] for i in range(SPREAD_AFTER, 200)
    ]
    # spread: every fifth of the interval holds some of them
    assert {int(calls[0] // 1.0) for calls in firsts} == {0, 1, 2, 3, 4}
    assert all(0.0 <= first_probe_offset(f"n{i}", 5.0) < 5.0 for i in range(1000))


async def test_a_lone_watch_after_a_burst_is_probed_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeCluster()
    for i in range(100):
        cluster.add(f"a{i}")
    lone = cluster.add("lone")
    monitor, _ = make(cluster)
    async with running(monitor):
        for i in range(100):
            monitor.watch(f"n{i}", f"a{i}")
        await trio.sleep(5.0)  # every first probe of the burst has run
        monitor.watch("late", "lone")
        await trio.sleep(0.5)
    assert lone.calls == [5.0]


# -- hysteresis -----------------------------------------------------------------


async def test_unknown_to_healthy_on_the_first_pass(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeCluster()
    cluster.add("a", "pass")
    monitor, receive = make(cluster)
    async with running(monitor):
        monitor.watch("n1", "a")
        event = await next_change(receive)
        assert trio.current_time() == 0.0
    assert (event.old, event.new, event.reason) == ("unknown", "healthy", "1 consecutive success")
    assert monitor.health("n1").last_check == EPOCH


async def test_success_threshold(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    node = cluster.add("a", "fail")
    monitor, receive = make(cluster, replace(DEFAULT, successes=2))
    events: list[NodeHealthChanged] = []
    async with running(monitor):
        monitor.watch("n1", "a")
        assert await wait_for_status(receive, "n1", "unhealthy", events) == 10.0
        node.mode = "pass"
        await trio.sleep(5.5)  # one pass at 15.0 is not enough
        assert monitor.health("n1").status == "unhealthy"
        assert monitor.health("n1").consecutive_successes == 1
        node.mode = "fail"  # a failure at 20.0 resets the streak
        await trio.sleep(5)
        assert monitor.health("n1").consecutive_successes == 0
        node.mode = "pass"  # passes at 25.0 and 30.0
        assert await wait_for_status(receive, "n1", "healthy", events) == 30.0
    events += drain(receive)
    assert [e.new for e in events] == ["unhealthy", "healthy"]
    assert events[1].reason == "2 consecutive successes"


async def test_unknown_needs_the_success_threshold_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeCluster()
    cluster.add("a", "pass")
    monitor, receive = make(cluster, replace(DEFAULT, successes=2))
    async with running(monitor):
        monitor.watch("n1", "a")
        await trio.sleep(1)
        assert monitor.health("n1").status == "unknown"
        assert await wait_for_status(receive, "n1", "healthy") == 5.0


# -- history --------------------------------------------------------------------


async def test_history_capped_and_newest_first(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    node = cluster.add("a", "pass")
    settings = HealthSettings(interval=1.0, timeout=0.5)
    monitor, _ = make(cluster, settings)
    async with running(monitor):
        monitor.watch("n1", "a")
        await trio.sleep(100.5)
        node.mode = "hang"
        await trio.sleep(100.25)
    assert len(node.calls) == 201
    history = monitor.health("n1").history()
    assert len(history) == 100
    assert [r.at for r in history] == [EPOCH + t for t in range(200, 100, -1)]
    assert history[0] == ProbeRecord(
        at=EPOCH + 200, ok=False, latency_ms=500.0, error="timeout after 500ms"
    )
    assert history[0].to_json() == {
        "at": "2023-11-14T22:16:40.000Z",
        "ok": False,
        "latency_ms": 500.0,
        "error": "timeout after 500ms",
    }
    assert monitor.health("n1").last_check == EPOCH + 200.5


async def test_larger_history_setting_keeps_more(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    cluster.add("a", "pass")
    settings = HealthSettings(interval=1.0, timeout=0.5)
    monitor, _ = make(cluster, settings)
    async with running(monitor):
        monitor.watch("n1", "a")
        await trio.sleep(149.5)
        monitor.update_settings(replace(settings, history=250))
        await trio.sleep(150)
    history = monitor.health("n1").history()
    assert len(history) == 250  # the 100 kept (50..149) + 150 more (150..299)
    assert (history[0].at, history[-1].at) == (EPOCH + 299, EPOCH + 50)


async def test_rewatch_keeps_counters_and_history(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    old = cluster.add("old", "fail")
    new = cluster.add("new", "fail")
    monitor, receive = make(cluster)
    async with running(monitor):
        monitor.watch("n1", "old")
        await trio.sleep(7)
        monitor.watch("n1", "new")  # re-registered with a new address
        assert monitor.health("n1").consecutive_failures == 2
        assert await wait_for_status(receive, "n1", "unhealthy") == 10.0
    assert old.calls == [0.0, 5.0]
    assert new.calls == [10.0]  # same schedule, same task, new address
    assert len(monitor.health("n1").history()) == 3
    assert drain(receive) == []  # the one event (unhealthy at 10.0) came once


# -- live settings --------------------------------------------------------------


async def test_update_settings_without_restart(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    node = cluster.add("a", "hang")
    slow = HealthSettings(interval=60.0, timeout=2.0, failures=3)
    monitor, receive = make(cluster, slow)
    async with running(monitor):
        monitor.watch("n1", "a")
        await trio.sleep(30)
        fast = HealthSettings(interval=5.0, timeout=4.0, failures=2)
        monitor.update_settings(fast)
        assert monitor.settings == fast
        event = await next_change(receive)
        # probe at 0 (old 2 s timeout); the new 5 s interval puts the next one at
        # 30 at once (0 + 5 is long past), timing out after the new 4 s
        assert trio.current_time() == 34.0
    assert node.calls == [0.0, 30.0]
    assert node.settings_seen[-1] == fast
    assert event.reason == "2 consecutive failures: timeout after 4s"
    errors = [r.error for r in monitor.health("n1").history()]
    assert errors == ["timeout after 4s", "timeout after 2s"]


async def test_shorter_interval_keeps_the_grid_of_the_last_probe(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeCluster()
    node = cluster.add("a", "pass")
    monitor, _ = make(cluster, HealthSettings(interval=60.0, timeout=2.0))
    async with running(monitor):
        monitor.watch("n1", "a")
        await trio.sleep(3)
        monitor.update_settings(HealthSettings(interval=10.0, timeout=2.0))
        await trio.sleep(30)
    assert node.calls == [0.0, 10.0, 20.0, 30.0]


# -- stall rule -----------------------------------------------------------------


async def test_late_wakeup_makes_a_failure_inconclusive(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The loop stalls 2.5 s across the 5.0 tick: that failure counts neither way."""
    cluster = FakeCluster()
    node = cluster.add("a", "fail")
    monitor, receive = make(cluster)
    async with running(monitor):
        monitor.watch("n1", "a")
        await trio.sleep(4)
        autojump_clock.jump(2.5)  # the whole loop was frozen from 4.0 to 6.5
        await trio.sleep(4.5)  # now 11.0: probes at 0, 6.5 (late), 10
        assert node.calls == [0.0, 6.5, 10.0]
        health = monitor.health("n1")
        assert health.status == "unknown"
        assert health.consecutive_failures == 2
        late = health.history()[1]
        assert not late.ok
        assert late.error == "inconclusive: probe task woke 1.50s late (connection refused)"
        assert await wait_for_status(receive, "n1", "unhealthy") == 15.0


async def test_small_lag_is_tolerated(autojump_clock: trio.testing.MockClock) -> None:
    """A lag of at most STALL_FRACTION x timeout (1 s here) still counts."""
    cluster = FakeCluster()
    cluster.add("a", "fail")
    monitor, receive = make(cluster)
    async with running(monitor):
        monitor.watch("n1", "a")
        await trio.sleep(4)
        autojump_clock.jump(2.0)  # wakes 1.0 s late: not a stall
        assert await wait_for_status(receive, "n1", "unhealthy") == 10.0
    assert not any(r.inconclusive for r in monitor.health("n1").history())


async def test_late_timeout_is_inconclusive(autojump_clock: trio.testing.MockClock) -> None:
    """A hung probe whose 2 s deadline fires at 3.5 s: the loop, not the node, was slow."""
    cluster = FakeCluster()
    cluster.add("a", "hang")
    monitor, receive = make(cluster)
    async with running(monitor):
        monitor.watch("n1", "a")
        await trio.sleep(1)
        autojump_clock.jump(2.5)
        await trio.sleep(0.5)
        first = monitor.health("n1").history()[0]
        assert first.error == "inconclusive: timeout fired 1.50s late (timeout after 2s)"
        assert first.latency_ms == 3500.0
        assert monitor.health("n1").consecutive_failures == 0
        # the next probes (5, 10, 15) are real failures
        assert await wait_for_status(receive, "n1", "unhealthy") == 17.0


async def test_a_pass_counts_even_when_late(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    node = cluster.add("a", "fail")
    monitor, receive = make(cluster, replace(DEFAULT, failures=1))
    async with running(monitor):
        monitor.watch("n1", "a")
        assert await wait_for_status(receive, "n1", "unhealthy") == 0.0
        node.mode = "pass"
        await trio.sleep(4)
        autojump_clock.jump(3)  # wakes 2 s late, but the node answered
        await trio.sleep(0.5)
        assert monitor.health("n1").status == "healthy"


async def test_a_long_stall_skips_missed_ticks(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    node = cluster.add("a", "pass")
    monitor, _ = make(cluster)
    async with running(monitor):
        monitor.watch("n1", "a")
        await trio.sleep(1)
        autojump_clock.jump(60)  # twelve ticks missed: one probe, not a burst
        await trio.sleep(12)
    assert node.calls == [0.0, 61.0, 66.0, 71.0]


async def test_a_probe_that_raises_is_a_failure_not_a_crash(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def broken(addr: str, settings: HealthSettings) -> str | None:
        raise ValueError("bug")

    send, receive = trio.open_memory_channel[ClusterEvent](math.inf)
    monitor = HealthMonitor(broken, send, replace(DEFAULT, failures=1), wall_clock=wall)
    async with running(monitor):
        monitor.watch("n1", "a")
        event = await next_change(receive)
    assert event.reason == "1 consecutive failure: probe error: ValueError: bug"
