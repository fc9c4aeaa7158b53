"""One call per item, all at once: the shape of every "ask each node" in Torua.

The coordinator asks its nodes, and a node its shards, many things
concurrently and needs every answer before it decides. Each of those places
used to open its own nursery around a local ``one()`` closure; this is that
pattern once. A call that fails with an exception fails the whole fan-out
(the nursery's rule), so calls return their failures as values.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import trio

__all__ = ["fan_out"]

T = TypeVar("T")
R = TypeVar("R")


async def fan_out(call: Callable[[T], Awaitable[R]], items: Iterable[T]) -> list[R]:
    """``[await call(item) for item in items]``, run concurrently, answers in order.

    Every call runs in its own task, started in the items' order, even when there
    is one: the schedule stays what the simulator's recorded seeds replay (a
    caller on a hot path may await a single call itself).
    """
    todo = list(items)
    answers: list[R | None] = [None] * len(todo)

    async def one(index: int, item: T) -> None:
        answers[index] = await call(item)

    async with trio.open_nursery() as nursery:
        for index, item in enumerate(todo):
            nursery.start_soon(one, index, item)
    return answers  # type: ignore[return-value]  # every slot was filled
