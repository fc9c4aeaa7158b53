"""Make shard copies real: fill new copies with data, merge lost copies back.

Placement changes the table at once; this service does the data work behind
it, at most ``max_moves`` shard copies at a time:

* **fill**: a copy that is not in sync (new, or one that missed a write) is
  filled from an authoritative copy while it already receives every new write;
  it joins the in-sync set only when complete. Copies it replaces stay
  authoritative ("retiring") until then, and are dropped afterwards.
* **merge**: a node that returns holding a copy the cluster had lost (R = 1)
  has that copy merged into the shard's copies (highest version wins), which
  makes the shard complete again.

Cancelling a fill part-way (the copy was moved again, its node failed, the
coordinator stopped) leaves the old copies authoritative: nothing is declared
in sync until the copy is whole.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import trio

from torua.cluster.handover import handover_done
from torua.coordinator.assignments import AssignmentSync
from torua.coordinator.node_client import NodeClient, NodeUnreachable, Reply
from torua.coordinator.persistence import Persister
from torua.coordinator.state import ClusterState
from torua.coordinator.write_tracker import WriteTracker
from torua.events import ClusterEvent, ShardMoved

__all__ = ["Mover"]

log = logging.getLogger(__name__)

RETRY_AFTER = 1.0


class MoveAborted(Exception):
    """The copy is no longer wanted, or a node failed; try again later if still needed."""


class Mover:
    def __init__(
        self,
        state: ClusterState,
        nodes: NodeClient,
        sync: AssignmentSync,
        tracker: WriteTracker,
        persister: Persister,
        publish: Callable[[ClusterEvent], None],
    ) -> None:
        self._state = state
        self._nodes = nodes
        self._sync = sync
        self._tracker = tracker
        self._persister = persister
        self._publish = publish
        self._wake = trio.Event()
        self._running: dict[tuple[str, int, str], trio.CancelScope] = {}
        self._progress = trio.Event()
        self.completed = 0

    def kick(self) -> None:
        """Something changed: look for work, and let waiters re-check (a rollback
        can settle a shard with no job of ours finishing)."""
        self._wake.set()
        self._progressed()

    def busy(self) -> int:
        return len(self._running)

    def _progressed(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    async def wait_settled(self, shard_ids: set[int]) -> None:
        """Until every copy of these shards is in sync and no handover is pending."""

        def settled() -> bool:
            for shard_id in shard_ids:
                shard = self._state.table.shards[shard_id]
                if self._state.retiring.get(shard_id):
                    return False
                if any(n not in shard.in_sync for n in shard.copies):
                    return False
            return True

        while not settled():
            await self._progress.wait()

    async def wait_released(self, node_id: str) -> None:
        """Until the node holds no copy, retiring ones included."""
        while self._state.held_by(node_id):
            await self._progress.wait()

    async def wait_in_sync(self, shard_id: int, node_id: str) -> None:
        shard = self._state.table.shards[shard_id]
        while node_id in shard.copies and node_id not in shard.in_sync:
            await self._progress.wait()

    def _addr(self, node_id: str) -> str:
        record = self._state.registry.get(node_id)
        if record is None:
            raise MoveAborted(f"node {node_id} is gone")
        return record.addr

    def _healthy(self, node_id: str) -> bool:
        return node_id in self._state.registry and self._state.status_of(node_id) == "healthy"

    def _work(self) -> list[tuple[str, int, str]]:
        table = self._state.table
        fills = [(s, n) for s, n in self._state.syncing() if self._healthy(n)]
        # Primaries first: a shard whose primary is being rebuilt is the one at risk.
        fills.sort(key=lambda job: table.shards[job[0]].primary != job[1])
        jobs = [("fill", s, n) for s, n in fills]
        jobs += [
            ("merge", s, n)
            for s, nodes in self._state.lost.items()
            for n in sorted(nodes)
            if self._healthy(n)
        ]
        return jobs

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                self._release_finished_handovers(nursery)
                for job in self._work():
                    if job in self._running or len(self._running) >= self._state.max_moves:
                        continue
                    scope = trio.CancelScope()
                    self._running[job] = scope
                    nursery.start_soon(self._run_job, job, scope)
                with trio.move_on_after(RETRY_AFTER):
                    await self._wake.wait()
                self._wake = trio.Event()

    async def _run_job(self, job: tuple[str, int, str], scope: trio.CancelScope) -> None:
        kind, shard_id, node_id = job
        try:
            with scope:
                if kind == "fill":
                    await self._fill(shard_id, node_id)
                else:
                    await self._merge(shard_id, node_id)
        except (MoveAborted, NodeUnreachable) as exc:
            log.info("%s of shard %d on %s stopped: %s", kind, shard_id, node_id, exc)
            await trio.sleep(RETRY_AFTER)
        finally:
            del self._running[job]
            self._progressed()
            self.kick()

    def _still_wanted(self, shard_id: int, node_id: str) -> None:
        shard = self._state.table.shards[shard_id]
        if node_id not in shard.copies or node_id in shard.in_sync:
            raise MoveAborted(f"copy of shard {shard_id} on {node_id} is no longer to be filled")
        if not self._healthy(node_id):
            raise MoveAborted(f"{node_id} is not healthy")

    async def _copy_pages(
        self, shard_id: int, source: str, target: str, check: Callable[[], None]
    ) -> int:
        after: str | None = None
        copied = 0
        while True:
            page = _ok(await self._nodes.export_page(self._addr(source), shard_id, after))
            data = json.loads(page.body)
            if not data["records"]:
                return copied
            check()
            _ok(await self._nodes.import_page(self._addr(target), shard_id, data["records"]))
            copied += len(data["records"])
            after = data["next"]

    async def _fill(self, shard_id: int, target: str) -> None:
        self._still_wanted(shard_id, target)
        pushed = await self._sync.push(target)
        if pushed.get(target):
            raise MoveAborted(f"{target} did not take its assignment: {pushed[target]}")
        epoch = self._tracker.bump(shard_id)
        await self._tracker.wait_older(shard_id, epoch)
        self._tracker.take_missed(shard_id, target)
        donors = [n for n in self._state.readable_copies(shard_id) if n != target]
        if not donors:
            raise MoveAborted(f"no authoritative copy of shard {shard_id} to fill from")
        donor = donors[0]
        started = trio.current_time()
        copied = await self._copy_pages(
            shard_id, donor, target, lambda: self._still_wanted(shard_id, target)
        )
        self._still_wanted(shard_id, target)
        if self._tracker.take_missed(shard_id, target):
            raise MoveAborted(f"{target} missed a write while being filled")
        self._state.table.shards[shard_id].in_sync.add(target)
        self._persister.mark()
        await self._persister.flush()
        self.completed += 1
        log.info(
            "shard %d: copy on %s filled from %s (%d records, %.2fs)",
            shard_id,
            target,
            donor,
            copied,
            trio.current_time() - started,
        )
        self._publish(
            ShardMoved(
                shard_id=shard_id,
                source=donor,
                target=target,
                primary=target == self._state.table.shards[shard_id].primary,
                reason="filled",
            )
        )

    async def _merge(self, shard_id: int, returning: str) -> None:
        """A returning node's lost copy goes back into the shard (highest version wins)."""
        shard = self._state.table.shards[shard_id]
        if self._state.retiring.get(shard_id) or not handover_done(shard, self._state.is_up):
            # Merge only into a settled shard: a retiring or half-filled copy would
            # miss the merged writes while the shard already counted as complete.
            raise MoveAborted(f"shard {shard_id} is still moving; merging later")
        targets = [n for n in shard.copies if n != returning]
        if not targets:
            raise MoveAborted(f"shard {shard_id} has no in-sync copy to merge into")
        copied = 0
        for target in targets:
            copied = await self._copy_pages(shard_id, returning, target, lambda: None)
        if returning not in shard.copies:
            await self._drop_copy(returning, shard_id)
        self._state.lost.get(shard_id, set()).discard(returning)
        self._persister.mark()
        log.info("shard %d: lost copy on %s merged back (%d records)", shard_id, returning, copied)
        self._publish(
            ShardMoved(
                shard_id=shard_id,
                source=returning,
                target=targets[0],
                primary=False,
                reason="merged",
            )
        )

    def _release_finished_handovers(self, nursery: trio.Nursery) -> None:
        """Retiring copies whose successors are all in sync are no longer needed."""
        for shard_id, nodes in list(self._state.retiring.items()):
            done = handover_done(self._state.table.shards[shard_id], self._state.is_up)
            if not nodes:
                del self._state.retiring[shard_id]
            elif done:
                released = set(nodes)
                del self._state.retiring[shard_id]
                self._persister.mark()
                self._progressed()
                for node_id in released:
                    self._sync.mark(node_id)
                    nursery.start_soon(self._drop_after_revoke, node_id, shard_id)

    async def _drop_after_revoke(self, node_id: str, shard_id: int) -> None:
        try:
            await self._sync.push(node_id)
            await self._drop_copy(node_id, shard_id)
        except (MoveAborted, NodeUnreachable) as exc:
            log.info("could not drop shard %d from %s: %s", shard_id, node_id, exc)

    async def _drop_copy(self, node_id: str, shard_id: int) -> None:
        if node_id in self._state.held_by_list(shard_id):
            return
        reply = await self._nodes.drop(self._addr(node_id), shard_id)
        if reply.status not in (200, 409):
            log.info("drop of shard %d on %s: HTTP %d", shard_id, node_id, reply.status)


def _ok(reply: Reply) -> Reply:
    if reply.status != 200:
        raise MoveAborted(f"HTTP {reply.status}: {reply.body[:200]!r}")
    return reply
