"""Copy a shard's records from one node to another, page by page, as frames.

Pages travel as record frames (:mod:`torua.http.records`) and are passed on
unread: the bytes the source exported are the bytes the target imports, so
the coordinator neither decodes nor re-encodes a value. The next page is
fetched while the current one is imported, one page ahead at most, since the
source's read and the target's write transaction take turns otherwise and a
move is bound by their latency, not by CPU.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import trio

from torua.coordinator.nodes.client import NodeClient, NodeUnreachable, Reply
from torua.errors import BadRequest, ToruaError
from torua.http.records import NEXT_HEADER, decode_cursor

__all__ = ["PAGE_ROWS", "MoveAborted", "copy_pages", "ok_or_abort"]

# Rows per page: one page is one write transaction on the target, which the node's
# other writes queue behind, so pages stay small rather than few.
PAGE_ROWS = 1000


class MoveAborted(ToruaError):
    """The copy is no longer wanted, or a node failed; try again later if still needed."""


async def copy_pages(
    nodes: NodeClient,
    shard_id: int,
    source: Callable[[], str],
    target: Callable[[], str],
    check: Callable[[], None],
    since: int = 0,
    *,
    counted: Callable[[int, int], None] | None = None,
) -> int:
    """Copy the source's records newer than ``since`` into the target; how many went.

    ``source`` and ``target`` give the nodes' addresses when asked (a node that
    left meanwhile raises :class:`MoveAborted`); ``check`` runs before every
    import and raises to stop a copy that is no longer wanted; ``counted`` hears
    the bytes and records of every page imported (for the fill metrics). Raises
    :class:`MoveAborted` or :class:`NodeUnreachable`, never a group of them.
    """
    send, receive = trio.open_memory_channel[bytes](0)
    copied = 0

    async def fetch() -> None:
        async with send:
            after: str | None = None
            while True:
                page = ok_or_abort(
                    await nodes.export_page(source(), shard_id, after, since=since, limit=PAGE_ROWS)
                )
                if page.body:
                    try:
                        await send.send(page.body)
                    except trio.BrokenResourceError:
                        return  # the importer stopped: its error is the one to report
                cursor = page.headers.get(NEXT_HEADER.lower())
                if cursor is None:
                    return
                try:
                    after = decode_cursor(cursor)
                except BadRequest:
                    raise MoveAborted(f"the source answered a bad cursor {cursor!r}") from None

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fetch)
            async with receive:
                async for frames in receive:
                    check()
                    reply = ok_or_abort(await nodes.import_page(target(), shard_id, frames))
                    received = int(json.loads(reply.body).get("received", 0))
                    copied += received
                    if counted is not None:
                        counted(len(frames), received)
    except BaseExceptionGroup as group:
        # One side failed and the other was cancelled for it: raise that failure alone.
        failed, rest = group.split((MoveAborted, NodeUnreachable))
        if failed is None:
            raise
        if rest is not None:
            # Cancelled from outside as a node failed (the coordinator stopping):
            # the cancellation alone goes on, for the cancel scope to absorb; the
            # failure would otherwise escape it and crash the mover.
            if rest.split(trio.Cancelled)[1] is not None:
                raise
            raise rest from None
        first: BaseException = failed
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return copied


def ok_or_abort(reply: Reply) -> Reply:
    """``reply`` if the node answered 200; else the move stops here."""
    if reply.status != 200:
        raise MoveAborted(f"HTTP {reply.status}: {reply.body[:200]!r}")
    return reply
