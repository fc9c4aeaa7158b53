"""The simulated network behaves like the faults it stands for (virtual time)."""

from __future__ import annotations

import random

import pytest
import trio

from .network import CONNECT_TIMEOUT, SimNetwork

PORT = 9000


async def _pair(net: SimNetwork) -> tuple[trio.abc.Stream, trio.abc.Stream]:
    listener = net.listen("b", PORT)
    client = await net.connect("a", "b", PORT)
    server = await listener.accept()
    return client, server


async def test_bytes_arrive_in_order_after_a_latency(autojump_clock: trio.abc.Clock) -> None:
    net = SimNetwork(random.Random(1))
    client, server = await _pair(net)
    start = trio.current_time()
    for chunk in (b"one ", b"two ", b"three"):
        await client.send_all(chunk)
    received = b""
    while len(received) < len(b"one two three"):
        received += await server.receive_some(100)
    assert received == b"one two three"
    assert trio.current_time() > start


async def test_a_partition_blackholes_a_connection_and_times_out_connects(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = SimNetwork(random.Random(2))
    client, server = await _pair(net)
    net.block("a", "b")
    await client.send_all(b"lost")
    with trio.move_on_after(60) as waited:
        await server.receive_some(100)
    assert waited.cancelled_caught
    net.heal()
    await client.send_all(b"after")  # the connection stays dead, as a timed-out TCP one
    with trio.move_on_after(60) as waited:
        await server.receive_some(100)
    assert waited.cancelled_caught
    net.block("b", "a")
    start = trio.current_time()
    with pytest.raises(OSError):
        await net.connect("a", "b", PORT)
    assert trio.current_time() - start >= CONNECT_TIMEOUT


async def test_one_way_partition_lets_the_other_direction_through(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = SimNetwork(random.Random(3))
    client, server = await _pair(net)
    net.block("a", "b")
    await server.send_all(b"still here")
    assert await client.receive_some(100) == b"still here"


async def test_a_frozen_host_gets_nothing_until_it_thaws(autojump_clock: trio.abc.Clock) -> None:
    net = SimNetwork(random.Random(4))
    client, server = await _pair(net)
    net.freeze("b")
    await client.send_all(b"held")
    with trio.move_on_after(30) as waited:
        await server.receive_some(100)
    assert waited.cancelled_caught
    net.thaw("b")
    assert await server.receive_some(100) == b"held"


async def test_a_crashed_host_refuses_and_its_peers_read_eof(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = SimNetwork(random.Random(5))
    client, _server = await _pair(net)
    net.crash("b")
    assert await client.receive_some(100) == b""
    with pytest.raises(ConnectionRefusedError):
        await net.connect("a", "b", PORT)


async def test_reset_breaks_both_ends(autojump_clock: trio.abc.Clock) -> None:
    net = SimNetwork(random.Random(6))
    client, server = await _pair(net)
    net.reset_host("a")
    with pytest.raises(trio.BrokenResourceError):
        await client.send_all(b"x")
    with pytest.raises(trio.BrokenResourceError):
        await server.receive_some(10)
