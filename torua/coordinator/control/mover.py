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
* **reconcile**: after a restart, a shard whose copies may differ above a
  version exchanges those records between its copies (:mod:`.reconcile`).

Cancelling a fill part-way (the copy was moved again, its node failed, the
coordinator stopped) leaves the old copies authoritative: nothing is declared
in sync until the copy is whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from torua.cluster.instructions import Save
from torua.cluster.states import CopyJob, FillKind, NodeStatus
from torua.coordinator.control.reconcile import reconcilable, reconcile_shard
from torua.coordinator.data.assignments import AssignmentSync
from torua.coordinator.data.copy_actions import CopyActions
from torua.coordinator.data.page_copy import MoveAborted, copy_pages, ok_or_abort
from torua.coordinator.data.write_tracker import WriteTracker
from torua.coordinator.nodes.client import NodeClient, NodeUnreachable
from torua.coordinator.state.state import ClusterState
from torua.sim import seam

__all__ = ["Mover"]

log = logging.getLogger(__name__)

RETRY_AFTER = 1.0


class Mover:
    def __init__(
        self,
        state: ClusterState,
        nodes: NodeClient,
        sync: AssignmentSync,
        tracker: WriteTracker,
        actions: CopyActions,
    ) -> None:
        self._state = state
        self._nodes = nodes
        self._sync = sync
        self._tracker = tracker
        self._actions = actions
        actions.worker = self
        self._nursery: trio.Nursery | None = None
        self._wake = trio.Event()
        self._running: dict[tuple[CopyJob, int, str], trio.CancelScope] = {}
        self._progress = trio.Event()
        self.completed = 0
        # What fills moved, full and delta (for /metrics: a planned restart should
        # move a small fraction of what a full fill would).
        self.fill_bytes = {"full": 0, "delta": 0}
        self.fill_records = {"full": 0, "delta": 0}

    def kick(self) -> None:
        """Something changed: look for work, and let waiters re-check (a rollback
        can settle a shard with no job of ours finishing)."""
        self._wake.set()
        self._progressed()

    def schedule_drop(self, node_id: str, shard_id: int) -> None:
        """Delete the node's data of the shard once its assignment no longer lists it."""
        if self._nursery is not None:
            self._nursery.start_soon(self._drop_after_revoke, node_id, shard_id)

    def busy(self) -> int:
        return len(self._running)

    def _progressed(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    async def wait_settled(self, shard_ids: set[int]) -> None:
        """Until every copy of these shards is in sync and no handover is pending."""

        while not all(self._state.copies.settled(s) for s in shard_ids):
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
        state = self._state
        return (
            node_id in state.registry
            and state.status_of(node_id) == NodeStatus.HEALTHY
            and not state.shutdowns.gone(node_id)  # stopping for a restart
        )

    def _work(self) -> list[tuple[CopyJob, int, str]]:
        table = self._state.table
        fills = [(s, n) for s, n in self._state.syncing() if self._healthy(n)]
        # Primaries first: a shard whose primary is being rebuilt is the one at risk.
        fills.sort(key=lambda job: table.shards[job[0]].primary != job[1])
        # Reconciles first: cheap deltas, and the shard's reads are slow until done.
        ready = reconcilable(self._state, self._healthy)
        jobs = [(CopyJob.RECONCILE, s, "its copies") for s in ready]
        jobs += [(CopyJob.FILL, s, n) for s, n in fills]
        jobs += [(CopyJob.MERGE, s, n) for s, n in self._state.copies.merges() if self._healthy(n)]
        return jobs

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                self._release_finished_handovers()
                for job in self._work():
                    if job in self._running or len(self._running) >= self._state.max_moves:
                        continue
                    scope = trio.CancelScope()
                    self._running[job] = scope
                    nursery.start_soon(self._run_job, job, scope)
                with trio.move_on_after(RETRY_AFTER):
                    await self._wake.wait()
                self._wake = trio.Event()

    async def _run_job(self, job: tuple[CopyJob, int, str], scope: trio.CancelScope) -> None:
        kind, shard_id, node_id = job
        try:
            with scope:
                if kind == CopyJob.FILL:
                    await self._fill(shard_id, node_id)
                elif kind == CopyJob.MERGE:
                    await self._merge(shard_id, node_id)
                else:
                    await self._reconcile(shard_id)
        except (MoveAborted, NodeUnreachable) as exc:
            log.info("%s of shard %d on %s stopped: %s", kind, shard_id, node_id, exc)
            await trio.sleep(RETRY_AFTER)
        finally:
            del self._running[job]
            self._progressed()
            self.kick()

    def _still_wanted(self, shard_id: int, node_id: str) -> None:
        if not self._state.copies.wants_fill(shard_id, node_id):
            raise MoveAborted(f"copy of shard {shard_id} on {node_id} is no longer to be filled")
        if not self._healthy(node_id):
            raise MoveAborted(f"{node_id} is not healthy")

    async def _copy_pages(
        self,
        shard_id: int,
        source: str,
        target: str,
        check: Callable[[], None],
        since: int = 0,
        kind: FillKind | None = None,
    ) -> int:
        """Copy the source's records newer than ``since`` (all by default) into the target.

        ``since`` lets a copy that already holds everything up to a version catch
        up on the rest only, instead of taking the whole shard again.
        """
        counted = None
        if kind is not None:

            def counted(size: int, records: int) -> None:
                self.fill_bytes[kind] += size
                self.fill_records[kind] += records

        return await copy_pages(
            self._nodes,
            shard_id,
            lambda: self._addr(source),
            lambda: self._addr(target),
            check,
            since,
            counted=counted,
        )

    async def _fill(self, shard_id: int, target: str) -> None:
        self._still_wanted(shard_id, target)
        pushed = await self._sync.push(target)
        if pushed.get(target):
            raise MoveAborted(f"{target} did not take its assignment: {pushed[target]}")
        wiped = await self._wipe_if_away_too_long(shard_id, target)
        epoch = self._tracker.bump(shard_id)
        await self._tracker.wait_older(shard_id, epoch)
        self._tracker.take_missed(shard_id, target)
        donors = self._state.copies.fill_donors(shard_id, target, self._state.is_up)
        if not donors:
            raise MoveAborted(f"no authoritative copy of shard {shard_id} to fill from")
        donor = donors[0]
        started = trio.current_time()
        # Read only now: every write that began before the bump has finished and
        # lowered it if it missed the copy; later ones reach the copy directly.
        # A wiped copy holds nothing: whatever its catch-up point, it takes everything.
        since = 0 if wiped else self._state.copies.catch_up_from(shard_id, target)
        kind = FillKind.DELTA if since else FillKind.FULL
        copied = await self._copy_pages(
            shard_id,
            donor,
            target,
            lambda: self._still_wanted(shard_id, target),
            since=since,
            kind=kind,
        )
        # Writes still in flight may yet fail on the target: wait for them to end
        # before judging it complete (later ones see it in sync and drop it if they
        # fail there).
        epoch = self._tracker.bump(shard_id)
        await self._tracker.wait_older(shard_id, epoch)
        self._still_wanted(shard_id, target)
        if self._tracker.take_missed(shard_id, target):
            raise MoveAborted(f"{target} missed a write while being filled")
        await self._actions.durably(self._state.copies.fill_done(shard_id, target, donor))
        self.completed += 1
        log.info(
            "shard %d: copy on %s filled from %s (%s: %d records above version %d, %.2fs)",
            shard_id,
            target,
            donor,
            kind,
            copied,
            since,
            trio.current_time() - started,
        )

    async def _wipe_if_away_too_long(self, shard_id: int, target: str) -> bool:
        """Empty a copy not seen in sync within the tombstone grace before filling it:
        merging what it holds could bring back keys whose tombstones were purged.
        Before the fill's first write epoch, so every write it wipes is also in the
        donor's pages (docs/replication.md, "Tombstone GC"). True when it wiped."""
        state = self._state
        if state.in_sync_times.needs_full_fill(
            state.copies, shard_id, target, seam.wall_time(), state.tombstone_grace
        ):
            if not state.copies.fill_donors(shard_id, target, state.is_up):
                # Wipe only what an authoritative copy can give back.
                raise MoveAborted(f"no authoritative copy of shard {shard_id} to fill from")
            ok_or_abort(await self._nodes.wipe(self._addr(target), shard_id))
            return True
        return False

    async def _merge(self, shard_id: int, returning: str) -> None:
        """A returning node's lost copy goes back into the shard (highest version wins)."""
        shard = self._state.table.shards[shard_id]
        if not self._state.copies.merge_targets(shard_id, returning, self._state.is_up):
            raise MoveAborted(f"shard {shard_id} is still moving; merging later")
        copied = 0
        merged: set[str] = set()
        while pending := [n for n in shard.copies if n != returning and n not in merged]:
            # Copies placed while the merge ran get it too: the set is read again.
            for target in pending:
                copied = await self._copy_pages(shard_id, returning, target, lambda: None)
                merged.add(target)
        into = sorted(merged)[0]
        await self._actions.durably(self._state.copies.merge_done(shard_id, returning, into))
        log.info("shard %d: lost copy on %s merged back (%d records)", shard_id, returning, copied)

    async def _reconcile(self, shard_id: int) -> None:
        """Make a suspect shard's copies agree; the cleared mark is saved (lazily:
        a coordinator that dies first reconciles again, which is harmless)."""
        copied = await reconcile_shard(self._state, self._copy_pages, self._healthy, shard_id)
        if shard_id not in self._state.suspects:
            self._actions.now([Save("a shard's copies were reconciled")])
            log.info("shard %d: copies reconciled (%d records exchanged)", shard_id, copied)

    def _release_finished_handovers(self) -> None:
        """Retiring copies whose successors are all in sync and up are no longer needed."""
        if self._actions.now(self._state.copies.handovers_done(self._state.is_up)):
            self._progressed()

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
