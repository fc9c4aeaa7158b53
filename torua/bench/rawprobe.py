"""A minimal HTTP/1.1 health probe on raw Trio streams, for comparison only.

One kept-alive connection per node; a probe writes ``GET <path>`` and reads
the status line, headers and ``Content-Length`` body. It shows what an HTTP
probe costs without httpx's machinery, so the lead can see how much of the
probe-lag budget goes to the client library rather than to the monitor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import trio

from torua.config import HealthSettings, normalize_url
from torua.coordinator.probes import Probe, describe_error

__all__ = ["raw_http_probe"]

MAX_RESPONSE = 65536


async def _exchange(stream: trio.SocketStream, request: bytes) -> int:
    """Send one request, read one response; return its status code."""
    await stream.send_all(request)
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(4096)
        if not data or len(buffer) > MAX_RESPONSE:
            raise ConnectionResetError("connection closed mid-response")
        buffer += data
    head, body = buffer.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        data = await stream.receive_some(4096)
        if not data:
            raise ConnectionResetError("connection closed mid-body")
        body += data
    return status


@asynccontextmanager
async def raw_http_probe() -> AsyncIterator[Probe]:
    streams: dict[str, trio.SocketStream] = {}

    async def probe(addr: str, settings: HealthSettings) -> str | None:
        url = urlsplit(normalize_url(addr))
        host, port = url.hostname or "127.0.0.1", url.port or 80
        request = (
            f"GET {url.path}{settings.path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
        ).encode()
        stream = streams.pop(addr, None)
        try:
            if stream is None:
                stream = await trio.open_tcp_stream(host, port)
            status = await _exchange(stream, request)
        except (OSError, trio.BrokenResourceError, ValueError, IndexError) as exc:
            if stream is not None:
                stream.socket.close()
            return describe_error(exc)
        except BaseException:  # cancelled mid-exchange (timeout): the stream is unusable
            if stream is not None:
                stream.socket.close()
            raise
        streams[addr] = stream
        return None if status == 200 else f"HTTP {status}"

    try:
        yield probe
    finally:
        for stream in streams.values():
            stream.socket.close()
