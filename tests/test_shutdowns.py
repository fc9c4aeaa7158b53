"""Holds on nodes expected back: deadlines on two clocks, saved and re-armed.

Pure (torua.coordinator.state.shutdowns), with the clocks in the test's hands: the
wall clock may step either way, and a hold must then end early rather than
late (an early rebuild costs a copy; a late one leaves shards short longer
than the operator allowed, and a hold never ends if the clock went back far).
"""

from __future__ import annotations

import trio

from torua.config import CoordinatorSettings
from torua.coordinator.control.planned import PlannedShutdowns
from torua.coordinator.state.shutdowns import Shutdowns
from torua.coordinator.state.state import ClusterState


class Clocks:
    def __init__(self) -> None:
        self.wall_time = 1_800_000_000.0
        self.mono_time = 100.0

    def wall(self) -> float:
        return self.wall_time

    def mono(self) -> float:
        return self.mono_time

    def advance(self, seconds: float) -> None:
        self.wall_time += seconds
        self.mono_time += seconds


def make() -> tuple[Shutdowns, Clocks]:
    clocks = Clocks()
    return Shutdowns(wall=clocks.wall, mono=clocks.mono), clocks


def test_failure_is_held_for_the_replica_delay_then_expires() -> None:
    shutdowns, clocks = make()
    assert shutdowns.left("n1", replica_delay=60, copies=2)
    assert shutdowns.holds("n1") and shutdowns.gone("n1")
    assert shutdowns.next_wait() == 60
    clocks.advance(59.5)
    assert shutdowns.expire() == [] and shutdowns.holds("n1")
    clocks.advance(0.5)
    assert shutdowns.expire() == ["n1"]
    assert not shutdowns.holds("n1") and not shutdowns.gone("n1")


def test_no_hold_with_one_copy_or_no_delay() -> None:
    shutdowns, _ = make()
    assert not shutdowns.left("n1", replica_delay=60, copies=1)
    assert not shutdowns.left("n1", replica_delay=0, copies=3)
    assert not shutdowns.holds("n1")


def test_a_running_hold_keeps_its_deadline() -> None:
    shutdowns, clocks = make()
    shutdowns.left("n1", replica_delay=60, copies=2)
    clocks.advance(40)
    assert not shutdowns.left("n1", replica_delay=60, copies=2)
    assert shutdowns.next_wait() == 20


def test_planned_restart_uses_its_own_delay_and_reports_progress() -> None:
    shutdowns, clocks = make()
    shutdowns.request("n2", "restart", 300)
    assert shutdowns.status("n2") == "waiting" and not shutdowns.holds("n2")
    assert shutdowns.left("n2", replica_delay=10, copies=2)
    assert shutdowns.status("n2") == "away" and shutdowns.next_wait() == 300
    clocks.advance(5)
    shutdowns.registered("n2", healthy=False)
    assert shutdowns.status("n2") == "returning"
    assert shutdowns.holds("n2") and not shutdowns.gone("n2")  # serves; copies still held
    assert shutdowns.healthy("n2")
    assert shutdowns.status("n2") == "complete" and not shutdowns.holds("n2")


def test_restart_not_back_in_time_is_expired() -> None:
    shutdowns, clocks = make()
    shutdowns.request("n2", "restart", 30)
    shutdowns.left("n2", replica_delay=0, copies=2)
    clocks.advance(31)
    assert shutdowns.expire() == ["n2"]
    assert shutdowns.status("n2") == "expired"


def test_cancel_ends_a_restart_hold() -> None:
    shutdowns, _ = make()
    shutdowns.request("n2", "restart", 300)
    shutdowns.left("n2", replica_delay=0, copies=2)
    assert shutdowns.cancel("n2")
    assert not shutdowns.holds("n2") and "n2" not in shutdowns.records
    assert not shutdowns.cancel("n2")


def test_wall_clock_stepping_forward_ends_the_hold_early() -> None:
    shutdowns, clocks = make()
    shutdowns.left("n1", replica_delay=60, copies=2)
    clocks.wall_time += 3600  # NTP step: the monotonic clock moved on by nothing
    assert shutdowns.next_wait() == 0
    assert shutdowns.expire() == ["n1"]


def test_wall_clock_stepping_back_does_not_stretch_the_hold() -> None:
    shutdowns, clocks = make()
    shutdowns.left("n1", replica_delay=60, copies=2)
    clocks.wall_time -= 3600
    clocks.mono_time += 60
    assert shutdowns.expire() == ["n1"]


def test_saved_hold_is_re_armed_never_beyond_its_delay() -> None:
    shutdowns, clocks = make()
    shutdowns.request("n2", "restart", 120)
    shutdowns.left("n2", replica_delay=0, copies=2)
    saved = shutdowns.to_json()
    clocks.advance(50)

    # A restarted coordinator: its own monotonic clock, the same wall clock.
    later = Clocks()
    later.wall_time, later.mono_time = clocks.wall_time, 7.0
    restored = Shutdowns(wall=later.wall, mono=later.mono)
    restored.restore(saved)
    assert restored.holds("n2") and restored.status("n2") == "away"
    assert restored.next_wait() == 70

    # Restarted with its wall clock set back an hour: still at most the delay.
    back = Clocks()
    back.wall_time, back.mono_time = clocks.wall_time - 3600, 7.0
    restored = Shutdowns(wall=back.wall, mono=back.mono)
    restored.restore(saved)
    assert restored.next_wait() == 120
    back.mono_time += 120
    assert restored.expire() == ["n2"]


def test_a_second_restart_with_the_same_notice_starts_over() -> None:
    shutdowns, clocks = make()
    shutdowns.request("n2", "restart", 60)
    shutdowns.left("n2", replica_delay=0, copies=2)
    shutdowns.registered("n2", healthy=True)
    assert shutdowns.status("n2") == "complete"
    clocks.advance(10)
    assert shutdowns.left("n2", replica_delay=0, copies=2)
    assert shutdowns.status("n2") == "away"


class _Replanner:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []

    def replan(self, rule: str, why: str) -> None:
        self.calls.append((trio.current_time(), why))


class _Persister:
    def mark(self) -> None:
        return None


async def test_the_delay_timer_replans_exactly_when_a_hold_ends(autojump_clock: object) -> None:
    state = ClusterState(CoordinatorSettings(shards=2))
    state.shutdowns = Shutdowns(wall=lambda: 1e9 + trio.current_time(), mono=trio.current_time)
    replanner = _Replanner()
    planned = PlannedShutdowns(state, replanner, None, _Persister())  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(planned.run)
        start = trio.current_time()
        state.shutdowns.left("n1", replica_delay=45, copies=2)
        await trio.sleep(30)
        state.shutdowns.left("n2", replica_delay=5, copies=2)  # ends first, at 35
        await trio.sleep(14.5)
        assert [round(t - start, 6) for t, _ in replanner.calls] == [35]
        await trio.sleep(1)
        assert [round(t - start, 6) for t, _ in replanner.calls] == [35, 45]
        assert "n1" in replanner.calls[1][1]
        assert state.shutdowns.next_wait() is None
        nursery.cancel_scope.cancel()
