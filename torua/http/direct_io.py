"""Socket writes that need not wait, done without Trio's stream machinery.

A small request or answer almost always fits in the socket's send buffer at
once. Trio's ``send_all`` still costs, every time, a generator-based error
translator, an async context manager, a conflict check and a trip through the
scheduler: on the data path that was about a fifth of a request's Python time
on a node and on the coordinator. :func:`send_now` writes straight to the
descriptor instead and reports how much went; the caller hands anything left
to ``send_all``, which waits for room as before. Streams that are not plain
sockets (TLS, the in-memory streams of tests) always take the usual path.
"""

from __future__ import annotations

import os

import trio

__all__ = ["send_now"]


def send_now(stream: trio.abc.Stream, data: bytes) -> int:
    """Bytes of ``data`` written to ``stream``'s socket without waiting (maybe 0).

    Raises ``OSError`` for a broken or closed connection, as the socket does.
    """
    if type(stream) is not trio.SocketStream:
        return 0
    try:
        return os.write(stream.socket.fileno(), data)
    except (BlockingIOError, InterruptedError):
        return 0
