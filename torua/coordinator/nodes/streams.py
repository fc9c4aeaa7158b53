"""What the node connection pool asks of one stream without awaiting: close it, or
see whether it has anything to read. Plain sockets, TLS over them, and the
simulator's streams alike."""

from __future__ import annotations

import select

import trio

from torua.http.wire import WireError
from torua.sim import seam

__all__ = ["StaleConnection", "close_now", "has_input"]


class StaleConnection(WireError):
    """A kept connection failed before any byte of the answer: the node may not have
    seen the request."""

    def __init__(self, message: str) -> None:
        super().__init__(message, started=False)


def _socket(stream: trio.abc.Stream) -> trio.socket.SocketType:
    if isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    assert isinstance(stream, trio.SocketStream)
    return stream.socket


def close_now(stream: trio.abc.Stream) -> None:
    """Close at once, without a TLS goodbye: usable where nothing may be awaited."""
    if isinstance(stream, seam.SimulatedStream):
        stream.close_now()
        return
    _socket(stream).close()


def has_input(stream: trio.abc.Stream) -> bool:
    """Anything to read (bytes, EOF, a reset): on an idle connection that rules it
    out; on one awaiting an answer, the answer (or the end) has arrived.

    ``poll``, not ``select``: a coordinator watching many nodes has descriptors
    past ``select``'s limit of 1,024.
    """
    if isinstance(stream, seam.SimulatedStream):
        return stream.has_input()
    poller = select.poll()
    try:
        poller.register(_socket(stream).fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
