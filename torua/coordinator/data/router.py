"""Route client reads and writes to the nodes holding the key's shard.

A write takes a version and goes to the shard's copies through
:mod:`torua.coordinator.data.replication` (which copies, and when it counts
as acknowledged); a copy holding a newer version makes it retry with a larger
one, never an acknowledgement. Reads go to the primary and fail over to the other
authoritative copies, and an answer counts only if its copy is still
authoritative when it arrives. A shard that lost copies with failed nodes
answers 503 for a miss, and for a hit older than what the lost copies may
hold, never a false 404 nor an old value.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial

from torua.cluster import Shard, shard_for_key
from torua.coordinator.data.assignments import AssignmentSync
from torua.coordinator.data.copy_actions import CopyActions
from torua.coordinator.data.outcomes import WriteOutcomes
from torua.coordinator.data.replication import (
    Judge,
    NotSent,
    Replication,
    Send,
    SendEach,
    StaleVersion,
    unavailable,
)
from torua.coordinator.data.versions import Versions
from torua.coordinator.data.write_tracker import KeysWriting, WriteTracker, unmark
from torua.coordinator.nodes.client import NodeClient, NodeUnreachable, Reply
from torua.coordinator.state.state import ClusterState
from torua.errors import ApiError, BadGateway, NotFound, Unavailable
from torua.fanout import fan_out

__all__ = ["WRITE_ATTEMPTS", "Router"]

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 4  # versions tried before a write answers 503


class Router:
    def __init__(
        self,
        state: ClusterState,
        nodes: NodeClient,
        sync: AssignmentSync,
        tracker: WriteTracker,
        actions: CopyActions,
        versions: Versions,
    ) -> None:
        self._state = state
        self._actions = actions
        self.versions = versions
        self._nodes = nodes
        self._sync = sync
        self._tracker = tracker
        self.outcomes = WriteOutcomes(state, actions)
        self._replication = Replication(state, sync, tracker, actions)
        # Keys with a write on its way to the copies: (shard, key) -> writes.
        self._in_flight: dict[tuple[int, str], int] = {}

    def shard_of(self, key: str) -> Shard:
        return self._state.table.shards[shard_for_key(key, self._state.table.num_shards)]

    def writing(self, shard_id: int, keys: Iterable[str]) -> KeysWriting:
        """Mark these keys as being written until the write has its outcome."""
        return KeysWriting(self._in_flight, [(shard_id, key) for key in keys])

    def needs_settle(self, shard_id: int, key: str) -> bool:
        """Whether a read must compare every copy instead of asking one.

        A key whose last write failed part-way, that has a write in flight, or
        whose shard may hold writes a restart left half-done: one copy may hold
        the new value while another does not, and a read answered from the first
        would be contradicted by the next one answered from the second, should
        the first fail meanwhile. Settling brings every
        copy to the newest version before answering, or answers 503.
        """
        return (
            (shard_id, key) in self._in_flight
            or self._state.copies.is_unsettled(shard_id, key)
            or shard_id in self._state.suspects  # copies may differ since a restart
        )

    async def get(self, key: str) -> bytes:
        shard = self.shard_of(key)
        shard_id = shard.shard_id
        if self.needs_settle(shard_id, key):
            return await self._settle(shard_id, key)
        candidates = self._state.readable_copies(shard_id)
        if not candidates:
            raise unavailable(shard)
        errors: list[str] = []
        unreachable = 0
        candidates = list(candidates)
        for node_id in candidates:  # grows when a handover ends meanwhile (below)
            if node_id not in self._state.readable_copies(shard_id):
                unreachable += 1  # left the authoritative set while an earlier copy was tried
                self._add_successors(shard_id, candidates)
                continue
            try:
                reply = await self._replication.call(
                    node_id, lambda addr: self._nodes.get(addr, shard_id, key)
                )
            except NodeUnreachable as exc:
                errors.append(str(exc))
                unreachable += 1
                continue
            if node_id not in self._state.readable_copies(shard_id):
                # It answered after leaving the set: it may miss an acknowledged write.
                # Its successor, in sync by now (a move's handover ended), is asked.
                errors.append(f"{node_id}: no longer in sync")
                unreachable += 1
                self._add_successors(shard_id, candidates)
                continue
            if reply.status == 200:
                self._check_not_older_than_lost(shard_id, reply.version)
                return reply.body
            if reply.status == 404 and reply.error_code == "key_not_found":
                if self._state.lost.get(shard_id):
                    raise Unavailable(
                        f"shard {shard_id} lost its copy on "
                        f"{', '.join(sorted(self._state.lost[shard_id]))}; the key may be "
                        "there, so this miss is not final",
                        code="incomplete_shard",
                    )
                raise NotFound(f"no key {key!r}", code="key_not_found")
            errors.append(f"{node_id}: HTTP {reply.status}")
        if unreachable == len(candidates) or not errors:
            raise unavailable(shard)
        raise BadGateway(f"every copy of shard {shard_id} failed: {'; '.join(errors)}")

    def _add_successors(self, shard_id: int, candidates: list[str]) -> None:
        """Copies that became authoritative since ``candidates`` was read."""
        candidates += [n for n in self._state.readable_copies(shard_id) if n not in candidates]

    async def _settle(self, shard_id: int, key: str) -> bytes:
        """Read every authoritative copy of a key whose last write failed part-way
        (or is still in flight), bring them all to the newest version found, then
        answer from that.

        Without this, reads would flip between the copy that took the failed write
        and one that did not.
        """
        shard = self._state.table.shards[shard_id]
        copies = self._state.readable_copies(shard_id)
        if not copies:
            raise unavailable(shard)
        found: dict[str, tuple[bytes | None, int]] = {}

        async def read(node_id: str) -> None:
            try:
                reply = await self._replication.call(
                    node_id, lambda addr: self._nodes.get(addr, shard_id, key)
                )
            except NodeUnreachable:
                return
            if reply.status == 200:
                found[node_id] = (reply.body, reply.version or 0)
            elif reply.status == 404 and reply.error_code == "key_not_found":
                found[node_id] = (None, reply.version or 0)

        await fan_out(read, copies)
        if set(found) != set(copies):
            raise Unavailable(
                f"key {key!r}: its last write failed part-way and not every copy of shard "
                f"{shard_id} answered to settle it; retry shortly",
                code="unsettled_key",
            )
        value, version = max(found.values(), key=lambda item: item[1])
        behind = [n for n, (_, v) in found.items() if v < version]
        if behind and version:
            await self.replicate_to(shard_id, behind, key, value, version)
        self._actions.now(self._state.copies.key_settled(shard_id, key))
        if value is None:
            if self._state.lost.get(shard_id):
                raise Unavailable(
                    f"shard {shard_id} lost copies; this miss is not final",
                    code="incomplete_shard",
                )
            raise NotFound(f"no key {key!r}", code="key_not_found")
        self._check_not_older_than_lost(shard_id, version)
        return value

    async def replicate_to(
        self, shard_id: int, node_ids: list[str], key: str, value: bytes | None, version: int
    ) -> None:
        """Repair: give these copies one version they lack; 503 unless all took it."""
        failed: list[str] = []

        async def one(node_id: str) -> None:
            try:
                reply = await self._replication.call(
                    node_id, partial(self._send_write, shard_id, key, value, version)
                )
            except NodeUnreachable:
                failed.append(node_id)
                return
            stored = reply.version or 0
            if reply.status != 204 or stored < version:
                failed.append(node_id)

        await fan_out(one, node_ids)
        if failed:
            raise Unavailable(
                f"key {key!r} could not be repaired on {', '.join(sorted(failed))}; retry",
                code="unsettled_key",
            )

    def _check_not_older_than_lost(self, shard_id: int, version: int | None) -> None:
        """A lost copy may hold any version below the shard's floor: a hit older than
        that may have been overwritten there, so it is not served (503)."""
        if self._state.copies.may_be_stale(shard_id, version):
            raise Unavailable(
                f"shard {shard_id} lost its copy on "
                f"{', '.join(sorted(self._state.lost[shard_id]))}, which may hold a newer "
                "version of this key",
                code="incomplete_shard",
            )

    async def write(self, key: str, value: bytes | None) -> None:
        shard_id = shard_for_key(key, self._state.table.num_shards)
        marked = (shard_id, key)  # as writing(), inline: this is every routed write
        in_flight = self._in_flight
        in_flight[marked] = in_flight.get(marked, 0) + 1
        try:
            await self._write(shard_id, key, value)
        finally:
            unmark(in_flight, marked)

    async def _write(self, shard_id: int, key: str, value: bytes | None) -> None:
        with self.outcomes.track(shard_id, (key,)):  # the settled watermark waits for it
            await self._write_attempts(shard_id, key, value)

    async def _write_attempts(self, shard_id: int, key: str, value: bytes | None) -> None:
        for _ in range(WRITE_ATTEMPTS):
            version = await self.versions.next()
            try:
                await self.replicate(
                    shard_id,
                    partial(self._send_write, shard_id, key, value, version),
                    expect=204,
                    judge=self._applied(version),
                    lowest=version,
                    send_each=partial(self._send_write_each, shard_id, key, value, version),
                )
            except StaleVersion:
                continue  # the newer version was observed: the next one is larger
            except NotSent:
                raise
            except ApiError:
                # Some copies may have applied it and others not: until a read or a
                # write settles the key, its copies must not be read one at a time.
                await self.write_failed(shard_id, [key])
                raise
            self.write_settled(shard_id, [key])  # every in-sync copy has it
            return
        raise Unavailable(
            f"copies of shard {shard_id} kept holding newer versions of {key!r}; retry",
            code="version_conflict",
        )

    async def write_failed(self, shard_id: int, keys: list[str]) -> None:
        """Writes of these keys failed on the copies but may have landed on some:
        saved as unsettled before the error is answered (reads repair them)."""
        instructions = [i for key in keys for i in self._state.copies.key_failed(shard_id, key)]
        await self._actions.durably(instructions)

    def write_settled(self, shard_id: int, keys: list[str]) -> None:
        """Acknowledged writes of these keys: their copies agree again."""
        copies = self._state.copies
        self._actions.now([i for key in keys for i in copies.key_settled(shard_id, key)])

    async def _send_write(
        self, shard_id: int, key: str, value: bytes | None, version: int, addr: str
    ) -> Reply:
        return await self._nodes.write(addr, shard_id, key, value, version)

    async def _send_write_each(
        self, shard_id: int, key: str, value: bytes | None, version: int, addrs: list[str]
    ) -> list[Reply | NodeUnreachable]:
        return await self._nodes.write_each(addrs, shard_id, key, value, version)

    def _applied(self, version: int) -> Judge:
        def judge(reply: Reply) -> bool:
            if reply.headers.get("x-torua-applied") != "0":
                return True
            stored = reply.version
            # Equal: this very write is already there (a resend). Larger, issued by
            # us: a newer write overtook this one there, which is as if this one
            # took effect just before it; resending it above the newer one would
            # apply it twice. Larger than anything issued: the counter is behind.
            if stored is not None and stored >= version and self.versions.ours(stored):
                return True
            self.versions.observe(stored)
            return stored == version

        return judge

    async def replicate(
        self,
        shard_id: int,
        send: Send,
        *,
        expect: int,
        judge: Judge | None = None,
        lowest: int = 0,
        send_each: SendEach | None = None,
    ) -> None:
        """See :meth:`Replication.replicate` (bulk batches use it too)."""
        await self._replication.replicate(
            shard_id, send, expect=expect, judge=judge, lowest=lowest, send_each=send_each
        )

    async def read_from_copies(self, shard_id: int, send: Send) -> Reply:
        """The first authoritative copy's 200 answer, primary first."""
        shard = self._state.table.shards[shard_id]
        candidates = self._state.readable_copies(shard_id)
        errors: list[str] = []
        for node_id in candidates:
            if node_id not in self._state.readable_copies(shard_id):
                continue
            try:
                reply = await self._replication.call(node_id, send)
            except NodeUnreachable as exc:
                errors.append(str(exc))
                continue
            if node_id not in self._state.readable_copies(shard_id):
                errors.append(f"{node_id}: no longer in sync")
                continue
            if reply.status == 200:
                return reply
            errors.append(f"{node_id}: HTTP {reply.status}")
        if all("HTTP" not in e for e in errors):
            raise unavailable(shard)
        raise BadGateway(f"every copy of shard {shard_id} failed: {'; '.join(errors)}")
