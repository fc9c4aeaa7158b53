"""An in-memory network for the simulator: hosts by name, streams by address.

Each connection is two one-way pipes. A chunk sent on a pipe arrives after
a latency drawn from the seeded random source, never before the chunk sent
before it (a connection keeps its order, as TCP does); different connections
draw their own latencies, so messages on different connections reorder. The
nemesis can:

- block a direction between two hosts (a partition, one-way or both): a
  connection that tries to carry a byte across it turns into a black hole
  (nothing more arrives either way, as a TCP connection that timed out), and
  a connect across it times out;
- freeze a host (SIGSTOP): nothing it sent or is sent reaches anyone until
  it thaws; the kernel still accepts its connections;
- slow a host's links, or reset every connection of a host (a dropped link);
- crash a host: its listeners close (connects are refused) and the peers of
  its connections read EOF.
"""

from __future__ import annotations

import errno
import math
import random
from collections import deque
from collections.abc import Iterable

import trio

from torua.sim.seam import SimulatedListener, SimulatedStream

__all__ = ["SimNetwork", "SimStream", "SimListener"]

CONNECT_TIMEOUT = 20.0  # how long a SYN into a partition waits before ETIMEDOUT


class _Pipe:
    """One direction of one connection: chunks with the time each arrives."""

    __slots__ = ("src", "dst", "items", "last_at", "lost", "reset", "reader_gone", "wake")

    def __init__(self, src: str, dst: str) -> None:
        self.src = src
        self.dst = dst
        self.items: deque[tuple[float, bytes]] = deque()  # b"" is the EOF
        self.last_at = 0.0
        self.lost = False  # blackholed: nothing more arrives
        self.reset = False
        self.reader_gone = False
        self.wake = trio.lowlevel.ParkingLot()


