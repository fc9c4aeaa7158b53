"""HTTP probes against scripted loopback servers; TCP probes against real 127.0.0.1 sockets."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio

from torua.config import HealthSettings
from torua.coordinator.nodes.http_probe import RawHttpProbe
from torua.coordinator.nodes.probes import describe_error, probe_tcp

from .scripted_http import scripted_server

HTTP = HealthSettings()
TCP = HealthSettings(kind="tcp")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answer(code: int, reason: str = "X") -> bytes:
    return f"HTTP/1.1 {code} {reason}\r\ncontent-length: 2\r\n\r\nok".encode()


def requests_in(log: list[bytes]) -> list[bytes]:
    return [entry.split(b"\r\n", 1)[0] for entry in log if entry != b"<connection>"]


# -- http -----------------------------------------------------------------------


async def test_http_200_passes_and_sends_get_health() -> None:
    log: list[bytes] = []
    async with trio.open_nursery() as nursery:
        port = await scripted_server(nursery, [answer(200)], log)
        probe = RawHttpProbe({})
        assert await probe(f"http://127.0.0.1:{port}", HTTP) is None
        probe.close()
        nursery.cancel_scope.cancel()
    assert requests_in(log) == [b"GET /health HTTP/1.1"]


@pytest.mark.parametrize(
    ("code", "error"), [(500, "HTTP 500"), (503, "HTTP 503"), (301, "HTTP 301"), (204, "HTTP 204")]
)
async def test_http_other_status_fails(code: int, error: str) -> None:
    async with trio.open_nursery() as nursery:
        port = await scripted_server(nursery, [answer(code)], [])
        probe = RawHttpProbe({})
        assert await probe(f"127.0.0.1:{port}", HTTP) == error
        probe.close()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("spelling", ["127.0.0.1:{}", "http://127.0.0.1:{}/", " 127.0.0.1:{} "])
async def test_http_address_with_or_without_scheme(spelling: str) -> None:
    async with trio.open_nursery() as nursery:
        port = await scripted_server(nursery, [answer(200)], [])
        probe = RawHttpProbe({})
        assert await probe(spelling.format(port), HTTP) is None
        probe.close()
        nursery.cancel_scope.cancel()


async def test_http_uses_the_live_path_setting() -> None:
    log: list[bytes] = []
    async with trio.open_nursery() as nursery:
        port = await scripted_server(nursery, [answer(200), answer(200)], log)
        probe = RawHttpProbe({})
        assert await probe(f"127.0.0.1:{port}", HealthSettings(path="/ready")) is None
        assert await probe(f"127.0.0.1:{port}", HealthSettings(path="/v1/health")) is None
        probe.close()
        nursery.cancel_scope.cancel()
    assert requests_in(log) == [b"GET /ready HTTP/1.1", b"GET /v1/health HTTP/1.1"]


async def test_http_probe_against_a_closed_port() -> None:
    probe = RawHttpProbe({})
    assert await probe(f"127.0.0.1:{closed_port()}", HTTP) == "connection refused"


async def test_http_connection_closed_without_an_answer_fails() -> None:
    async with trio.open_nursery() as nursery:
        port = await scripted_server(nursery, [None], [])
        probe = RawHttpProbe({})
        error = await probe(f"127.0.0.1:{port}", HTTP)
        assert error is not None and not error.startswith("HTTP")
        probe.close()
        nursery.cancel_scope.cancel()


async def test_http_hangs_rather_than_applying_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The probe leaves the deadline to the monitor's cancel scope."""

    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        probe = RawHttpProbe({})
        with trio.move_on_after(3600) as scope:
            await probe(f"127.0.0.1:{port}", HTTP)
        assert scope.cancelled_caught
        probe.close()
        nursery.cancel_scope.cancel()


# -- tcp ------------------------------------------------------------------------


