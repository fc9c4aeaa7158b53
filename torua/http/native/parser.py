"""Request heads and body pieces out of a byte stream, with httptools.

httptools pushes callbacks as bytes are fed; :class:`RequestReader` turns
them into a queue of events (a head, body pieces, the end of a message) that
the connection pulls one at a time. Bytes are read from the socket only when
the queue is empty, so a pipelined client or a large body never makes the
server buffer more than one read ahead. Every size limit is checked while
parsing, before anything unbounded is kept.
"""

from __future__ import annotations

import os
from collections import deque
from urllib.parse import unquote

import httptools
import trio

from torua.errors import ApiError
from torua.http.direct_io import receive_when_ready
from torua.http.native.limits import ServerLimits

__all__ = ["BODY", "END", "Head", "ProtocolError", "RequestReader"]

RECEIVE_SIZE = 64 * 1024
BODY = 1
END = 2


class ProtocolError(ApiError):
    """A request the server answers itself (400, 408, 413, 414, 431), then closes.

    An :class:`ApiError`, so a data route reading a body that breaks a limit
    answers it in the usual JSON shape.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status


class Head:
    """One request's line and headers (names lower case)."""

    __slots__ = (
        "content_length",
        "expect_continue",
        "has_body",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "path",
        "query",
        "raw_path",
    )

    def __init__(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        http_version: str,
        keep_alive: bool,
    ) -> None:
        self.method = method
        raw_path, _, self.query = target.partition(b"?")
        if not raw_path.startswith(b"/"):
            # absolute-form (``http://host/path``): only the path is routed
            parsed = httptools.parse_url(target)
            raw_path, self.query = parsed.path or b"/", parsed.query or b""
        self.raw_path = raw_path
        try:
            self.path = unquote(raw_path.decode("ascii"))
        except UnicodeDecodeError:
            raise ProtocolError(400, "bad_request", "the request path is not ASCII") from None
        self.headers = headers
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.content_length: int | None = None
        self.expect_continue = False
        chunked = False
        for name, value in headers:
            if name == b"content-length":
                if not value.isdigit():
                    raise ProtocolError(400, "bad_request", "Content-Length is not a number")
                self.content_length = int(value)
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"expect" and value.lower() == b"100-continue":
                self.expect_continue = True
        # A request body has a length or is chunked; otherwise there is none (RFC 9112 §6.3).
        self.has_body = chunked or bool(self.content_length)

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def _body_piece(event: object | None) -> bytes | None:
    """A body event as :meth:`RequestReader.next_body` answers it."""
    if event is None:
        raise ProtocolError(400, "bad_request", "the connection closed inside a body")
    if event is END:
        return None
    assert type(event) is bytes
    return event


