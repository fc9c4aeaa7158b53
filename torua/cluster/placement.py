"""Where shard copies go: pure functions over a ShardTable and the nodes' states.

Each function works out the end state on a scratch copy, then turns the net
difference into moves, applied in order to the table it was given (compute the
target, then move). So a copy moves at most once per call, and
replaying the moves with :meth:`ShardTable.apply` on the old table gives the
new one: the coordinator can plan on ``table.copy()`` and apply each move as
its data lands. Order: promotions of copies that hold the data (writes find a
primary at once), relocations and new copies, drops, then promotions of
copies that just arrived. Ties go by node id and shard id: same input, same moves.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Mapping
from functools import partial

from torua.errors import ToruaError

from .table import Move, NodeState, Shard, ShardTable
from .table import cluster_health as cluster_health

__all__ = [
    "PlacementConflict",
    "PlacementError",
    "UnknownNode",
    "UnknownShard",
    "assign_primary",
    "cluster_health",
    "rebalance",
    "reconcile",
    "target_copies",
]

Nodes = Mapping[str, NodeState]
Edge = Callable[[tuple[str, str]], bool]  # may x pass y a copy, or the lead?


class PlacementError(ToruaError, ValueError):
    """A placement request that cannot be met; the table is unchanged."""


class UnknownShard(PlacementError):  # HTTP 404
    pass


class UnknownNode(PlacementError):  # HTTP 404
    pass


class PlacementConflict(PlacementError):  # HTTP 409: the node cannot take the role now
    pass


def target_copies(table: ShardTable, nodes: Nodes) -> int:
    """R, capped by the nodes that may take a copy: with fewer nodes than R a
    shard cannot have R distinct copies, and should not count as short forever."""
    return min(table.replication_factor, sum(1 for n in nodes.values() if n.accepting))


def reconcile(table: ShardTable, nodes: Nodes) -> list[Move]:
    """Repair the table after a change in ``nodes``; mutates it, returns the moves.

    1. Copies on unknown, failed or leaving nodes go; where the primary goes,
    the first in-sync remaining copy (else the first remaining) is promoted.
    Copies on *held* nodes (down, expected back) stay, but lose the lead to a
    live in-sync copy.
    2. Nodes over capacity shed copies, replicas first, sole copies last.
    3. Shards are filled up to :func:`target_copies`: a primary for every
    shard before any second copy, so scarce room serves unassigned shards
    first; each copy on the least-loaded accepting node with room that lacks
    the shard (ties: fewest primaries, then id). A copy dropped in 1 or 2 and
    re-homed in 3 is reported as one relocation.

    Copies on live, non-leaving nodes within capacity never move: a node that
    comes back gets nothing back, no primary either; only a shard still short
    of copies may put its missing copy, never more.
    """
    plan = _Plan(table, nodes)
    plan.repair()
    return plan.emit()


def rebalance(table: ShardTable, nodes: Nodes) -> list[Move]:
    """Reconcile, then even out copies and primaries over accepting nodes.

    Afterwards no accepting node with room holds 2+ copies fewer than another
    accepting node. Targets come first (an even split, small capacities held
    at their cap); copies then travel from nodes above target to nodes below,
    replicas before primaries. Unlike reconcile it may move a copy aside to
    make room for a shard left short. Primaries are evened out last, best
    effort, by promoting in-sync copies (no data moves).
    """
    plan = _Plan(table, nodes)
    plan.repair()
    # Each round that goes on adds a copy, so the bound is never reached.
    for _ in range(table.num_shards * table.replication_factor + 1):
        plan.balance_copies()
        if not (plan.fill() or plan.make_room()):
            break
    plan.balance_primaries()
    return plan.emit()


def assign_primary(table: ShardTable, shard_id: int, node_id: str, nodes: Nodes) -> list[Move]:
    """Make ``node_id`` the shard's primary; mutates the table, returns the moves.

    A node that holds an in-sync copy is simply promoted; otherwise the old
    primary's copy moves there (data included) and leads from there. Raises
    :class:`UnknownShard` or :class:`UnknownNode` (404) or
    :class:`PlacementConflict` (409) and changes nothing when that cannot be
    done: the node is unhealthy or leaving, has no room, or holds a copy that
    is still catching up (promoting it would lose acknowledged writes).
    """
    try:
        shard = table.shard(shard_id)
    except KeyError:
        last = table.num_shards - 1
        raise UnknownShard(f"no shard {shard_id!r}: shard ids run from 0 to {last}") from None
    node = nodes.get(node_id)
    if node is None:
        raise UnknownNode(f"no node {node_id!r} is registered")
    if not node.accepting:
        why = "is leaving and takes no shards" if node.live else "is not healthy"
        raise PlacementConflict(f"node {node_id!r} {why}")
    if shard.primary == node_id:
        return []
    if node_id in shard.copies:
        if node_id not in shard.in_sync:
            raise PlacementConflict(
                f"node {node_id!r} holds shard {shard_id} but is still catching up on writes"
            )
        move = Move(shard_id, shard.primary, node_id, True, "promote")
    elif not node.has_room(load := table.load(node_id)):
        raise PlacementConflict(f"node {node_id!r} is full: {load} of {node.capacity} copies")
    else:
        move = Move(shard_id, shard.primary, node_id, True, "assign")
    table.apply(move)
    return [move]


def _even(total: int, caps: Mapping[str, int | None], current: Mapping[str, int]) -> dict[str, int]:
    """Split ``total`` as evenly as caps allow: nodes capped below the share get
    their cap, the rest the share or one more; the extras go to the nodes
    holding most now, so that the fewest copies travel."""
    order = sorted(caps, key=lambda n: (caps[n] is None, caps[n] or 0, n))
    targets: dict[str, int] = {}
    for i, node in enumerate(order):
        share, extra = divmod(total, len(order) - i)
        cap = caps[node]
        if cap is not None and cap <= share:
            targets[node] = cap
            total -= cap
            continue
        rest = sorted(order[i:], key=lambda n: (-current[n], n))
        for j, other in enumerate(rest):
            targets[other] = share + (j < extra)
        break
    return targets


def _can_pass(held: Mapping[str, set[int]], pair: tuple[str, str]) -> bool:
    return not held[pair[0]] <= held[pair[1]]


def _path(nodes: list[str], excess: Mapping[str, int], edge: Edge) -> list[str] | None:
    """Shortest chain from a node above target to one below along ``edge``:
    usually one hop, longer when the nodes below already hold all that the
    nodes above could give them."""
    sources = sorted((n for n in nodes if excess[n] > 0), key=lambda n: (-excess[n], n))
    sinks_first = sorted(nodes, key=lambda n: (excess[n], n))
    parent: dict[str, str | None] = dict.fromkeys(sources)
    queue = deque(sources)
    while queue:
        x = queue.popleft()
        for y in sinks_first:
            if y in parent or not edge((x, y)):
                continue
            parent[y] = x
            if excess[y] < 0:
                path = [y]
                while (prev := parent[path[-1]]) is not None:
                    path.append(prev)
                return path[::-1]
            queue.append(y)
    return None


class _Plan:
    """A scratch copy of the table that placement edits freely. Only the net
    difference becomes moves (:meth:`emit`): a copy moved twice while planning
    travels once, and one moved back does not travel at all."""

    def __init__(self, table: ShardTable, nodes: Nodes) -> None:
        self.table, self.nodes, self.work = table, nodes, table.copy()
        self.before = {s.shard_id: (set(s.copies), set(s.in_sync)) for s in table.shards}
        self.gone: dict[tuple[int, str], str] = {}  # (shard, original holder) -> reason
        self.origin: dict[tuple[int, str], str] = {}  # relocated copy -> original holder
        self.load = Counter(n for s in table.shards for n in s.copies)
        self.prims = Counter(s.copies[0] for s in table.shards if s.copies)

    # -- primitive edits, keeping load and primary counts current --

    def usable(self, node: str) -> bool:
        state = self.nodes.get(node)
        return state is not None and state.accepting

    def held(self, node: str) -> bool:
        state = self.nodes.get(node)
        # A leaving node's copies go anyway: being away changes nothing for them.
        return state is not None and state.held and not state.live and not state.leaving

    def room(self, node: str) -> bool:
        return self.usable(node) and self.nodes[node].has_room(self.load[node])

    def accepting(self) -> list[str]:
        return sorted(n for n, s in self.nodes.items() if s.accepting)

    def _left(self, shard: int, node: str, reason: str) -> str:
        origin = self.origin.pop((shard, node), node)
        if origin in self.before[shard][0]:
            self.gone.setdefault((shard, origin), reason)
        return origin

    def _arrive(self, s: Shard, node: str) -> None:
        copies, in_sync = self.before[s.shard_id]
        # A copy returning to its original holder is no move, so it keeps the
        # sync state it had; any other arrival is filled from an in-sync copy.
        if node not in copies or node in in_sync:
            s.in_sync.add(node)
        self.load[node] += 1

    def remove(self, shard: int, node: str, reason: str) -> None:
        s = self.work.shards[shard]
        index = s.copies.index(node)
        del s.copies[index]
        s.in_sync.discard(node)
        self.load[node] -= 1
        self._left(shard, node, reason)
        if index == 0:
            self.prims[node] -= 1
            if s.copies:  # copies[0] leads by position now; promote the best survivor
                self.prims[s.copies[0]] += 1
                rank = {
                    n: (not self.usable(n), n not in s.in_sync, i) for i, n in enumerate(s.copies)
                }
                self.promote(shard, min(rank, key=rank.__getitem__))

    def add(self, shard: int, node: str) -> None:
        s = self.work.shards[shard]
        s.copies.append(node)
        self._arrive(s, node)
        if len(s.copies) == 1:
            self.prims[node] += 1

    def relocate(self, shard: int, source: str, target: str) -> None:
        s = self.work.shards[shard]
        index = s.copies.index(source)
        s.copies[index] = target
        s.in_sync.discard(source)
        self.load[source] -= 1
        self._arrive(s, target)
        if index == 0:
            self.prims[source] -= 1
            self.prims[target] += 1
        self.origin[(shard, target)] = self._left(shard, source, "rebalance")

    def shift(self, path: list[str], held: dict[str, set[int]]) -> None:
        """Pass one copy along each hop of ``path``, replicas before primaries."""
        for x, y in zip(path, path[1:], strict=False):
            shard = min(held[x] - held[y], key=lambda i: (self.work.shards[i].primary == x, i))
            self.relocate(shard, x, y)
            held[x].discard(shard)
            held[y].add(shard)

    def promote(self, shard: int, node: str) -> None:
        copies = self.work.shards[shard].copies
        self.prims[copies[0]] -= 1
        self.prims[node] += 1
        copies.remove(node)
        copies.insert(0, node)

    # -- steps --

    def repair(self) -> None:
        """Steps 1-3 of :func:`reconcile`."""
        for s in self.work.shards:
            bad = [n for n in s.copies if not self.usable(n) and not self.held(n)]
            for node in reversed(bad):  # the primary last, so promotion sees the survivors
                state = self.nodes.get(node)
                why = "removed" if state is None else "leaving" if state.live else "failure"
                self.remove(s.shard_id, node, why)
            if s.copies and self.held(s.copies[0]):
                # A copy that is away keeps its place, not the lead: writes are
                # ordered by a copy that can take them.
                ready = [n for n in s.copies if self.usable(n) and n in s.in_sync]
                if ready:
                    self.promote(s.shard_id, ready[0])
        for node in sorted(self.nodes):
            cap = self.nodes[node].capacity
            if cap is None or self.load[node] <= cap:
                continue
            held = [s for s in self.work.shards if node in s.copies]
            held.sort(
                key=lambda s: (len(s.copies) == 1, s.primary == node, node in s.in_sync, s.shard_id)
            )
            for s in held[: self.load[node] - cap]:
                self.remove(s.shard_id, node, "capacity")
        for s in self.work.shards:
            while len(s.copies) > self.work.replication_factor:
                victim = max(s.replicas, key=lambda n: (n not in s.in_sync, s.copies.index(n)))
                self.remove(s.shard_id, victim, "excess")
        self.fill()

    def fill(self) -> bool:
        """Place missing copies, rank by rank; True if any was placed."""
        accepting, placed = self.accepting(), False
        for rank in range(1, target_copies(self.work, self.nodes) + 1):
            for s in self.work.shards:
                if len(s.copies) >= rank:
                    continue
                options = [n for n in accepting if n not in s.copies and self.room(n)]
                if options:
                    best = min(options, key=lambda n: (self.load[n], self.prims[n], n))
                    self.add(s.shard_id, best)
                    placed = True
        return placed

    def balance_copies(self) -> None:
        accepting = self.accepting()
        caps = {n: self.nodes[n].capacity for n in accepting}
        target = _even(sum(self.load[n] for n in accepting), caps, self.load)
        held = {n: set(self.work.copies_on(n)) for n in accepting}
        while True:
            excess = {n: self.load[n] - target[n] for n in accepting}
            path = _path(accepting, excess, partial(_can_pass, held))
            if path is None:
                return
            self.shift(path, held)

    def make_room(self) -> bool:
        """Place one copy that :meth:`fill` could not, by moving others aside:
        greedy filling can leave a shard short while the nodes lacking it are
        full, yet a node with room holds copies those full nodes could hand it."""
        want, accepting = target_copies(self.work, self.nodes), self.accepting()
        for s in self.work.shards:
            if len(s.copies) >= want:
                continue
            held = {n: set(self.work.copies_on(n)) - {s.shard_id} for n in accepting}
            excess = {n: -1 if self.room(n) else int(n not in s.copies) for n in accepting}
            path = _path(accepting, excess, partial(_can_pass, held))
            if path is not None:
                self.shift(path, held)
                self.add(s.shard_id, path[0])
                return True
        return False

    def balance_primaries(self) -> None:
        accepting = self.accepting()
        shards = self.work.shards
        # A node can lead only shards it holds in sync (or already leads).
        caps: dict[str, int | None] = {
            n: sum(1 for s in shards if n in s.in_sync or s.primary == n) for n in accepting
        }
        target = _even(sum(self.prims[n] for n in accepting), caps, self.prims)
        while True:
            handover = {(s.primary, n): s.shard_id for s in reversed(shards) for n in s.in_sync}
            excess = {n: self.prims[n] - target[n] for n in accepting}
            path = _path(accepting, excess, handover.__contains__)
            if path is None:
                return
            for x, y in zip(path, path[1:], strict=False):
                self.promote(handover[(x, y)], y)

    # -- from plan to moves --

    def emit(self) -> list[Move]:
        table, moves = self.table, []

        def do(move: Move) -> None:
            table.apply(move)
            moves.append(move)

        pairs = list(zip(table.shards, self.work.shards, strict=True))
        for old, new in pairs:
            if new.primary != old.primary and new.primary in old.copies:
                do(Move(old.shard_id, old.primary, new.primary, True, "promote"))
        drops: list[tuple[int, str]] = []
        for old, new in pairs:
            sid = old.shard_id
            gone = [n for n in old.copies if n not in new.copies]
            arrived = [n for n in new.copies if n not in old.copies]
            # Pair what went with what came as the plan moved them, else in order.
            came_from = {self.origin.get((sid, a)): a for a in arrived}
            relocations = [(g, came_from[g]) for g in gone if g in came_from]
            gone = [g for g in gone if g not in came_from]
            arrived = [a for a in arrived if a not in {t for _, t in relocations}]
            n = min(len(gone), len(arrived))
            relocations += zip(gone[:n], arrived[:n], strict=True)
            gone, arrived = gone[n:], arrived[n:]
            for source, target in relocations:
                reason = self.gone.get((sid, source), "rebalance")
                do(Move(sid, source, target, old.primary == source, reason))
            for target in arrived:
                do(Move(sid, None, target, not old.copies, "replicate" if old.copies else "assign"))
            drops += [(sid, g) for g in gone]
        for sid, source in drops:
            reason = self.gone.get((sid, source), "rebalance")
            do(Move(sid, source, None, table.shards[sid].primary == source, reason))
        for old, new in pairs:
            if new.primary != old.primary:
                do(Move(old.shard_id, old.primary, new.primary, True, "promote"))
        return moves
