"""One HTTP/1.1 exchange on a Trio stream: the client side, on httptools.

Why not httpx for the coordinator's own calls: on this machine an httpx call
costs ~0.7 ms of CPU, as much as the node spends answering it, and the
coordinator makes one or two for every client request. Writing the request
line and parsing the response with httptools (the parser the native server
uses) costs a small fraction of that.

Complete enough to be safe with any HTTP/1.1 server, and bounded: a head over
:data:`MAX_HEAD` or a body over ``max_body`` is refused as it arrives, never
buffered. ``Content-Length`` bodies, ``chunked`` bodies, bodies ending at EOF,
``Connection: close``, interim 1xx answers (skipped), and no body for HEAD,
204 and 304. :attr:`Response.reusable` says whether the connection may carry
another request.
"""

from __future__ import annotations

from dataclasses import dataclass

import httptools
import trio

from torua.errors import ToruaError
from torua.http.direct_io import receive_when_ready, send_now

__all__ = ["MAX_HEAD", "Response", "WireError", "encode_request", "exchange", "read_response"]

MAX_HEAD = 64 * 1024  # status line + headers
_READ = 65536


class WireError(ToruaError):
    """The peer broke the protocol or the connection ended mid-response.

    ``started`` is True once any byte of the response had arrived: a request
    that failed before that may not have been seen by the server at all.
    """

    def __init__(self, message: str, *, started: bool) -> None:
        super().__init__(message)
        self.started = started


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes
    reusable: bool


def encode_request(method: str, target: str, head: bytes, body: bytes | None) -> bytes:
    """Request line, ``head`` (the caller's ``Host`` and other header lines), length, body.

    A body (even an empty one, for PUT/POST) always carries ``Content-Length``
    so the server never has to guess where it ends.
    """
    start = f"{method} {target} HTTP/1.1\r\n".encode("latin-1")
    if body is None:
        return start + head + b"\r\n"
    return start + head + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body


class _HeadersDone(Exception):
    """Raised from the parser callback to stop after the head of a HEAD response."""


class _Reader:
    """httptools callbacks for one response (interim 1xx answers skipped)."""

    def __init__(self, head_only: bool, max_body: int) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self._head_only = head_only
        self._max_body = max_body
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.head_size = 0
        self.in_head = True
        self.keep_alive = False
        self.framed = False  # a length or chunking says where the body ends
        self.done = False
        self.extra = False  # bytes after the response: nothing we asked for
        self.error: WireError | None = None

    def on_message_begin(self) -> None:
        if self.done:
            self.extra = True
            return
        self.headers = {}
        self.head_size = 0
        self.in_head = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        if self.head_size > MAX_HEAD:
            raise WireError("response head too large", started=True)
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        parser = self.parser
        self.status = parser.get_status_code()
        self.keep_alive = parser.should_keep_alive()
        self.in_head = False
        length = self.headers.get("content-length")
        chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.framed = chunked or length is not None or self.status in (204, 304)
        if length is not None and length.isdigit() and int(length) > self._max_body:
            raise WireError(
                f"response body of {length} bytes is over {self._max_body}", started=True
            )
        if self._head_only and not 100 <= self.status < 200:
            raise _HeadersDone

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self._max_body:
            raise WireError(f"response body over {self._max_body} bytes", started=True)
        self.body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            # An interim answer (100 Continue) precedes the real one: wait for its head.
            self.status = 0
            self.in_head = True
            return
        self.done = True

    def feed(self, data: bytes) -> None:
        if self.done:
            self.extra = True
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _HeadersDone):
                self.done = True
            elif isinstance(cause, WireError):
                raise cause from None
            else:
                raise WireError(f"malformed response: {exc}", started=True) from None
        except httptools.HttpParserError as exc:
            if not self.done:
                raise WireError(f"malformed response: {exc}", started=True) from None
            self.extra = True


async def exchange(
    stream: trio.abc.Stream, request: bytes, *, head_only: bool = False, max_body: int
) -> Response:
    """Send ``request`` (already encoded), read one whole response.

    Raises :class:`WireError` for a connection that ends early or a malformed
    or oversized response, and lets the stream's own errors
    (``trio.BrokenResourceError``, ``OSError``) through unchanged.
    """
    await trio.lowlevel.checkpoint_if_cancelled()  # as send_all: no request once given up
    sent = send_now(stream, request)
    if sent < len(request):
        await stream.send_all(request[sent:] if sent else request)
    # else no yield here: receiving the answer below yields anyway
    return await read_response(stream, head_only=head_only, max_body=max_body)


async def read_response(
    stream: trio.abc.Stream, *, head_only: bool = False, max_body: int
) -> Response:
    """The whole response to a request already sent on ``stream`` (see :func:`exchange`)."""
    reader = _Reader(head_only, max_body)
    started = False
    fed_in_head = 0
    tail = b""
    while not reader.done:
        data = await receive_when_ready(stream, _READ, wait_first=not started)
        if not data:
            if not reader.in_head and not reader.framed:
                break  # the body runs to EOF, and this is it
            what = "mid-body" if started and not reader.in_head else "before the response"
            raise WireError(f"connection closed {what}", started=started)
        started = True
        if reader.in_head:
            fed_in_head += len(data)
            if fed_in_head > MAX_HEAD + _READ:
                raise WireError("response head too large", started=True)
        if head_only:
            tail = _feed_heads(reader, tail, bytes(data))
        else:
            reader.feed(bytes(data))
    reusable = reader.keep_alive and reader.framed and reader.done and not reader.extra
    body = reader.body[0] if len(reader.body) == 1 else b"".join(reader.body)
    return Response(reader.status, reader.headers, body, reusable)


def _feed_heads(reader: _Reader, tail: bytes, data: bytes) -> bytes:
    """Feed a HEAD response a head at a time, so the parser stops exactly where the
    answer's head ends and anything after it is seen as extra; returns the new tail.

    (httptools cannot be told that a response to HEAD has no body.)
    """
    while data:
        joined = tail + data
        end = joined.find(b"\r\n\r\n")
        cut = len(data) if end < 0 else end + 4 - len(tail)
        piece, data = data[:cut], data[cut:]
        reader.feed(piece)
        tail = (tail + piece)[-3:] if end < 0 else b""
        if reader.done and data:
            reader.extra = True
            break
    return tail
