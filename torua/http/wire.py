"""One HTTP/1.1 exchange on a Trio stream: the client side, without a library.

Why not httpx for the coordinator's own calls: on this machine an httpx call
costs ~0.7 ms of CPU (LESSONS), as much as the node spends answering it, and
the coordinator makes one or two for every client request. Writing the request
line and reading a response by hand costs a small fraction of that.

Only what Torua's nodes (hypercorn) send is needed, but the reader is
complete enough to be safe with any HTTP/1.1 server: ``Content-Length``
bodies, ``chunked`` bodies, bodies ending at EOF, ``Connection: close``,
interim 1xx answers (skipped), and no body for HEAD, 204 and 304.
:attr:`Response.reusable` says whether the connection may carry another request.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

__all__ = ["MAX_HEAD", "Response", "WireError", "encode_request", "exchange"]

MAX_HEAD = 64 * 1024  # status line + headers
_READ = 65536


class WireError(Exception):
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


async def exchange(
    stream: trio.abc.Stream, request: bytes, *, head_only: bool = False, max_body: int
) -> Response:
    """Send ``request`` (already encoded), read one whole response.

    Raises :class:`WireError` for a connection that ends early or a malformed
    or oversized response, and lets the stream's own errors
    (``trio.BrokenResourceError``, ``OSError``) through unchanged.
    """
    await stream.send_all(request)
    buffer = bytearray()
    while True:
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > MAX_HEAD:
                raise WireError("response head too large", started=True)
            data = await stream.receive_some(_READ)
            if not data:
                raise WireError("connection closed before the response", started=bool(buffer))
            buffer += data
        status, headers = _parse_head(bytes(buffer[:end]))
        del buffer[: end + 4]
        if not 100 <= status < 200:
            break  # an interim answer (100 Continue) precedes the real one: skip it
    rest = buffer
    reusable = headers.get("connection", "").lower() != "close"
    leftover: bytes | bytearray
    if head_only or status in (204, 304):
        body, leftover = b"", rest
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body, leftover = await _read_chunked(stream, rest, max_body)
    elif (length := headers.get("content-length")) is not None:
        if not length.isdigit():
            raise WireError(f"bad content-length {length!r}", started=True)
        body, leftover = await _read_exactly(stream, rest, int(length), max_body)
    else:  # the body runs to EOF
        body, leftover, reusable = await _read_to_eof(stream, rest, max_body), b"", False
    # Anything after the response is nothing we asked for: do not reuse the connection.
    return Response(status, headers, body, reusable and not leftover)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise WireError(f"bad status line {lines[0][:80]!r}", started=True)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise WireError(f"bad header line {line[:80]!r}", started=True)
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _read_exactly(
    stream: trio.abc.Stream, rest: bytearray, length: int, max_body: int
) -> tuple[bytes, bytes]:
    if length > max_body:
        raise WireError(f"response body of {length} bytes is over {max_body}", started=True)
    while len(rest) < length:
        data = await stream.receive_some(max(_READ, length - len(rest)))
        if not data:
            raise WireError("connection closed mid-body", started=True)
        rest += data
    return bytes(rest[:length]), bytes(rest[length:])


async def _read_to_eof(stream: trio.abc.Stream, rest: bytearray, max_body: int) -> bytes:
    while data := await stream.receive_some(_READ):
        rest += data
        if len(rest) > max_body:
            raise WireError(f"response body over {max_body} bytes", started=True)
    return bytes(rest)


async def _read_chunked(
    stream: trio.abc.Stream, rest: bytearray, max_body: int
) -> tuple[bytes, bytes]:
    body = bytearray()
    while True:
        while (eol := rest.find(b"\r\n")) < 0:
            rest += await _more(stream)
        size_text = bytes(rest[:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise WireError(f"bad chunk size {size_text[:20]!r}", started=True) from None
        del rest[: eol + 2]
        if size == 0:
            break
        if len(body) + size > max_body:
            raise WireError(f"response body over {max_body} bytes", started=True)
        while len(rest) < size + 2:
            rest += await _more(stream)
        body += rest[:size]
        del rest[: size + 2]
    while (end := rest.find(b"\r\n")) != 0:  # trailers, up to the blank line
        if end > 0:
            del rest[: end + 2]
        else:
            rest += await _more(stream)
    return bytes(body), bytes(rest[2:])


async def _more(stream: trio.abc.Stream) -> bytes | bytearray:
    data = await stream.receive_some(_READ)
    if not data:
        raise WireError("connection closed mid-body", started=True)
    return data
