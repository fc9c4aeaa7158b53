"""Leader election on an etcd lease, with the leader key's revision as epoch.

A candidate creates the leader key in a transaction that succeeds only if the
key is absent, bound to a fresh lease. The key's create revision is the
epoch: etcd's revisions only grow, so a later leader always carries a larger
epoch, and nodes refuse anything signed with a smaller one (fencing, because
a lock alone is not safe: jepsen.io/analyses/etcd-3.4.3).

The leader renews its lease every TTL/3 and runs its work inside the term's
cancel scope (see :mod:`torua.ha.term`). Followers watch the key and campaign
as soon as it is deleted: by a lapsed lease, or by a leader that gave up its
lease on the way out, which makes a clean shutdown fail over at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, Protocol

import trio

from torua.ha.etcd import EtcdUnavailable, KeyValue
from torua.ha.term import Term
from torua.sim import seam

__all__ = ["Election", "ElectionStore", "StateStore"]

log = logging.getLogger(__name__)


class ElectionStore(Protocol):
    """What the election needs from etcd (a fake implements it for tests)."""

    async def get(self, key: str) -> KeyValue | None: ...
    async def grant(self, ttl: float) -> tuple[int, float]: ...
    async def keepalive(self, lease: int) -> float: ...
    async def revoke(self, lease: int) -> None: ...
    async def create(self, key: str, value: bytes, lease: int) -> tuple[bool, KeyValue | None]: ...
    def watch(self, key: str, after: int) -> AsyncGenerator[dict[str, Any], None]: ...


class StateStore(ElectionStore, Protocol):
    """Election plus the fenced state write and the read followers serve from."""

    async def put_if_owner(
        self, key: str, value: bytes, *, owner_key: str, owner_revision: int
    ) -> bool: ...


def margin_for(ttl: float) -> float:
    """Time kept in hand before the lease could lapse: cancellation must land first."""
    return max(0.2, 0.1 * ttl)


class Election:
    def __init__(
        self, store: ElectionStore, *, key: str, url: str, ttl: float, retry: float = 0.5
    ) -> None:
        self.store = store
        self.key = key
        self.url = url
        self.ttl = ttl
        self.retry = retry
        self.instance = seam.current().unique_hex()
        self.leader: str | None = None  # the leader's URL as last seen
        self.epoch = 0
        self.term: Term | None = None
        self.changed = trio.Event()  # set (and replaced) whenever leader or epoch changes

    @property
    def is_leader(self) -> bool:
        return self.term is not None and self.term.valid()

    def _observe(self, leader: str | None, epoch: int) -> None:
        if (leader, epoch) != (self.leader, self.epoch):
            self.leader, self.epoch = leader, max(epoch, self.epoch) if leader else self.epoch
            self.changed.set()
            self.changed = trio.Event()

    async def run(
        self,
        lead: Callable[[Term], Awaitable[None]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Campaign, lead, follow, forever. ``lead(term)`` is the leader's work."""
        task_status.started()
        failures = 0
        while True:
            try:
                await self._round(lead)
                failures = 0
            except EtcdUnavailable as exc:
                if failures % 20 == 0:
                    log.warning("etcd unavailable (%s); retrying", exc)
                failures += 1
                await trio.sleep(self.retry)

    async def _round(self, lead: Callable[[Term], Awaitable[None]]) -> None:
        current = await self.store.get(self.key)
        if current is None:
            sent = trio.current_time()
            lease, granted = await self.store.grant(self.ttl)
            value = json.dumps({"url": self.url, "instance": self.instance}).encode()
            won, current = await self.store.create(self.key, value, lease)
            if won:
                assert current is not None
                await self._lead(lease, sent + granted, current.create_revision, lead)
                return
            await self._forget(lease)
            if current is None:
                return
        holder = _holder(current)
        if holder.get("instance") == self.instance:
            # The key is ours from a term that ended while etcd was unreachable:
            # nobody acts under it, so waiting out its lease would only delay
            # the next election. A key naming another instance is followed
            # until its lease lapses, even under our own URL: identity is the
            # instance, never the address (two hosts may both bind 0.0.0.0).
            log.info("releasing the leader key of a term of ours that has ended")
            await self._forget(current.lease)
            await trio.sleep(self.retry / 5)
            return
        self._observe(holder.get("url"), current.create_revision)
        await self._follow(current)

    async def _follow(self, current: KeyValue) -> None:
        """Wait until the leader key changes; re-read at least once per TTL."""
        with trio.move_on_after(self.ttl):
            # aclosing: the stream under the watch is closed here, in this task.
            async with aclosing(self.store.watch(self.key, current.mod_revision)) as events:
                async for _event in events:
                    return
            # The stream ended without an event: do not hammer etcd with re-reads.
            await trio.sleep(self.retry)

    async def _lead(
        self, lease: int, expires: float, epoch: int, lead: Callable[[Term], Awaitable[None]]
    ) -> None:
        term = Term(epoch, expires - margin_for(self.ttl))
        self.term = term
        self._observe(self.url, epoch)
        log.info("elected leader (epoch %d, lease TTL %.0fs)", epoch, self.ttl)
        failed = False
        try:
            with term.guard():
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._renew, lease, term)
                    try:
                        await lead(term)
                    except EtcdUnavailable as exc:
                        log.warning("could not take up leadership (%s); stepping down", exc)
                        failed = True
                    nursery.cancel_scope.cancel()
        finally:
            lapsed = not term.valid()
            term.end()
            self.term = None
            self._observe(None, epoch)
            if lapsed:
                log.warning("leadership of epoch %d ended: the lease may have lapsed", epoch)
            else:
                log.info("leadership of epoch %d ended", epoch)
            with trio.CancelScope(shield=True):
                await self._forget(lease)
        if failed:
            await trio.sleep(self.retry)  # not straight back into a term that cannot start

    async def _renew(self, lease: int, term: Term) -> None:
        every = self.ttl / 3
        while True:
            await trio.sleep(every)
            sent = trio.current_time()
            try:
                remaining = await self.store.keepalive(lease)
            except EtcdUnavailable as exc:
                log.warning("lease renewal failed (%s); %.1fs left", exc, term.deadline - sent)
                every = min(self.ttl / 3, self.retry)
                continue
            if remaining <= 0:
                log.warning("the leader lease expired in etcd; stepping down")
                term.end()
                return
            every = self.ttl / 3
            term.extend(sent + remaining - margin_for(self.ttl))

    async def _forget(self, lease: int) -> None:
        """Give a lease back (best effort): its key goes at once, not after the TTL."""
        with trio.move_on_after(1.0):
            try:
                await self.store.revoke(lease)
            except EtcdUnavailable:
                pass


def _holder(kv: KeyValue) -> dict[str, Any]:
    try:
        data = json.loads(kv.value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
