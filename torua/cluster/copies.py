"""The lifecycle of every shard copy, as one state machine. Pure: no trio, no I/O.

A copy is *filling* (placed, receiving new writes while old records are copied
in), *in sync* (holds every acknowledged write), *retiring* (replaced by a
move, still authoritative until its successors are whole and up), *lost* (the
shard's only authoritative copies died with their nodes; misses answer 503
until they are merged back), or *dropping* (missed a write; leaving the
in-sync set once that is saved). Keys whose last write failed on every copy
are *unsettled*. docs/replication.md tells why each state exists.

Everything that changes these sets is an event method here; each returns the
instructions the coordinator's services carry out (save the state, push
assignments, wake the mover, drop a node's data, announce a move). Router,
mover, redistributor and API handlers never touch the sets themselves, so the
rules live in one place and the property tests drive this very module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from torua.cluster.catch_up import CatchUp
from torua.cluster.handover import authoritative, handover_done, roll_back, settle
from torua.cluster.instructions import (
    Announce,
    Drop,
    Instruction,
    Push,
    Refill,
    Restart,
    Save,
)
from torua.cluster.table import Move, ShardTable

from .states import ShardState

__all__ = ["Copies"]

IsUp = Callable[[str], bool]


# The floor of a shard whose lost copies may hold any version at all: every hit
# on it may be stale until they are merged back.
UNKNOWN_FLOOR = 2**63 - 1


class Copies:
    """Every shard's copies and what they hold, with the rules for changing them."""

    def __init__(self, table: ShardTable) -> None:
        self.table = table
        self.retiring: dict[int, set[str]] = {}
        self.lost: dict[int, set[str]] = {}
        # Every version a lost copy may hold is at or below its shard's floor.
        self.lost_floor: dict[int, int] = {}
        self.dropping: dict[int, set[str]] = {}
        self.unsettled: dict[int, set[str]] = {}
        # Copies that lost their data while being filled: they hold nothing yet.
        self.emptied: set[tuple[int, str]] = set()
        # Authoritative copies on dead nodes that placement replaced while another
        # copy served: kept in mind until the shard is whole again, because should
        # the copies left lose their data meanwhile, these are where the data is.
        self.departed: dict[int, set[str]] = {}
        # What the last placement declared lost, per shard (for logs and models).
        self.newly_lost: dict[int, set[str]] = {}
        # Out-of-sync copies that kept their data: each holds every write of its
        # shard with a version up to its point, so it catches up by delta.
        self.catch_up = CatchUp()

    # ---- queries -------------------------------------------------------------

    def authoritative(self, shard_id: int, is_up: IsUp) -> list[str]:
        """Copies that hold every acknowledged write and can serve, primary first."""
        return authoritative(self.table.shards[shard_id], self.retiring.get(shard_id, set()), is_up)

    def holders(self, shard_id: int) -> set[str]:
        """Nodes that must keep the shard: its copies and its retiring copies."""
        return set(self.table.shards[shard_id].copies) | self.retiring.get(shard_id, set())

    def held_by(self, node_id: str) -> list[int]:
        held = set(self.table.copies_on(node_id))
        held.update(s for s, nodes in self.retiring.items() if node_id in nodes)
        return sorted(held)

    def syncing(self) -> list[tuple[int, str]]:
        """(shard, node) copies still to be filled."""
        return [(s.shard_id, n) for s in self.table.shards for n in s.copies if n not in s.in_sync]

    def merges(self) -> list[tuple[int, str]]:
        """(shard, node) lost copies waiting to be merged back."""
        return [(s, n) for s, nodes in self.lost.items() for n in sorted(nodes)]

    def settled(self, shard_id: int) -> bool:
        shard = self.table.shards[shard_id]
        return not self.retiring.get(shard_id) and all(n in shard.in_sync for n in shard.copies)

    def shard_state(self, shard_id: int, is_up: IsUp) -> ShardState:
        shard = self.table.shards[shard_id]
        if not self.authoritative(shard_id, is_up):
            return ShardState.UNASSIGNED
        if self.lost.get(shard_id):
            return ShardState.INCOMPLETE
        if self.retiring.get(shard_id):
            return ShardState.RELOCATING
        if any(n not in shard.in_sync for n in shard.copies):
            return ShardState.RECOVERING
        return ShardState.ACTIVE

    def is_unsettled(self, shard_id: int, key: str) -> bool:
        return key in self.unsettled.get(shard_id, ())

    def may_be_stale(self, shard_id: int, version: int | None) -> bool:
        """Whether a lost copy may hold a newer version than ``version`` of a key."""
        if not self.lost.get(shard_id):
            return False
        return version is None or version < self.lost_floor.get(shard_id, 0)

    # ---- placement -----------------------------------------------------------

    def before_placement(self, is_up: IsUp) -> list[Instruction]:
        """Roll back moves whose target died before it was whole: the retiring copy
        it was to replace, which still holds every write, takes its place again."""
        out: list[Instruction] = []
        for shard_id, retiring in list(self.retiring.items()):
            shard = self.table.shards[shard_id]
            for failed, restored in roll_back(shard, retiring, is_up):
                out += [
                    Push((failed, restored)),
                    Announce(shard_id, failed, restored, shard.primary == restored, "rolled_back"),
                ]
            if not retiring:
                del self.retiring[shard_id]
        if out:
            self._prune_points()
            out.append(Save("moves rolled back"))
        return out

    def placed(
        self,
        moves: Iterable[Move],
        before: Mapping[int, tuple[list[str], set[str]]],
        is_up: IsUp,
        version: int,
    ) -> list[Instruction]:
        """Placement rewrote ``copies``: fix every shard's in-sync, retiring and lost
        copies to match (``version`` is the largest write version issued so far)."""
        out: list[Instruction] = []
        touched: set[str] = set()
        self.newly_lost = {}
        for shard in self.table.shards:
            old_copies, old_in_sync = before[shard.shard_id]
            result = settle(
                shard, old_copies, old_in_sync, self.retiring.get(shard.shard_id, set()), is_up
            )
            if result.retiring:
                self.retiring[shard.shard_id] = result.retiring
            else:
                self.retiring.pop(shard.shard_id, None)
            if result.departed:
                self.departed.setdefault(shard.shard_id, set()).update(result.departed)
            back = self._departed_back(shard.shard_id) if result.orphaned else set()
            if result.lost or back:
                lost = set(result.lost) | back
                self.newly_lost[shard.shard_id] = lost
                self.lost.setdefault(shard.shard_id, set()).update(lost)
                self.lost_floor[shard.shard_id] = max(
                    self.lost_floor.get(shard.shard_id, 0), version
                )
            self._forget_departed_if_whole(shard.shard_id)
        moves = list(moves)
        for move in moves:
            touched.update(n for n in (move.source, move.target) if n is not None)
            out.append(Announce(move.shard_id, move.source, move.target, move.primary, move.reason))
        self._prune_points()
        if moves:
            touched.update(n for nodes in self.retiring.values() for n in nodes)
            out += [Push(tuple(sorted(touched))), Save("placement changed"), Refill()]
        return out

    def _departed_back(self, shard_id: int) -> set[str]:
        """The shard's departed copies, now wanted as lost ones (merged on return)."""
        shard = self.table.shards[shard_id]
        return self.departed.pop(shard_id, set()) - set(shard.copies)

    def _forget_departed_if_whole(self, shard_id: int) -> None:
        """Departed copies are redundant once the shard has its full count of
        in-sync copies. All current copies in sync is not enough: a shard left
        with one copy because no node could take the other's place still needs
        the departed one if that last copy loses its data."""
        shard = self.table.shards[shard_id]
        whole = len(shard.copies) >= self.table.replication_factor
        if whole and set(shard.copies) <= shard.in_sync:
            self.departed.pop(shard_id, None)

    # ---- writes --------------------------------------------------------------

    def write_targets(self, shard_id: int, is_up: IsUp) -> tuple[list[str], list[str]]:
        """Whom a write goes to: the authoritative copies that can take it (their
        answers decide the acknowledgement) and the live copies being filled."""
        shard = self.table.shards[shard_id]
        auth = self.authoritative(shard_id, is_up)
        filling = [n for n in shard.copies if n not in shard.in_sync and is_up(n) and n not in auth]
        return auth, filling

    def write_done(
        self,
        shard_id: int,
        sent: list[str],
        filling: list[str],
        failed: set[str],
        is_up: IsUp,
        lowest: int = 0,
    ) -> tuple[bool, list[str]]:
        """A write went to ``sent`` (authoritative) and ``filling``; ``failed`` did not
        take it. Returns whether it may be acknowledged and the copies that must
        leave the in-sync set first (:meth:`write_missed`): authoritative ones that
        failed, authoritative ones that were down (they did not get it either),
        and filling ones that became in sync while it ran and then failed.

        ``lowest`` is the smallest version the write carried (0: unknown). Every
        copy it missed may lack that version, so a later delta catch-up of that
        copy starts at or below it."""
        shard = self.table.shards[shard_id]
        took = {n for n in (*sent, *filling) if n not in failed}
        for node_id in set(shard.copies) - took:
            self.catch_up.moved_back(shard_id, node_id, lowest - 1)
        lost = [n for n in sent if n in failed]
        # Only a copy still authoritative now vouches for the write: one that
        # placement replaced while the write ran (it was judged down) holds it
        # outside the shard, where no read and no fill will look.
        holders = shard.in_sync | self.retiring.get(shard_id, set())
        if sent and not any(n in holders for n in took if n in sent):
            return False, []
        down = [n for n in shard.copies if n in shard.in_sync and n not in sent and not is_up(n)]
        down += [
            n for n in sorted(self.retiring.get(shard_id, ())) if n not in sent and not is_up(n)
        ]
        late = [n for n in filling if n in failed and n in shard.in_sync]
        behind = lost + [n for n in down if n not in lost] + late
        for node_id in behind:
            self.catch_up.lower(shard_id, node_id, lowest - 1)
        return bool(sent), behind

    def since_saves(self, shard_id: int) -> list[Instruction]:
        """A write older than a copy's catch-up point missed it (it was in flight
        when the copy left the in-sync set): the lower point must be saved before
        that write is acknowledged, or a restarted coordinator's delta skips it."""
        if not self.catch_up.take_lowered(shard_id):
            return []
        return [Save("a copy's catch-up point moved back")]

    def write_missed(self, shard_id: int, nodes: Iterable[str]) -> list[Instruction]:
        """Copies missed a write: they leave the in-sync set once that is saved
        (they count until then: the write they missed is not acknowledged yet)."""
        self.dropping.setdefault(shard_id, set()).update(nodes)
        return [Save("copies missed a write")]

    def missed_saved(self, shard_id: int, nodes: Iterable[str]) -> list[Instruction]:
        """The save that drops them is done: they stop counting now."""
        shard = self.table.shards[shard_id]
        pending = self.dropping.get(shard_id, set())
        for node_id in nodes:
            if node_id in pending:
                pending.discard(node_id)
                shard.in_sync.discard(node_id)
                self.retiring.get(shard_id, set()).discard(node_id)
        if not pending:
            self.dropping.pop(shard_id, None)
        return [Refill()]

    def key_failed(self, shard_id: int, key: str) -> list[Instruction]:
        """A write of ``key`` failed on every copy but may have landed on some."""
        self.unsettled.setdefault(shard_id, set()).add(key)
        return [Save("a key's copies may differ")]

    def key_settled(self, shard_id: int, key: str) -> list[Instruction]:
        """Every authoritative copy holds the same newest version of ``key`` again."""
        keys = self.unsettled.get(shard_id)
        if keys is None or key not in keys:
            return []
        keys.discard(key)
        if not keys:
            del self.unsettled[shard_id]
        return [Save("a key settled")]

    def _prune_points(self) -> None:
        """A copy that left its shard may be dropped from its node: should it be
        placed there again, it is filled from scratch."""
        self.catch_up.keep_only((s.shard_id, n) for s in self.table.shards for n in s.copies)

    # ---- the mover's work -----------------------------------------------------

    def catch_up_from(self, shard_id: int, node_id: str) -> int:
        """The version after which a fill must copy records into this copy: 0 (a
        full fill) unless the copy kept its data since it last was in sync."""
        shard = self.table.shards[shard_id]
        if node_id not in shard.copies or node_id in shard.in_sync:
            return 0
        return self.catch_up.get(shard_id, node_id) or 0

    def fill_donors(self, shard_id: int, node_id: str, is_up: IsUp) -> list[str]:
        """Copies a fill may read from: authoritative and live, not the target."""
        return [n for n in self.authoritative(shard_id, is_up) if n != node_id]

    def merge_targets(self, shard_id: int, node_id: str, is_up: IsUp) -> list[str]:
        """Where a returning lost copy merges; empty while the shard is moving.

        Only into a settled shard (no retiring copy, every copy in sync and up): a
        retiring or half-filled copy would miss the merged writes while the shard
        already counted as complete."""
        shard = self.table.shards[shard_id]
        if self.retiring.get(shard_id) or not handover_done(shard, is_up):
            return []
        return [n for n in shard.copies if n != node_id]

    def wants_fill(self, shard_id: int, node_id: str) -> bool:
        shard = self.table.shards[shard_id]
        return node_id in shard.copies and node_id not in shard.in_sync

    def fill_done(self, shard_id: int, node_id: str, donor: str) -> list[Instruction]:
        """The copy holds every record and missed no write: it is in sync."""
        if not self.wants_fill(shard_id, node_id):
            return []
        shard = self.table.shards[shard_id]
        shard.in_sync.add(node_id)
        self.emptied.discard((shard_id, node_id))
        self.catch_up.done(shard_id, node_id)
        self._forget_departed_if_whole(shard_id)
        return [
            Save("a copy was filled"),
            Announce(shard_id, donor, node_id, node_id == shard.primary, "filled"),
        ]

    def merge_done(self, shard_id: int, node_id: str, into: str) -> list[Instruction]:
        """A returning lost copy's records are in every copy: the shard is whole."""
        out: list[Instruction] = [
            Save("a lost copy was merged back"),
            Announce(shard_id, node_id, into, False, "merged"),
        ]
        if node_id not in self.holders(shard_id):
            out.append(Drop(node_id, shard_id))
        self.lost.get(shard_id, set()).discard(node_id)
        if not self.lost.get(shard_id):
            self.lost.pop(shard_id, None)
        return out

    def handovers_done(self, is_up: IsUp) -> list[Instruction]:
        """Release retiring copies whose successors are all in sync and up."""
        out: list[Instruction] = []
        for shard_id, nodes in list(self.retiring.items()):
            if not nodes:
                del self.retiring[shard_id]
                continue
            if handover_done(self.table.shards[shard_id], is_up):
                del self.retiring[shard_id]
                out.append(Push(tuple(sorted(nodes))))
                out += [Drop(n, shard_id) for n in sorted(nodes) if n not in self.holders(shard_id)]
        if out:
            out.insert(0, Save("handovers finished"))
        return out

    # ---- nodes -----------------------------------------------------------------

    def data_lost(self, node_id: str) -> tuple[list[Instruction], list[int]]:
        """The node came back without its data (a new incarnation): its copies are
        empty. Returns the instructions and the shards whose data is gone for good
        (it held their only authoritative copies: the copies left start in sync)."""
        gone: list[int] = []
        out: list[Instruction] = []
        self.catch_up.forget_node(node_id)
        for shard in self.table.shards:
            if node_id in shard.copies and node_id not in shard.in_sync:
                out.append(Restart(shard.shard_id, node_id))  # what it got so far is gone
                self.emptied.add((shard.shard_id, node_id))
            retiring = self.retiring.get(shard.shard_id, set())
            had = node_id in shard.in_sync or node_id in retiring
            shard.in_sync.discard(node_id)
            retiring.discard(node_id)
            self.lost.get(shard.shard_id, set()).discard(node_id)
            self.dropping.get(shard.shard_id, set()).discard(node_id)
            self.departed.get(shard.shard_id, set()).discard(node_id)
            if (
                had
                and not shard.in_sync | retiring
                and (back := self._departed_back(shard.shard_id))
            ):
                # Copies replaced while this one served still hold what it held: the
                # shard is incomplete until they are merged back, not emptied for good.
                self.lost.setdefault(shard.shard_id, set()).update(back)
                self.lost_floor[shard.shard_id] = UNKNOWN_FLOOR
            if had and not shard.in_sync | retiring:
                # Nothing holds the data any more. Copies being filled hold at least
                # every write since their fill began: they serve and this empty one
                # is filled from them; with none, the empty copy takes every write
                # from now on.
                others = [
                    n
                    for n in shard.copies
                    if n != node_id and (shard.shard_id, n) not in self.emptied
                ]
                shard.in_sync.update(others or shard.copies)
                gone.append(shard.shard_id)
            if node_id in shard.copies and node_id not in shard.in_sync:
                self.emptied.add((shard.shard_id, node_id))
        return [*out, Save("a node lost its data"), Push((node_id,)), Refill()], gone

    def node_removed(self, node_id: str) -> list[Instruction]:
        """An operator removed the node: whatever it held that was lost is gone."""
        self.catch_up.forget_node(node_id)
        for shard_id in list(self.lost):
            self.lost[shard_id].discard(node_id)
            if not self.lost[shard_id]:
                del self.lost[shard_id]
        for shard_id in list(self.departed):
            self.departed[shard_id].discard(node_id)
            if not self.departed[shard_id]:
                del self.departed[shard_id]
        return [Save("a node was removed")]

    # ---- the saved form --------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """What a restarted coordinator must find: copies leaving the in-sync set
        are already left out (they leave in memory only once this is saved)."""
        table = self.table.to_json()
        for entry in table["shards"]:
            if gone := self.dropping.get(entry["shard_id"]):
                entry["in_sync"] = [n for n in entry["in_sync"] if n not in gone]
        retiring = {k: v - self.dropping.get(k, set()) for k, v in self.retiring.items()}
        return {
            "table": table,
            "retiring": {str(k): sorted(v) for k, v in retiring.items() if v},
            "lost": {str(k): sorted(v) for k, v in self.lost.items() if v},
            "lost_floor": {str(k): v for k, v in self.lost_floor.items() if self.lost.get(k)},
            "unsettled": {str(k): sorted(v) for k, v in self.unsettled.items() if v},
            "departed": {str(k): sorted(v) for k, v in self.departed.items() if v},
            "since": self.catch_up.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, default_floor: int) -> Copies:
        """The inverse of :meth:`to_json`; ``default_floor`` for lost copies saved
        without one (any hit on such a shard may then be stale)."""
        copies = cls(ShardTable.from_json(data["table"]))
        copies.retiring = {int(k): set(v) for k, v in data.get("retiring", {}).items()}
        copies.lost = {int(k): set(v) for k, v in data.get("lost", {}).items()}
        floors = data.get("lost_floor", {})
        copies.lost_floor = {k: int(floors.get(str(k), default_floor)) for k in copies.lost}
        copies.unsettled = {int(k): set(v) for k, v in data.get("unsettled", {}).items()}
        copies.departed = {int(k): set(v) for k, v in data.get("departed", {}).items()}
        copies.catch_up = CatchUp.from_json(data.get("since", []))
        return copies
