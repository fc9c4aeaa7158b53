"""The ceiling: the least a Trio + httptools server can do per request.

``python -m torua.bench.ceiling`` listens on a loopback port, prints
``READY http://127.0.0.1:PORT`` and answers GET and PUT from a dict, keep-alive,
nothing else. The throughput benchmark measures it in the same run as the
real servers, so "how far is Torua from what Trio can do" is one comparison
under the same machine load.
"""

from __future__ import annotations

import sys

import httptools
import trio

__all__ = ["main"]


class _Conn:
    def __init__(self, store: dict[bytes, bytes]) -> None:
        self.store = store
        self.parser = httptools.HttpRequestParser(self)
        self.out: list[bytes] = []
        self.url = b""
        self.body: list[bytes] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.parser.get_method() == b"PUT":
            self.store[self.url] = b"".join(self.body)
            self.out.append(b"HTTP/1.1 204 No Content\r\n\r\n")
        else:
            value = self.store.get(self.url)
            if value is None:
                self.out.append(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            else:
                head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(value)
                self.out.append(head + value)
        self.url, self.body = b"", []


async def _serve(stream: trio.SocketStream, store: dict[bytes, bytes]) -> None:
    conn = _Conn(store)
    try:
        while data := await stream.receive_some(65536):
            conn.parser.feed_data(data)
            if conn.out:
                await stream.send_all(b"".join(conn.out))
                conn.out.clear()
    except (trio.BrokenResourceError, httptools.HttpParserError):
        pass


async def _main() -> None:
    store = {f"/data/k{i}".encode(): b"x" * 100 for i in range(1000)}
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(f"READY http://127.0.0.1:{listeners[0].socket.getsockname()[1]}", flush=True)

    async def handler(stream: trio.SocketStream) -> None:
        await _serve(stream, store)

    await trio.serve_listeners(handler, listeners)


def main() -> int:
    try:
        trio.run(_main)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
