"""What the copy state machine asks the coordinator's services to do.

Values only: :mod:`torua.cluster.copies` returns them and
``torua.coordinator.data.copy_actions`` carries them out, so the rules and the I/O
stay apart and the rules can be tested without either.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Announce", "Drop", "Instruction", "Push", "Refill", "Restart", "Save"]


@dataclass(frozen=True, slots=True)
class Save:
    """The change must reach the saved state (callers needing it first await the save)."""

    why: str


@dataclass(frozen=True, slots=True)
class Push:
    """These nodes' assignments changed: tell them."""

    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Refill:
    """Copies wait to be filled or merged: wake the mover."""


@dataclass(frozen=True, slots=True)
class Drop:
    """The node no longer holds the shard (its assignment says so): delete the data."""

    node_id: str
    shard_id: int


@dataclass(frozen=True, slots=True)
class Restart:
    """A fill of this copy in progress must not complete: start it over."""

    shard_id: int
    node_id: str


@dataclass(frozen=True, slots=True)
class Announce:
    """A copy moved, was filled, merged or rolled back: tell the event bus."""

    shard_id: int
    source: str | None
    target: str | None
    primary: bool
    reason: str


Instruction = Save | Push | Refill | Drop | Restart | Announce
