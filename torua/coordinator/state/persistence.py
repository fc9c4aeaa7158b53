"""The coordinator's state on disk: written atomically, reloaded at start.

What is saved is what a restarted coordinator needs to resume without losing
an acknowledged write: the cluster id, the nodes, the shard table with its
in-sync sets, copies being handed over or lost, and the version high-water
mark. A write is atomic (temp file, fsync, rename, fsync of the directory), so
a crash leaves either the old state or the new one.

Saves are coalesced: many changes in a burst become one write. ``flush()``
waits until everything changed before the call is on disk; the router awaits it
before acknowledging a write that took a copy out of the in-sync set.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import trio

from torua.cluster.copies import Copies
from torua.cluster.states import NodeMode
from torua.cluster.suspects import Suspects
from torua.config import HealthSettings
from torua.coordinator.state.state import ClusterState
from torua.sim import seam

__all__ = ["FileBackend", "Persister", "StateBackend", "load_state", "restore", "snapshot"]

log = logging.getLogger(__name__)

FORMAT = 1


def snapshot(state: ClusterState) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "cluster_id": state.cluster_id,
        # The reserved ceiling, not the counter: a coordinator that starts from this
        # state issues versions above every one issued before (versions.py).
        "version_hwm": max(state.version_reserved, state.version_hwm),
        "version_reserved": max(state.version_reserved, state.version_hwm),
        # Every write at or below it has its outcome in this snapshot; a coordinator
        # that starts from it doubts the copies only above it (suspects.py).
        "settled": state.settled_watermark(),
        "suspect": state.suspects.to_json(),
        # Written true only by the last save of a coordinator that stopped with no
        # write in flight (any save after a start writes false, and the first write
        # waits for a save): a start from it has no half-written copies to doubt.
        "stopped_clean": state.writes_closed and not state.write_starts,
        "nodes": [
            {
                "id": r.id,
                "addr": r.addr,
                "capacity": r.capacity,
                "mode": r.mode,
                "registered_at": r.registered_at,
                "ever_healthy": r.ever_healthy,
                # A restart of an in-memory node is told from a blip by this, also
                # by a coordinator that did not see the node register.
                "incarnation": r.incarnation,
            }
            for r in state.registry.all()
        ],
        **state.copies.to_json(),
        # Nodes expected back, with wall-clock deadlines (shutdowns.py re-arms them).
        "shutdowns": state.shutdowns.to_json(),
        # Not restored by a new leader (it probes afresh); shown by followers, and
        # only while the leader that probed them (this epoch) still leads.
        "status": dict(state.health_status),
        "epoch": state.epoch,
        "config": {
            "health": {
                "interval": state.health.interval,
                "timeout": state.health.timeout,
                "failures": state.health.failures,
                "successes": state.health.successes,
                "kind": state.health.kind,
                "path": state.health.path,
            },
            "node_capacity": state.node_capacity,
            "max_moves": state.max_moves,
            "tombstone_grace": state.tombstone_grace,
            "replica_delay": state.replica_delay,
        },
    }


def restore(state: ClusterState, data: dict[str, Any], *, origin: str = "saved state") -> None:
    """Put a saved snapshot back into ``state``."""
    if data.get("format") != FORMAT:
        raise ValueError(f"{origin}: unknown state format {data.get('format')!r}")
    ceiling = max(int(data["version_hwm"]), int(data.get("version_reserved", 0)))
    if "version_reserved" not in data:
        # Saved by a version that took write versions from the wall clock (ns), and
        # saved them lazily: start above the clock, as those versions were.
        ceiling = max(ceiling, seam.current().time_ns())
    copies = Copies.from_json(data, default_floor=ceiling)
    table = copies.table
    if table.num_shards != state.table.num_shards:
        log.warning(
            "keeping the saved shard count %d (TORUA_SHARDS=%d is ignored: the shard "
            "count is fixed when a cluster is created)",
            table.num_shards,
            state.table.num_shards,
        )
    table.replication_factor = state.table.replication_factor
    state.copies = copies
    state.cluster_id = data["cluster_id"]
    state.version_hwm = state.version_reserved = state.version_saved = ceiling
    for node in data["nodes"]:
        record, _ = state.registry.register(node["id"], node["addr"], node["capacity"])
        record.mode = NodeMode(node["mode"])
        record.registered_at = node["registered_at"]
        record.ever_healthy = node["ever_healthy"]
        record.incarnation = node.get("incarnation")
    if config := data.get("config"):
        # Settings changed live through /cluster/config outlive a restart.
        state.health = HealthSettings(**config["health"])
        state.node_capacity = config["node_capacity"]
        state.max_moves = config["max_moves"]
        state.tombstone_grace = config.get("tombstone_grace", state.tombstone_grace)
        state.replica_delay = float(config.get("replica_delay", state.replica_delay))
    state.shutdowns.restore(data.get("shutdowns", {}))
    # Writes in flight when the saver died may be on some copies only (rule 13);
    # a state saved before the watermark existed vouches for no version at all.
    state.suspects = Suspects.from_json(data.get("suspect", {}))
    if not data.get("stopped_clean"):
        state.suspects.at_start(copies, int(data.get("settled", 0)))


def load_state(state: ClusterState, directory: Path) -> bool:
    """Restore the state file in ``directory`` into ``state``; False when there is none yet."""
    path = directory / "state.json"
    if not path.exists():
        return False
    restore(state, json.loads(path.read_text()), origin=str(path))
    return True


def _write_atomically(path: Path, payload: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class StateBackend(Protocol):
    """Where the leader's state is saved: a local file, or etcd (``torua.ha``)."""

    async def save(self, payload: bytes) -> bool:
        """Save; False when this coordinator may no longer write (it lost its lease)."""
        ...


