"""One request on a connection: reading its body, writing its response.

Both kinds of handler use this: the native data routes (through
:class:`NativeRequest`) and the ASGI bridge. It keeps the HTTP/1.1
bookkeeping in one place: ``100 Continue`` before the first body read, a
413 once a body passes the server's limit, Content-Length or chunked
framing, no body on HEAD, and whether the connection can carry another
request afterwards.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable
from http import HTTPStatus

import trio

from torua.errors import TooLarge
from torua.http.direct_io import send_now
from torua.http.errors import collect_within
from torua.http.native.limits import ServerLimits
from torua.http.native.parser import Head, ProtocolError, RequestReader

__all__ = ["Exchange", "NativeRequest", "error_body", "send_error", "status_line"]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode("ascii")
    return line


class Exchange:
    """The current request of a connection and the state of its response."""

    __slots__ = (
        "_closing",
        "_limits",
        "_reader",
        "_stream",
        "body_done",
        "body_read",
        "broken",
        "chunked",
        "continue_sent",
        "head",
        "responding",
        "keep_alive",
        "open_ended",
        "response_done",
        "response_started",
        "sent",
        "status",
    )

    def __init__(
        self,
        head: Head,
        reader: RequestReader,
        stream: trio.abc.Stream,
        limits: ServerLimits,
        closing: Callable[[], bool],
    ) -> None:
        self.head = head
        self._closing = closing
        self._reader = reader
        self._stream = stream
        self._limits = limits
        self.body_done = not head.has_body
        self.body_read = 0
        self.continue_sent = False
        self.keep_alive = head.keep_alive and not reader.closing
        self.response_started = False
        self.response_done = False
        self.chunked = False
        self.open_ended = False  # a streamed response of unknown length (an event stream)
        self.broken = False  # the client went away mid-response
        self.sent = 0
        self.status = 0
        self.responding: trio.Event | None = None  # made by whoever waits for it

    def _responding(self) -> None:
        if self.responding is not None and (self._open_ended() or self.broken):
            self.responding.set()

    def _open_ended(self) -> bool:
        return self.open_ended

    async def wait_responding(self) -> None:
        """Return once an open-ended response (an event stream) began, or a write failed.

        Called when the client has closed its side: for an open-ended stream
        that means its reader left; a response of known length is still
        written (the client may only have half-closed after its request).
        """
        if self._open_ended() or self.broken:
            return
        if self.responding is None:
            self.responding = trio.Event()
        await self.responding.wait()

    # request body ----------------------------------------------------------

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's pieces as they arrive."""
        while (chunk := await self.read_chunk()) is not None:
            yield chunk

    async def read_chunk(self) -> bytes | None:
        """The next piece of the body, or None once it has all been read."""
        if self.body_done:
            return None
        if self.head.expect_continue and not self.continue_sent and not self.response_started:
            self.continue_sent = True
            await self._write(_CONTINUE)
        try:
            chunk = await self._reader.next_body()
        except ProtocolError:
            self.keep_alive = False  # the body's framing is lost
            raise
        if chunk is None:
            self.body_done = True
            return None
        self.body_read += len(chunk)
        if self.body_read > self._limits.max_body:
            self.keep_alive = False
            raise ProtocolError(
                413, "too_large", f"request bodies are limited to {self._limits.max_body} bytes"
            )
        return chunk

    async def drain(self) -> None:
        """After the response: read what is left of the body, or give up the connection.

        A client told nothing (no ``100 Continue``) may never send the body it
        announced, so waiting for it would hang; such a connection closes.
        """
        if self.body_done or not self.keep_alive:
            return
        if self.head.expect_continue and not self.continue_sent:
            self.keep_alive = False
            return
        limit = self.body_read + self._limits.drain_limit
        try:
            while await self.read_chunk() is not None:
                if self.body_read > limit:
                    self.keep_alive = False
                    return
        except ProtocolError:
            self.keep_alive = False

    # response --------------------------------------------------------------

    async def _write(self, data: bytes) -> None:
        if self.broken:
            return
        try:
            # The same checkpoints as send_all: a cancellation is seen before
            # writing, and the task yields to the others after.
            await trio.lowlevel.checkpoint_if_cancelled()
            sent = send_now(self._stream, data)
            if sent == len(data):
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            await self._stream.send_all(data[sent:] if sent else data)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            self.broken = True
            self.keep_alive = False
            self._responding()

    def _head_bytes(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytearray:
        out = bytearray(status_line(status))
        for name, value in headers:
            out += name
            out += b": "
            out += value
            out += b"\r\n"
        if self._closing():
            self.keep_alive = False  # the server is shutting down: this is the last answer
        if not self.keep_alive:
            out += b"connection: close\r\n"
        out += b"\r\n"
        return out

    async def respond(
        self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """A whole response in one write; ``headers`` carry its Content-Length."""
        self.response_started = self.response_done = True
        self.status = status
        self._unread_body_closes()
        out = self._head_bytes(status, headers)
        if self.head.method != "HEAD":
            out += body
            self.sent += len(body)
        await self._write(bytes(out))

    async def start(
        self, status: int, headers: list[tuple[bytes, bytes]], length: bool, first: bytes = b""
    ) -> None:
        """Begin a streamed response with its ``first`` piece, in one write.

        Without a Content-Length the body is chunked (HTTP/1.1) or ends with
        the connection (HTTP/1.0).
        """
        self.response_started = True
        self.status = status
        self._unread_body_closes()
        self.open_ended = not length
        if not length and self.head.method != "HEAD":
            if self.head.http_version == "1.0":
                self.keep_alive = False  # the end of the body is the end of the connection
            else:
                self.chunked = True
                headers = [*headers, (b"transfer-encoding", b"chunked")]
        self._responding()
        out = self._head_bytes(status, headers)
        if first and self.head.method != "HEAD":
            self.sent += len(first)
            out += b"%x\r\n%s\r\n" % (len(first), first) if self.chunked else first
        await self._write(bytes(out))

    async def stream(self, data: bytes, more: bool) -> None:
        if self.head.method == "HEAD":
            data = b""
        if more is False:
            self.response_done = True
        self.sent += len(data)
        if not self.chunked:
            if data:
                await self._write(data)
            return
        out = b"%x\r\n%s\r\n" % (len(data), data) if data else b""
        if not more:
            out += b"0\r\n\r\n"
        if out:
            await self._write(out)

    def _unread_body_closes(self) -> None:
        # Answering before a body the client was never invited to send (no
        # 100 Continue yet): it may or may not come, so the connection closes.
        if not self.body_done and self.head.expect_continue and not self.continue_sent:
            self.keep_alive = False


class NativeRequest:
    """An :class:`Exchange` as the :class:`torua.http.exchange.Request` a data route reads."""

    __slots__ = ("_exchange", "method", "path")

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self.method = exchange.head.method
        self.path = exchange.head.path

    def header(self, name: bytes) -> bytes | None:
        return self._exchange.head.header(name)

    async def body(self, limit: int, what: str) -> bytes:
        """The whole body, or 413 once it passes ``limit`` (read to its end first).

        Read to its end (up to DRAIN_LIMIT) because a client still writing
        its body never reads an early answer.
        """
        exchange = self._exchange
        length = exchange.head.content_length
        if length is not None and length > limit and exchange.head.expect_continue:
            raise TooLarge(f"{what} are limited to {limit} bytes")  # never invited: not sent
        return await collect_within(exchange.chunks(), limit, what)


def error_body(code: str, message: str) -> bytes:
    """Torua's JSON error shape, as every other error of the server."""
    return json.dumps({"error": code, "message": message}).encode() + b"\n"


async def send_error(exchange: Exchange, status: int, code: str, message: str) -> None:
    body = error_body(code, message)
    headers = [
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/json"),
    ]
    await exchange.respond(status, headers, body)
