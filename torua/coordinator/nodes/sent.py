"""A request already written to a node, its answer not read yet.

:meth:`NodeConnections.send_nowait` writes a request on a kept connection
without waiting and returns a :class:`Sent`; one task can so send a write to
every copy before reading any answer, instead of running a task per copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from torua.coordinator.nodes.streams import StaleConnection, close_now, has_input
from torua.http.wire import Response

if TYPE_CHECKING:
    from torua.coordinator.nodes.connections import NodeConnections, _Node

__all__ = ["Sent"]


class Sent:
    """A request written by :meth:`NodeConnections.send_nowait`, its answer unread.

    It holds one of the node's slots and its connection until :meth:`answer`
    returns or :meth:`abandon` is called (a no-op after a complete answer).
    """

    __slots__ = (
        "_method",
        "_node",
        "_pool",
        "_released",
        "_request",
        "_retry",
        "_stream",
        "_unsent",
    )

    def __init__(
        self,
        pool: NodeConnections,
        node: _Node,
        stream: trio.abc.Stream,
        request: bytes,
        method: str,
        retry: bool,
        unsent: bytes,
    ) -> None:
        self._pool = pool
        self._node = node
        self._stream: trio.abc.Stream | None = stream
        self._request = request
        self._method = method
        self._retry = retry
        self._unsent = unsent
        self._released = False

    def has_input(self) -> bool:
        """Whether some of the answer (or the connection's end) is there to read."""
        return self._stream is not None and has_input(self._stream)

    async def answer(self) -> Response:
        """The node's answer; a kept connection the node had closed before answering
        is retried once on a fresh one when the request is idempotent."""
        stream, self._stream = self._stream, None
        if stream is None:
            raise RuntimeError("this request was answered or abandoned already")
        pool, node = self._pool, self._node
        try:
            try:
                return await pool._finish(
                    node, stream, self._request, self._method, True, self._unsent
                )
            except StaleConnection:
                if not self._retry:
                    raise
            return await pool._send(node, self._request, self._method, fresh=True)
        finally:
            self._release()

    def abandon(self) -> None:
        """Give up the answer: the connection closes (it is mid-exchange)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            self._node.busy.discard(stream)
            close_now(stream)
        self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._node.in_use -= 1
            self._node.lot.unpark()