class RequestReader:
    """Parses requests off ``stream``; :meth:`next_head` and :meth:`next_body` pull them."""

    def __init__(self, stream: trio.abc.ReceiveStream, limits: ServerLimits) -> None:
        self._stream = stream
        self._limits = limits
        self._parser = httptools.HttpRequestParser(self)
        self._events: deque[object] = deque()
        self._url = bytearray()
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0  # url and header bytes of the head being parsed
        self._head_fed = 0  # bytes fed while a head is incomplete (a value still being read)
        self._in_head = False  # bytes of a head have arrived, the head is not complete
        self._failure: ProtocolError | None = None
        self._upgraded = False
        self._bodiless = False
        self.eof = False
        self.buffered = 0  # bytes queued in body events
        # The socket's descriptor, for reads that need not wait (:meth:`_read_ready`).
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1

    # httptools callbacks -------------------------------------------------

    def on_message_begin(self) -> None:
        self._url.clear()
        self._headers = []
        self._head_size = 0
        self._head_fed = 0
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if len(self._url) > self._limits.max_url:
            raise ProtocolError(
                414, "uri_too_long", f"the request target is over {self._limits.max_url} bytes"
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._limits.max_head:
            raise ProtocolError(
                431,
                "headers_too_large",
                f"a request head is limited to {self._limits.max_head} bytes",
            )
        if len(self._headers) > self._limits.max_headers:
            raise ProtocolError(
                431,
                "headers_too_large",
                f"a request has at most {self._limits.max_headers} header fields",
            )

    def on_headers_complete(self) -> None:
        parser = self._parser
        self._in_head = False
        head = Head(
            parser.get_method().decode("ascii"),
            bytes(self._url),
            self._headers,
            parser.get_http_version(),
            parser.should_keep_alive(),
        )
        if head.content_length is not None and head.content_length > self._limits.max_body:
            raise ProtocolError(
                413, "too_large", f"request bodies are limited to {self._limits.max_body} bytes"
            )
        self._events.append(head)
        self._bodiless = not head.has_body

    def on_body(self, body: bytes) -> None:
        self.buffered += len(body)
        self._events.append(body)

    def on_message_complete(self) -> None:
        if not self._bodiless:  # nobody reads the end of a request known to have no body
            self._events.append(END)

    # pulling -------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Parse ``data``; a malformed request is remembered and raised when reached."""
        if self._failure is not None or self._upgraded:
            return
        if not data:
            self.eof = True
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Torua speaks no other protocol: answer the request, then close.
            self._upgraded = True
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, ProtocolError):
                self._failure = cause
            else:
                self._failure = ProtocolError(400, "bad_request", "malformed HTTP request")
        except httptools.HttpParserError as exc:
            self._failure = ProtocolError(400, "bad_request", f"malformed HTTP request: {exc}")
        if self._in_head:
            # httptools holds a header value until it ends: bound that too.
            self._head_fed += len(data)
            if self._head_fed > 2 * self._limits.max_head + RECEIVE_SIZE and not self._failure:
                self._failure = ProtocolError(
                    431,
                    "headers_too_large",
                    f"a request head is limited to {self._limits.max_head} bytes",
                )

    @property
    def started(self) -> bool:
        """Whether any byte of the next request has arrived."""
        return bool(self._events) or self._in_head or self._failure is not None

    @property
    def closing(self) -> bool:
        """No request can follow the queued ones (end of stream, an upgrade)."""
        return self._upgraded or self.eof

    async def _receive(self) -> bytes:
        """The next bytes; a reset connection reads as its end."""
        try:
            data = await self._stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""
        return data if type(data) is bytes else bytes(data)

    async def _receive_waiting(self) -> bytes:
        """The next bytes, once :meth:`_read_ready` found the socket empty: wait for
        it to turn readable first rather than fail a read again."""
        if self._fd < 0:
            return await self._receive()
        try:
            return await receive_when_ready(self._stream, RECEIVE_SIZE)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    def _read_ready(self) -> None:
        """Parse what the socket already holds, without waiting.

        Under load the next request has usually arrived by the time the last
        answer is sent. Reading it straight off the descriptor skips what a
        wait costs: a cancel scope with a deadline, the stream's wrappers and a
        trip through the scheduler, together about a fifth of the Python time
        of a request. Nothing there yet (or not a socket): the caller waits
        as before. The connection still yields once per request, when it
        sends its answer.
        """
        if self._fd < 0 or self.eof or self._upgraded or self._failure is not None:
            return
        try:
            data = os.read(self._fd, RECEIVE_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # reset or closed: the end, as :meth:`_receive` reads it
        self.feed(data)

    def _head_ready(self) -> bool:
        return bool(self._events) and type(self._events[0]) is Head

    async def _pull(self) -> object | None:
        while not self._events:
            if self._failure is not None:
                raise self._failure
            if self.eof or self._upgraded:
                return None
            self.feed(await self._receive())
        event = self._events.popleft()
        if type(event) is bytes:
            self.buffered -= len(event)
        return event

    async def next_head(self) -> Head | None:
        """The next request head, or None at a clean end of the stream.

        Waits ``idle_timeout`` for a first byte (then returns None: an idle
        connection just closes), and ``read_timeout`` for the whole head
        once it has begun (then 408).
        """
        if not self.started:
            self._read_ready()
        if self._head_ready():  # the whole head is here: nothing to wait for
            head = self._events.popleft()
            assert isinstance(head, Head)
            return head
        limits = self._limits
        # One cancel scope for both waits (a scope costs as much as parsing the head).
        with trio.CancelScope() as scope:
            if not self.started:
                scope.deadline = trio.current_time() + limits.idle_timeout
                while not self.started and not self.eof and not self._upgraded:
                    self.feed(await self._receive_waiting())
                if not self.started:
                    return None
            if not self._head_ready():
                scope.deadline = trio.current_time() + limits.read_timeout
            event = await self._pull()
            if event is None:
                if self._in_head:
                    raise ProtocolError(400, "bad_request", "the request ended in its head")
                return None
            if not isinstance(event, Head):  # pragma: no cover - the parser orders events
                raise ProtocolError(400, "bad_request", "malformed HTTP request")
            return event
        if not self.started:
            return None  # idle for idle_timeout: the connection just closes
        raise ProtocolError(
            408, "timeout", f"the request head took longer than {limits.read_timeout:g}s"
        )

    async def next_body(self) -> bytes | None:
        """The next piece of the current body, or None at its end."""
        if self._events:  # parsed already (a small body comes with its head): no wait
            event = await self._pull()
        else:  # a cancel scope only around a wait: it costs as much as parsing the head
            with trio.move_on_after(self._limits.read_timeout):
                event = await self._pull()
                return _body_piece(event)
            raise ProtocolError(
                408, "timeout", f"no body bytes arrived for {self._limits.read_timeout:g}s"
            )
        return _body_piece(event)

    async def wait_closed(self) -> None:
        """Return once the client closes; read ahead (bounded) meanwhile.

        An ASGI app waits on this for ``http.disconnect`` (an event stream
        ends when its reader leaves). Bytes of a pipelined next request are
        parsed and queued, up to one head and a read of body.
        """
        while not self.eof and self._failure is None and not self._upgraded:
            if self.buffered > RECEIVE_SIZE or len(self._events) > 64:
                await trio.sleep_forever()  # enough queued; the handler will finish first
            self.feed(await self._receive())
        if not self.eof:
            await trio.sleep_forever()
