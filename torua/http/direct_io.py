"""Socket reads and writes done without Trio's stream machinery, where that is safe.

A small request or answer almost always fits in the socket's send buffer at
once. Trio's ``send_all`` still costs, every time, a generator-based error
translator, an async context manager, a conflict check and a trip through the
scheduler: on the data path that was about a fifth of a request's Python time
on a node and on the coordinator. :func:`send_now` writes straight to the
descriptor instead and reports how much went; the caller hands anything left
to ``send_all``, which waits for room as before. :func:`receive_when_ready`
is the reading side for an answer that has not arrived yet. Streams that are
not plain sockets (TLS, the in-memory streams of tests) always take the usual
path.
"""

from __future__ import annotations

import os

import trio

__all__ = ["receive_when_ready", "send_now"]

_READ = 65536


def send_now(stream: trio.abc.SendStream, data: bytes) -> int:
    """Bytes of ``data`` written to ``stream``'s socket without waiting (maybe 0).

    Raises ``OSError`` for a broken or closed connection, as the socket does.
    """
    if type(stream) is not trio.SocketStream:
        return 0
    try:
        return os.write(stream.socket.fileno(), data)
    except (BlockingIOError, InterruptedError):
        return 0


async def receive_when_ready(
    stream: trio.abc.ReceiveStream, max_bytes: int = _READ, *, wait_first: bool = True
) -> bytes:
    """The next bytes from ``stream`` (``b""`` at its end).

    Right after a request goes out its answer has rarely arrived, so instead
    of ``receive_some``'s failed read, exception and wrappers first, this
    waits for the socket to turn readable, then reads it (``wait_first``;
    later pieces of a long answer are read first, waited for only when not
    there). A reset connection raises ``OSError``; other streams use
    ``receive_some``.
    """
    if type(stream) is not trio.SocketStream:
        return bytes(await stream.receive_some(max_bytes))
    sock = stream.socket
    if not wait_first:
        # As receive_some: a cancellation is seen first, one yield after a read.
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            data = os.read(sock.fileno(), max_bytes)
        except (BlockingIOError, InterruptedError):
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return data
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            return os.read(sock.fileno(), max_bytes)
        except (BlockingIOError, InterruptedError):
            continue  # woken with nothing to read after all: wait again
