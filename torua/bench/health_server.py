"""A tiny keep-alive HTTP server answering every request ``200 {"status":"ok"}``.

``python -m torua.bench.health_server COUNT`` binds COUNT loopback ports and
prints ``READY port1 port2 ...``. The probe-lag benchmark points its 1,000
simulated nodes at these ports; running them in their own process keeps their
CPU out of the monitor's measurement. Raw Trio, so the servers stay cheap.
"""

from __future__ import annotations

import functools
import sys

import trio

__all__ = ["main"]

_BODY = b'{"status":"ok"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)
MAX_HEADER = 16384


async def _handle(stream: trio.SocketStream) -> None:
    buffer = b""
    try:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            buffer += data
            while b"\r\n\r\n" in buffer:  # GET requests carry no body
                _, buffer = buffer.split(b"\r\n\r\n", 1)
                await stream.send_all(RESPONSE)
            if len(buffer) > MAX_HEADER:
                return
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
    finally:
        await stream.aclose()


async def _serve(count: int) -> None:
    async with trio.open_nursery() as nursery:
        ports = []
        for _ in range(count):
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, _handle, 0, host="127.0.0.1")
            )
            ports.append(listeners[0].socket.getsockname()[1])
        print("READY " + " ".join(str(p) for p in ports), flush=True)


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 4
    try:
        trio.run(_serve, count)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