async def test_tcp_probe_passes_against_a_listener() -> None:
    send, accepted = trio.open_memory_channel[int](2)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, _accept_and_close(send), 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        assert await probe_tcp(f"127.0.0.1:{port}", TCP) is None
        assert await RawHttpProbe({})(f"http://127.0.0.1:{port}", TCP) is None
        with trio.fail_after(5):  # the listener really saw both connections
            assert [await accepted.receive(), await accepted.receive()] == [port, port]
        nursery.cancel_scope.cancel()


async def test_tcp_probe_fails_against_a_closed_port() -> None:
    assert await probe_tcp(f"http://127.0.0.1:{closed_port()}", TCP) == "connection refused"


@pytest.mark.parametrize(
    ("addr", "error"),
    [
        ("", "bad address: no host in ''"),
        ("127.0.0.1:notaport", "bad address"),
        ("127.0.0.1:99999", "bad address"),
    ],
)
async def test_tcp_probe_bad_address(addr: str, error: str) -> None:
    result = await probe_tcp(addr, TCP)
    assert result is not None and result.startswith(error)


def test_describe_error_digs_out_the_os_error() -> None:
    group = ExceptionGroup("attempts", [ConnectionRefusedError(111, "Connection refused")])
    wrapped = OSError("all attempts to connect to 127.0.0.1:1 failed")
    wrapped.__cause__ = group
    assert describe_error(wrapped) == "connection refused"
    assert describe_error(OSError(113, "No route to host")) == "no route to host"
    assert describe_error(RuntimeError("odd")) == "odd"
    assert describe_error(RuntimeError()) == "RuntimeError"


def _accept_and_close(
    accepted: trio.MemorySendChannel[int],
) -> Callable[[trio.SocketStream], Awaitable[None]]:
    async def handler(stream: trio.SocketStream) -> None:
        await accepted.send(stream.socket.getsockname()[1])
        await stream.aclose()

    return handler


# The raw HTTP probe the coordinator uses for http:// nodes (torua.coordinator.nodes.http_probe).


async def test_raw_probe_keeps_one_connection_and_sends_the_coordinator_headers() -> None:
    from torua.coordinator.nodes.http_probe import RawHttpProbe

    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    seen: list[bytes] = []

    async with trio.open_nursery() as nursery:
        port = await scripted_server(nursery, [ok, ok, ok], seen)
        probe = RawHttpProbe({"X-Torua-Coordinator": "c1"})
        settings = HealthSettings(interval=1.0, timeout=0.5)
        for addr in (f"127.0.0.1:{port}", f"http://127.0.0.1:{port}", f"127.0.0.1:{port}"):
            assert await probe(addr, settings) is None
        assert seen.count(b"<connection>") == 2  # the two spellings share none; reuse works
        assert all(b"X-Torua-Coordinator: c1" in r for r in seen if r != b"<connection>")
        assert all(r.startswith(b"GET /health HTTP/1.1") for r in seen if r != b"<connection>")
        probe.close()
        nursery.cancel_scope.cancel()


async def test_raw_probe_fails_on_status_close_and_refused() -> None:
    from torua.coordinator.nodes.http_probe import RawHttpProbe

    settings = HealthSettings(interval=1.0, timeout=0.5)
    async with trio.open_nursery() as nursery:
        seen: list[bytes] = []
        port = await scripted_server(
            nursery,
            [
                b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            ],
            seen,
        )
        probe = RawHttpProbe({})
        assert await probe(f"127.0.0.1:{port}", settings) == "HTTP 500"
        assert await probe(f"127.0.0.1:{port}", settings) is None  # then closes it
        assert await probe(f"127.0.0.1:{port}", settings) is None  # chunked: judged, closed
        assert seen.count(b"<connection>") == 2
        probe.close()
        nursery.cancel_scope.cancel()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert await probe(f"127.0.0.1:{closed}", settings) is not None
    assert await probe("https://127.0.0.1:1", settings) is not None  # refused, over TLS too
