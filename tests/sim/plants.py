"""Bugs planted on purpose, to show the simulator finds what it is for.

Each plant patches Torua in the simulating process only and returns the
function that takes it out again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torua.cluster.copies import Copies

__all__ = ["PLANTS"]


def _ack_without_second_copy() -> Callable[[], None]:
    """Acknowledge a write that a copy missed, and keep that copy in sync.

    The router then answers 204 before every authoritative copy holds the
    write, as if it stopped waiting for the second copy: a later read served
    by the copy that missed it returns an older value.
    """
    original = Copies.write_done

    def write_done(self: Copies, *args: Any, **kwargs: Any) -> tuple[bool, list[str]]:
        ok, _behind = original(self, *args, **kwargs)
        return ok, []

    Copies.write_done = write_done  # type: ignore[method-assign]

    def undo() -> None:
        Copies.write_done = original  # type: ignore[method-assign]

    return undo


PLANTS: dict[str, Callable[[], Callable[[], None]]] = {
    "ack-without-second-copy": _ack_without_second_copy,
}