class SimStream(SimulatedStream):
    def __init__(self, net: SimNetwork, local: str, out: _Pipe, inp: _Pipe) -> None:
        self._net = net
        self.local = local
        self._out = out
        self._inp = inp
        self._closed = False
        net.streams.add_stream(self)

    # sending ---------------------------------------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("stream closed")
        await trio.lowlevel.checkpoint()
        if self._out.reset:
            raise trio.BrokenResourceError("connection reset")
        if data:
            self._net.carry(self._out, bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    # receiving -------------------------------------------------------------

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        pipe = self._inp
        while True:
            if self._closed:
                raise trio.ClosedResourceError("stream closed")
            if pipe.reset:
                raise trio.BrokenResourceError("connection reset")
            ready = self._net.ready_at(pipe)
            now = trio.current_time()
            if ready is not None and ready <= now:
                await trio.lowlevel.checkpoint()
                if self._closed or pipe.reset or self._net.ready_at(pipe) is None:
                    continue
                return self._take(pipe, max_bytes)
            with trio.move_on_at(math.inf if ready is None else ready):
                await pipe.wake.park()

    def _take(self, pipe: _Pipe, max_bytes: int | None) -> bytes:
        at, data = pipe.items[0]
        if not data:
            return b""  # EOF stays at the head: every later read sees it too
        if max_bytes is None or len(data) <= max_bytes:
            pipe.items.popleft()
            return data
        pipe.items[0] = (at, data[max_bytes:])
        return data[:max_bytes]

    # closing ---------------------------------------------------------------

    def close_now(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._inp.reader_gone = True
        self._inp.wake.unpark_all()
        self._net.carry(self._out, b"")
        self._net.streams.discard(self)

    async def aclose(self) -> None:
        self.close_now()
        await trio.lowlevel.checkpoint()

    def has_input(self) -> bool:
        ready = self._net.ready_at(self._inp)
        return self._inp.reset or (ready is not None and ready <= trio.current_time())

    def break_now(self) -> None:
        """Both directions reset: every read and write fails from now on."""
        for pipe in (self._out, self._inp):
            pipe.reset = True
            pipe.wake.unpark_all()


class _Streams:
    """Open streams, in opening order (so iterating them is deterministic)."""

    def __init__(self) -> None:
        self._all: dict[int, SimStream] = {}
        self._serial = 0
        self._ids: dict[int, int] = {}

    def add_stream(self, stream: SimStream) -> None:
        self._serial += 1
        self._all[self._serial] = stream
        self._ids[id(stream)] = self._serial

    def discard(self, stream: SimStream) -> None:
        serial = self._ids.pop(id(stream), None)
        if serial is not None:
            del self._all[serial]

    def of(self, host: str) -> list[SimStream]:
        return [s for s in self._all.values() if s.local == host]

    def __iter__(self) -> Iterable[SimStream]:
        return iter(list(self._all.values()))


class SimListener(SimulatedListener):
    def __init__(self, net: SimNetwork, host: str, port: int) -> None:
        self._net = net
        self.host = host
        self.port = port
        self._send, self._receive = trio.open_memory_channel[SimStream](math.inf)

    def offer(self, stream: SimStream) -> None:
        self._send.send_nowait(stream)

    async def accept(self) -> trio.abc.Stream:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            raise trio.ClosedResourceError("listener closed") from None

    def close_now(self) -> None:
        self._net.listeners.pop((self.host, self.port), None)
        self._send.close()
        while True:
            try:
                self._receive.receive_nowait().close_now()
            except (trio.WouldBlock, trio.EndOfChannel):
                break

    async def aclose(self) -> None:
        self.close_now()
        await trio.lowlevel.checkpoint()


class SimNetwork:
    def __init__(self, rng: random.Random, *, latency: tuple[float, float] = (0.0002, 0.002)):
        self.rng = rng
        self.latency = latency
        self.listeners: dict[tuple[str, int], SimListener] = {}
        self.streams = _Streams()
        self.blocked: set[tuple[str, str]] = set()  # (from, to)
        self.frozen: set[str] = set()
        self.slow: dict[str, float] = {}  # host -> extra seconds per chunk
        self._pipes: list[_Pipe] = []

    # what the nemesis does ------------------------------------------------------

    def block(self, src: str, dst: str) -> None:
        self.blocked.add((src, dst))
        self._changed()

    def heal(self) -> None:
        self.blocked.clear()
        self.slow.clear()
        self._changed()

    def freeze(self, host: str) -> None:
        self.frozen.add(host)

    def thaw(self, host: str) -> None:
        self.frozen.discard(host)
        self._changed()

    def reset_host(self, host: str) -> None:
        for stream in self.streams.of(host):
            stream.break_now()

    def crash(self, host: str) -> None:
        """The kernel's part of a process dying: listeners gone, peers read EOF."""
        for (name, _), listener in list(self.listeners.items()):
            if name == host:
                listener.close_now()
        for stream in self.streams.of(host):
            stream.close_now()
        self.frozen.discard(host)

    # carrying bytes -----------------------------------------------------------

    def carry(self, pipe: _Pipe, data: bytes) -> None:
        if (pipe.src, pipe.dst) in self.blocked:
            pipe.lost = True
        if pipe.lost or pipe.reader_gone:
            return
        low, high = self.latency
        delay = self.rng.uniform(low, high) + self.slow.get(pipe.src, 0.0)
        at = max(pipe.last_at, trio.current_time() + delay)
        pipe.last_at = at
        pipe.items.append((at, data))
        pipe.wake.unpark_all()

    def ready_at(self, pipe: _Pipe) -> float | None:
        """When the head chunk can be read; None while nothing can arrive."""
        if pipe.lost or not pipe.items:
            return None
        if pipe.src in self.frozen or pipe.dst in self.frozen:
            return None
        if (pipe.src, pipe.dst) in self.blocked:
            pipe.lost = True  # it was in flight when the partition began
            return None
        return pipe.items[0][0]

    def _changed(self) -> None:
        self._pipes = [p for p in self._pipes if not (p.reset or p.reader_gone)]
        for pipe in self._pipes:
            pipe.wake.unpark_all()

    # connecting ----------------------------------------------------------------

    def listen(self, host: str, port: int) -> SimListener:
        if (host, port) in self.listeners:
            raise OSError(errno.EADDRINUSE, f"{host}:{port} already in use")
        listener = SimListener(self, host, port)
        self.listeners[(host, port)] = listener
        return listener

    async def connect(self, src: str, host: str, port: int) -> SimStream:
        low, high = self.latency
        await trio.sleep(self.rng.uniform(low, high))
        if (src, host) in self.blocked or (host, src) in self.blocked:
            await trio.sleep(CONNECT_TIMEOUT)
            raise OSError(errno.ETIMEDOUT, f"connect to {host}:{port} timed out")
        listener = self.listeners.get((host, port))
        if listener is None:
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"{host}:{port} refused")
        there, back = _Pipe(src, host), _Pipe(host, src)
        self._pipes += [there, back]
        client = SimStream(self, src, there, back)
        listener.offer(SimStream(self, host, back, there))
        return client
