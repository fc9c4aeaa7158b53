"""A small app for the native server's tests: a data route, a Quart app, a response parser.

The data route (``/kv/{key}``) is answered natively, like the real data
routes; everything else reaches a Quart app through the ASGI bridge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httptools
import trio
import trio.testing
from quart import Response, request
from quart_trio import QuartTrio

from torua.errors import BadRequest
from torua.http.exchange import Reply, Request
from torua.http.native import NativeServer, ServerLimits

MAX_VALUE = 1000
LIMITS = ServerLimits(
    max_url=512,
    max_head=4096,
    max_headers=20,
    max_body=20_000,
    read_timeout=2.0,
    idle_timeout=2.0,
    drain_limit=4096,
    graceful=2.0,
)


class KvRoute:
    """``GET|PUT /kv/{key}`` from a dict; values up to MAX_VALUE bytes."""

    template = "/kv/<key>"

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    def match(self, method: str, path: str) -> str | None:
        if method in ("GET", "PUT") and path.startswith("/kv/") and len(path) > 4:
            return path[4:]
        return None

    async def handle(self, req: Request, matched: object) -> Reply:
        assert isinstance(matched, str)
        if matched == "boom":
            raise RuntimeError("a bug in a handler")
        if req.method == "PUT":
            self.values[matched] = await req.body(MAX_VALUE, "values")
            return Reply(204)
        if matched not in self.values:
            raise BadRequest(f"no key {matched!r}", code="key_not_found")
        return Reply(200, self.values[matched], content_type=b"application/octet-stream")


def make_app() -> QuartTrio:
    app = QuartTrio("native-test")
    app.config["MAX_CONTENT_LENGTH"] = None

    @app.route("/echo", methods=["POST", "PUT"])
    async def echo() -> Response:
        return Response(await request.get_data(), content_type="application/octet-stream")

    @app.get("/hello")
    async def hello() -> Response:
        return Response(b"hello", content_type="text/plain")

    @app.get("/stream")
    async def stream() -> Response:
        async def parts():  # type: ignore[no-untyped-def]
            for i in range(3):
                yield f"part {i}\n".encode()

        response = Response(parts(), content_type="text/plain")
        response.timeout = None
        return response

    return app


def make_server(limits: ServerLimits = LIMITS) -> NativeServer:
    return NativeServer(make_app(), [KvRoute()], limits=limits)


@dataclass
class Parsed:
    status: int
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""


class ResponseCollector:
    """Every response in a byte stream (httptools), and whether it was cut off."""

    def __init__(self, head_requests: int = 0) -> None:
        self.responses: list[Parsed] = []
        self._current: Parsed | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.error: Exception | None = None

    def on_message_begin(self) -> None:
        self._current = Parsed(0)

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._current is not None
        self._current.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        assert self._current is not None
        self._current.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        assert self._current is not None
        self._current.body += body

    def on_message_complete(self) -> None:
        assert self._current is not None
        if self._current.status != 100:
            self.responses.append(self._current)
        self._current = None

    def feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = exc


async def converse(
    server: NativeServer, pieces: list[bytes], *, expect: int | None = None, within: float = 10.0
) -> ResponseCollector:
    """Send ``pieces`` (letting the server read between them) and collect the answers.

    With ``expect``, read until that many responses came and then close; without
    it, close our sending side after the last piece and read until the server
    closes. Either way a server that waits for something that never comes
    fails the test instead of passing it.
    """
    client, server_side = trio.testing.memory_stream_pair()
    collector = ResponseCollector()
    with trio.fail_after(within):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.serve_stream, server_side)

            async def read_all() -> None:
                while data := await client.receive_some(65536):
                    collector.feed(bytes(data))
                    if expect is not None and len(collector.responses) >= expect:
                        break
                await client.aclose()

            nursery.start_soon(read_all)
            try:
                for piece in pieces:
                    await client.send_all(piece)
                    await trio.testing.wait_all_tasks_blocked()
                if expect is None:
                    await client.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the server closed first (an error response)
    return collector
