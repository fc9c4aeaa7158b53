"""The shard table: which nodes hold a copy of each shard, and which copy leads.

Pure data, no I/O and no trio. The coordinator owns one table; placement
(:mod:`torua.cluster.placement`) plans on it and returns :class:`Move` values.
Because :meth:`ShardTable.apply` replays a move exactly as placement made it,
the coordinator can plan on ``table.copy()`` and apply each move to the real
table only once that move's data has landed, and a move that no longer fits
the table (a stale plan) is refused instead of corrupting it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .states import ClusterHealth, MoveKind, ShardState

__all__ = ["Move", "NodeState", "Shard", "ShardTable", "cluster_health"]


@dataclass(frozen=True, slots=True)
class NodeState:
    """What placement needs to know about one node.

    Placement takes a snapshot of these rather than the coordinator's live
    records so that a plan is a pure function of what was known when it was
    made, never of records that change under it.
    """

    id: str
    live: bool  # healthy: its copies count and it may hold copies
    leaving: bool = False  # maintenance/evacuating/draining: copies move off, none arrive
    capacity: int | None = None  # max shard copies it may hold; None = unlimited
    # Down but expected back (a planned restart, or within the replica delay): its
    # copies stay placed and are not rebuilt elsewhere; it takes no new copies.
    held: bool = False

    def __post_init__(self) -> None:
        if self.capacity is not None and self.capacity < 0:
            raise ValueError(f"node {self.id!r}: capacity must be >= 0, not {self.capacity}")

    @property
    def accepting(self) -> bool:
        """A node that may keep and receive copies."""
        return self.live and not self.leaving

    def has_room(self, load: int) -> bool:
        """Whether one more copy fits next to ``load`` copies already held."""
        return self.capacity is None or load < self.capacity


@dataclass(slots=True)
class Shard:
    """The copies of one shard. ``copies[0]`` leads: it orders writes.

    ``in_sync`` is kept apart from ``copies`` because a copy can exist before it
    holds every acknowledged write (it is being filled, or it missed a write);
    only in-sync copies may be promoted or counted as safe (only those hold
    every acknowledged write).
    """

    shard_id: int
    copies: list[str] = field(default_factory=list)
    in_sync: set[str] = field(default_factory=set)

    @property
    def primary(self) -> str | None:
        return self.copies[0] if self.copies else None

    @property
    def replicas(self) -> list[str]:
        return self.copies[1:]

    def state(self, nodes: Mapping[str, NodeState]) -> ShardState:
        """The state shown in ``GET /shards``.

        - ``unassigned``: no copy on a live node, so nothing can serve it;
        - ``recovering``: some copy does not yet hold every acknowledged write;
        - ``active``: otherwise (a shard short of copies is still active: it is
          fully served, and ``cluster_health`` reports the missing redundancy).

        ``relocating`` and ``incomplete`` need knowledge of moves in flight and
        of lost copies, which the coordinator owns; it overrides this answer.
        """
        if not any((node := nodes.get(n)) is not None and node.live for n in self.copies):
            return ShardState.UNASSIGNED
        if any(n not in self.in_sync for n in self.copies):
            return ShardState.RECOVERING
        return ShardState.ACTIVE


@dataclass(frozen=True, slots=True)
class Move:
    """One change to one shard's copies, as placement decided it.

    Four kinds, told apart by the fields (see :attr:`kind`):

    - ``promote`` (``reason == "promote"``): no data moves; ``target``, which
      already holds a copy, becomes primary; ``source`` is the previous primary.
    - add (``source is None``): a new copy on ``target``.
    - drop (``target is None``): the copy on ``source`` goes, with nowhere to go.
    - relocate (both set): the copy on ``source`` is replaced by one on
      ``target``, in the same place in ``copies`` (so a moved primary stays
      primary). ``source`` says which copy is replaced, not where to read the
      data: it may be a failed node; read from any live in-sync copy.

    ``primary`` is True when the move changes which node is primary. Reasons:
    ``failure``, ``removed`` (node unknown), ``leaving``, ``capacity``,
    ``excess`` (more than R copies), ``replicate``, ``assign``, ``rebalance``,
    ``promote``.
    """

    shard_id: int
    source: str | None
    target: str | None
    primary: bool
    reason: str

    @property
    def kind(self) -> MoveKind:
        """``promote``, ``add``, ``drop`` or ``relocate``."""
        if self.reason == "promote":
            return MoveKind.PROMOTE
        if self.source is None:
            return MoveKind.ADD
        return MoveKind.DROP if self.target is None else MoveKind.RELOCATE

    def to_json(self) -> dict[str, Any]:
        return {
            "shard_id": self.shard_id,
            "source": self.source,
            "target": self.target,
            "primary": self.primary,
            "reason": self.reason,
        }


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return value


class ShardTable:
    """Every shard's copies; ``shards[i].shard_id == i``.

    The shard count and replication factor are fixed when a cluster is created
    (keys hash to shards by that count), so they are plain attributes checked once here.
    """

    __slots__ = ("num_shards", "replication_factor", "shards")

    def __init__(self, num_shards: int, replication_factor: int) -> None:
        self.num_shards = _positive_int("num_shards", num_shards)
        self.replication_factor = _positive_int("replication_factor", replication_factor)
        self.shards: list[Shard] = [Shard(i) for i in range(num_shards)]

    def __repr__(self) -> str:
        return (
            f"ShardTable(num_shards={self.num_shards}, "
            f"replication_factor={self.replication_factor}, shards={self.shards!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ShardTable):
            return NotImplemented
        return (self.num_shards, self.replication_factor, self.shards) == (
            other.num_shards,
            other.replication_factor,
            other.shards,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def shard(self, shard_id: int) -> Shard:
        """The shard, or KeyError; unlike ``shards[i]``, -1 is not a shard."""
        if isinstance(shard_id, bool) or not isinstance(shard_id, int):
            raise KeyError(shard_id)
        if not 0 <= shard_id < self.num_shards:
            raise KeyError(shard_id)
        return self.shards[shard_id]

    def load(self, node_id: str) -> int:
        """Copies held by the node: what capacity limits and balance evens out."""
        return sum(1 for s in self.shards if node_id in s.copies)

    def copies_on(self, node_id: str) -> list[int]:
        return [s.shard_id for s in self.shards if node_id in s.copies]

    def primaries_on(self, node_id: str) -> list[int]:
        return [s.shard_id for s in self.shards if s.primary == node_id]

    def copy(self) -> ShardTable:
        """A deep copy, to plan on without touching the live table."""
        other = ShardTable(self.num_shards, self.replication_factor)
        other.shards = [Shard(s.shard_id, list(s.copies), set(s.in_sync)) for s in self.shards]
        return other

    def apply(self, move: Move) -> None:
        """Replay one move; ValueError if it does not fit (the plan is stale)."""
        try:
            shard = self.shard(move.shard_id)
        except KeyError:
            raise ValueError(f"stale move {move}: no shard {move.shard_id}") from None
        copies, source, target = shard.copies, move.source, move.target
        if move.reason == "promote":
            if target not in copies:
                raise ValueError(f"stale move {move}: {target!r} holds no copy to promote")
            copies.remove(target)
            copies.insert(0, target)
            return
        if source is None and target is None:
            raise ValueError(f"move {move} names neither a source nor a target")
        if source is not None and source not in copies:
            raise ValueError(f"stale move {move}: {source!r} holds no copy")
        if target is not None and target in copies:
            raise ValueError(f"stale move {move}: {target!r} already holds a copy")
        if source is None:
            assert target is not None
            if move.primary:
                copies.insert(0, target)
            else:
                copies.append(target)
        elif target is None:
            copies.remove(source)
        else:
            copies[copies.index(source)] = target
        if source is not None:
            shard.in_sync.discard(source)
        if target is not None:
            # Data movement is not modelled yet: a new copy counts as filled.
            shard.in_sync.add(target)

    def validate(self) -> None:
        """ValueError unless every shard is well formed; guards loaded state."""
        if len(self.shards) != self.num_shards:
            raise ValueError(f"expected {self.num_shards} shards, found {len(self.shards)}")
        for i, s in enumerate(self.shards):
            if type(s.shard_id) is not int or s.shard_id != i:
                raise ValueError(f"shard at index {i} has shard_id {s.shard_id!r}")
            if not all(isinstance(n, str) and n for n in s.copies):
                raise ValueError(f"shard {i}: node ids must be non-empty strings: {s.copies!r}")
            if len(set(s.copies)) != len(s.copies):
                raise ValueError(f"shard {i}: a node holds two copies: {s.copies!r}")
            if not s.in_sync <= set(s.copies):
                raise ValueError(f"shard {i}: in_sync {sorted(s.in_sync)} is not within copies")

    def to_json(self) -> dict[str, Any]:
        return {
            "num_shards": self.num_shards,
            "replication_factor": self.replication_factor,
            "shards": [
                {"shard_id": s.shard_id, "copies": list(s.copies), "in_sync": sorted(s.in_sync)}
                for s in self.shards
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShardTable:
        """The inverse of :meth:`to_json`; ValueError on anything malformed."""
        try:
            table = cls(data["num_shards"], data["replication_factor"])
            entries = data["shards"]
            if not isinstance(entries, list):
                raise TypeError("shards must be a list")
            shards = []
            for entry in entries:
                copies, in_sync = entry["copies"], entry["in_sync"]
                if not isinstance(copies, list) or not isinstance(in_sync, list):
                    raise TypeError("copies and in_sync must be lists")
                shards.append(Shard(entry["shard_id"], list(copies), set(in_sync)))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a shard table: {exc!r}") from exc
        table.shards = shards
        table.validate()
        return table


def cluster_health(table: ShardTable, nodes: Mapping[str, NodeState]) -> ClusterHealth:
    """``green``, ``yellow`` or ``red``, as ``cluster_state`` in ``GET /cluster/info``.

    Green needs R in-sync copies on live nodes, R as configured rather than as
    capped, so a cluster too small for its replication factor never looks safe.
    Yellow: every shard still has an in-sync copy on a live node. Red: some
    shard has none, so some acknowledged write cannot be read.
    """
    health = ClusterHealth.GREEN
    for shard in table.shards:
        readable = sum(1 for n in shard.in_sync if (s := nodes.get(n)) is not None and s.live)
        if readable == 0:
            return ClusterHealth.RED
        if readable < table.replication_factor:
            health = ClusterHealth.YELLOW
    return health