class FileBackend:
    """The embedded default: ``DATA_DIR/coordinator/state.json``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def save(self, payload: bytes) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        await trio.to_thread.run_sync(_write_atomically, self.directory / "state.json", payload)
        return True


class Persister:
    """Coalescing, atomic saver; a no-op for an in-memory coordinator.

    ``on_lost`` runs when the backend refuses a save because another
    coordinator leads now; the caller ends its leadership term.
    """

    def __init__(
        self,
        state: ClusterState,
        backend: StateBackend | None,
        *,
        on_lost: Callable[[], None] | None = None,
        retry: float = 0.2,
    ) -> None:
        self._state = state
        self._backend = backend
        self._on_lost = on_lost
        self._retry = retry
        self._wanted = 0  # generation of the newest change
        self._saved = 0  # generation known to be saved
        self._changed = trio.Event()
        self._progress = trio.Event()

    def mark(self) -> None:
        self._wanted += 1
        self._changed.set()

    async def flush(self) -> None:
        if self._backend is None:
            return
        self.mark()
        target = self._wanted
        while self._saved < target:
            await self._progress.wait()

    async def _save(self) -> bool:
        assert self._backend is not None
        payload = json.dumps(snapshot(self._state)).encode()
        if await self._backend.save(payload):
            return True
        log.error("the state store refused a save: another coordinator leads now")
        if self._on_lost is not None:
            self._on_lost()
        return False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self._backend is None:
            task_status.started()
            await trio.sleep_forever()
        task_status.started()
        try:
            while True:
                await self._changed.wait()
                self._changed = trio.Event()
                generation = self._wanted
                try:
                    if not await self._save():
                        await trio.sleep_forever()
                except OSError as exc:  # EtcdUnavailable is an OSError too
                    log.warning("saving the cluster state failed (%s); retrying", exc)
                    self._changed.set()
                    await trio.sleep(self._retry)
                    continue
                self._saved = generation
                self._progress.set()
                self._progress = trio.Event()
        finally:
            if self._wanted > self._saved:
                # Last words on shutdown: shielded so a cancelled nursery still saves.
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    try:
                        await self._save()
                    except OSError as exc:
                        log.error("could not save the cluster state on the way out: %s", exc)
