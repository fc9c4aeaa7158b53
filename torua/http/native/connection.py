"""One client connection: requests one after another, until close, idle or shutdown.

Requests on a connection are handled in the connection's own task, in order,
with no task per request: pipelined requests simply wait in the parser's
queue. A connection is *idle* while it waits for the first byte of a next
request; a shutting-down server closes idle connections at once and lets a
busy one finish its request (answered with ``connection: close``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from torua.http.native.exchange import Exchange, error_body, status_line
from torua.http.native.limits import ServerLimits
from torua.http.native.parser import ProtocolError, RequestReader

__all__ = ["Connection"]

log = logging.getLogger(__name__)

Handler = Callable[[Exchange, RequestReader, "Connection"], Awaitable[None]]
LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024


class Connection:
    def __init__(
        self,
        stream: trio.abc.Stream,
        handler: Handler,
        limits: ServerLimits,
        closing: Callable[[], bool],
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.stream = stream
        self.idle = True
        self.scope = trio.CancelScope()
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self._handler = handler
        self._limits = limits
        self._closing = closing
        self._on_error = on_error
        if isinstance(stream, trio.SocketStream):
            self.client = _address(stream.socket.getpeername())
            self.server = _address(stream.socket.getsockname())

    async def run(self) -> None:
        reader = RequestReader(self.stream, self._limits)
        try:
            with self.scope:
                await self._serve(reader)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client left mid-write
        except Exception:
            # A bug in a handler must cost one connection, never the server.
            log.exception("connection from %s failed", self.client)
        finally:
            await trio.aclose_forcefully(self.stream)

    async def _serve(self, reader: RequestReader) -> None:
        while not self._closing():
            self.idle = True
            try:
                head = await reader.next_head()
            except ProtocolError as exc:
                self.idle = False
                await self._refuse(exc)
                return
            if head is None:
                return
            self.idle = False
            exchange = Exchange(head, reader, self.stream, self._limits, self._closing)
            await self._handler(exchange, reader, self)
            if not exchange.response_done:
                return  # a response cut short: the client sees the connection end
            await exchange.drain()
            if not exchange.keep_alive or exchange.broken:
                if not exchange.body_done and not exchange.broken:
                    await self._linger()
                return

    async def _refuse(self, exc: ProtocolError) -> None:
        """Answer a request that cannot be parsed or is over a limit, then close."""
        if self._on_error is not None:
            self._on_error(exc.code)
        body = error_body(exc.code, exc.message)
        out = (
            status_line(exc.status)
            + b"content-length: %d\r\ncontent-type: application/json\r\n" % len(body)
            + b"connection: close\r\n\r\n"
            + body
        )
        try:
            await self.stream.send_all(out)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        await self._linger()

    async def _linger(self) -> None:
        """Close the sending side, then read what the client still sends, briefly.

        Closing a socket with unread bytes makes the kernel send a reset, which
        can destroy the error response before the client reads it; reading
        until the client closes (bounded in time and bytes) avoids that.
        """
        try:
            if isinstance(self.stream, trio.abc.HalfCloseableStream):
                await self.stream.send_eof()
            received = 0
            with trio.move_on_after(LINGER_SECONDS):
                while received < LINGER_BYTES:
                    data = await self.stream.receive_some(64 * 1024)
                    if not data:
                        break
                    received += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def _address(value: object) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return None
