"""A simulated host: its address on the fake network, its clock, its randomness.

A :class:`SimHost` is what :func:`torua.sim.current` answers inside the
tasks of one simulated process. httpx clients get a transport whose
connections are the network's streams (httpcore's pool over a network
backend), so Torua's httpx callers run unchanged.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
import trio

from torua.sim.seam import Host

from .network import SimNetwork, SimStream

__all__ = ["SimHost", "EPOCH"]

EPOCH = 1_800_000_000.0  # the simulated wall clock starts here (plus each host's skew)


class SimHost(Host):
    def __init__(self, name: str, net: SimNetwork, rng: random.Random) -> None:
        self.name = name
        self.net = net
        self.rng = rng
        self.skew = 0.0  # seconds this host's wall clock is off by

    async def open_tcp_stream(self, host: str, port: int) -> trio.abc.Stream:
        return await self.net.connect(self.name, host, port)

    async def open_tcp_listeners(self, port: int, host: str) -> list[trio.abc.Listener]:
        del host  # a simulated process listens on its own host's name
        return [self.net.listen(self.name, port)]

    def http_transport(self) -> httpx.AsyncBaseTransport:
        transport = httpx.AsyncHTTPTransport(verify=False)  # no TLS here; skips loading CAs
        # httpx builds its pool on the real network; the simulated pool takes
        # the same requests over this host's streams. No keep-alive expiry: it
        # reads the real monotonic clock, which would make a run depend on speed.
        transport._pool = httpcore.AsyncConnectionPool(
            network_backend=_Backend(self), keepalive_expiry=None, max_connections=64
        )
        return transport

    def time(self) -> float:
        return EPOCH + trio.current_time() + self.skew

    def time_ns(self) -> int:
        return int(self.time() * 1e9)

    def monotonic(self) -> float:
        return trio.current_time()

    def unique_hex(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def uniform(self, low: float, high: float) -> float:
        return self.rng.uniform(low, high)


class _Backend(httpcore.AsyncNetworkBackend):
    def __init__(self, host: SimHost) -> None:
        self._host = host

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with trio.fail_after(_forever(timeout)):
                stream = await self._host.net.connect(self._host.name, host, port)
        except trio.TooSlowError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        return _Stream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("no unix sockets in the simulation")

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: SimStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        try:
            with trio.fail_after(_forever(timeout)):
                return await self._stream.receive_some(max_bytes)
        except trio.TooSlowError as exc:
            raise httpcore.ReadTimeout("read timed out") from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        try:
            with trio.fail_after(_forever(timeout)):
                await self._stream.send_all(buffer)
        except trio.TooSlowError as exc:
            raise httpcore.WriteTimeout("write timed out") from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("no TLS in the simulation")

    def get_extra_info(self, info: str) -> Any:
        return {"is_readable": self._stream.has_input()}.get(info)


def _forever(timeout: float | None) -> float:
    return float("inf") if timeout is None else timeout
