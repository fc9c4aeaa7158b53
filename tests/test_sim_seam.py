"""The seam production code takes the outside world from (torua.sim)."""

from __future__ import annotations

import time

import trio

from torua.sim import Host, current, installed


class _Fixed(Host):
    name = "fixed"

    def time(self) -> float:
        return 42.0

    def unique_hex(self) -> str:
        return "0" * 32


async def test_outside_a_simulation_the_host_is_the_real_one() -> None:
    host = current()
    assert host.name == "local"
    assert abs(host.time() - time.time()) < 5
    assert host.unique_hex() != host.unique_hex()
    assert host.http_transport() is None


async def test_an_installed_host_reaches_the_tasks_started_under_it() -> None:
    seen: list[tuple[float, str]] = []

    async def child() -> None:
        await trio.lowlevel.checkpoint()
        seen.append((current().time(), current().unique_hex()))

    with installed(_Fixed()):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(child)  # started outside: the real host again
    assert seen[0] == (42.0, "0" * 32)
    assert seen[1][0] != 42.0
    assert current().name == "local"
