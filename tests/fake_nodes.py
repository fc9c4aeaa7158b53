"""Scripted nodes for router and mover tests: stores in dicts, faults on demand.

Each node keeps versioned records like a real store (highest version wins,
tombstones kept) and answers the way the node API does, headers included, so
the coordinator's code under test cannot tell it from a real node. A test
makes a node fail (``fail``), hang until released (``gate``), or report a
version of its own (by writing into ``records``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from torua.config import CoordinatorSettings
from torua.coordinator.data.assignments import AssignmentSync
from torua.coordinator.data.copy_actions import CopyActions
from torua.coordinator.data.router import Router
from torua.coordinator.data.versions import Versions
from torua.coordinator.data.write_tracker import WriteTracker
from torua.coordinator.nodes.client import NodeUnreachable, Reply
from torua.coordinator.state.persistence import Persister
from torua.coordinator.state.state import ClusterState
from torua.fanout import fan_out
from torua.http.records import decode_frames, encode_cursor, encode_frames


@dataclass
class FakeNode:
    records: dict[tuple[int, str], tuple[bytes | None, int]] = field(default_factory=dict)
    fail: str | None = None  # "unreachable", "500", or "apply-then-unreachable"
    gate: trio.Event | None = None  # requests wait for it when set
    get_gate: trio.Event | None = None  # reads only
    write_gate: trio.Event | None = None  # single-key writes only
    import_gate: trio.Event | None = None  # imports only
    incarnation: str = "i1"
    held: bool = True  # False: writes answer 404 shard_not_held until an assignment comes
    calls: int = 0
    exports: list[tuple[str | None, int]] = field(default_factory=list)  # (after, since) asked
    imported: list[tuple[str, int]] = field(default_factory=list)  # (key, version) received


class FakeNodeClient:
    """The subset of NodeClient that Router and Mover call."""

    def __init__(self, nodes: dict[str, FakeNode]) -> None:
        self.nodes = nodes

    def _node(self, addr: str) -> FakeNode:
        return self.nodes[addr.removeprefix("http://")]

    async def _enter(self, node: FakeNode, addr: str) -> None:
        node.calls += 1
        if node.gate is not None:
            await node.gate.wait()
        if node.fail == "unreachable":
            raise NodeUnreachable(f"{addr} is down")

    async def get(self, addr: str, shard_id: int, key: str) -> Reply:
        node = self._node(addr)
        if node.get_gate is not None:
            await node.get_gate.wait()
        await self._enter(node, addr)
        if node.fail == "500":
            return Reply(500, b"{}", {})
        value, version = node.records.get((shard_id, key), (None, 0))
        headers = {"x-torua-version": str(version)} if version else {}
        if value is None:
            return Reply(404, b'{"error": "key_not_found"}', headers)
        return Reply(200, value, headers)

    async def write(
        self, addr: str, shard_id: int, key: str, value: bytes | None, version: int
    ) -> Reply:
        node = self._node(addr)
        if node.write_gate is not None:
            await node.write_gate.wait()
        await self._enter(node, addr)
        if node.fail == "500":
            return Reply(500, b"{}", {})
        if not node.held:
            return Reply(404, b'{"error": "shard_not_held"}', {})
        stored = node.records.get((shard_id, key), (None, 0))[1]
        applied = version > stored
        if applied:
            node.records[(shard_id, key)] = (value, version)
        if node.fail == "apply-then-unreachable":
            raise NodeUnreachable(f"{addr} timed out after applying")
        headers = {
            "x-torua-version": str(version if applied else stored),
            "x-torua-applied": "1" if applied else "0",
        }
        return Reply(204, b"", headers)

    async def write_each(
        self, addrs: list[str], shard_id: int, key: str, value: bytes | None, version: int
    ) -> list[Reply | NodeUnreachable]:
        async def one(addr: str) -> Reply | NodeUnreachable:
            try:
                return await self.write(addr, shard_id, key, value, version)
            except NodeUnreachable as exc:
                return exc

        return await fan_out(one, addrs)

    async def export_page(
        self, addr: str, shard_id: int, after: str | None, *, since: int = 0, limit: int = 1000
    ) -> Reply:
        node = self._node(addr)
        await self._enter(node, addr)
        node.exports.append((after, since))
        if node.fail == "500":
            return Reply(500, b"{}", {})
        keys = sorted(k for s, k in node.records if s == shard_id and (after is None or k > after))
        page = keys[:limit]
        rows = [(k, *node.records[(shard_id, k)]) for k in page]
        frames = encode_frames((k, v, ver) for k, v, ver in rows if ver > since)
        headers = {"x-torua-next": encode_cursor(page[-1])} if len(keys) > limit else {}
        return Reply(200, frames, headers)

    async def import_page(self, addr: str, shard_id: int, frames: bytes) -> Reply:
        node = self._node(addr)
        if node.import_gate is not None:
            await node.import_gate.wait()
        await self._enter(node, addr)
        if node.fail == "500":
            return Reply(500, b"{}", {})
        rows = decode_frames(frames, max_records=10_000)
        node.imported += [(k, ver) for k, _, ver in rows]
        for key, value, version in rows:
            if version > node.records.get((shard_id, key), (None, 0))[1]:
                node.records[(shard_id, key)] = (value, version)
        return Reply(200, json.dumps({"received": len(rows)}).encode(), {})

    async def import_sections(self, addr: str, sections: bytes) -> Reply:
        """A bulk write's batched import (several shards); held by ``write_gate`` too."""
        from torua.http.records import decode_sections

        node = self._node(addr)
        if node.write_gate is not None:
            await node.write_gate.wait()
        await self._enter(node, addr)
        if node.fail == "500":
            return Reply(500, b"{}", {})
        results = []
        for shard_id, rows in decode_sections(sections, max_records=10_000):
            for key, value, version in rows:
                if version > node.records.get((shard_id, key), (None, 0))[1]:
                    node.records[(shard_id, key)] = (value, version)
            results.append({"status": 200, "received": len(rows)})
        return Reply(200, json.dumps({"results": results}).encode(), {})

    async def drop(self, addr: str, shard_id: int) -> Reply:
        node = self._node(addr)
        for key in [k for k in node.records if k[0] == shard_id]:
            del node.records[key]
        return Reply(200, b"{}", {})

    async def wipe(self, addr: str, shard_id: int) -> Reply:
        node = self._node(addr)
        await self._enter(node, addr)
        for key in [k for k in node.records if k[0] == shard_id]:
            del node.records[key]
        return Reply(200, b"{}", {})

    async def control(self, addr: str, message: dict[str, Any], *, deadline: float) -> Reply:
        node = self._node(addr)
        await self._enter(node, addr)
        body = {"incarnation": node.incarnation, "max_version": 0}
        wanted = message.get("incarnation")
        if wanted is not None and wanted != node.incarnation:
            body["error"] = "incarnation_mismatch"
            return Reply(409, json.dumps(body).encode(), {})
        node.held = True
        return Reply(200, json.dumps({"ack": True, **body}).encode(), {})


class GatedBackend:
    """A state store whose saves can be held back, to see what is visible meanwhile."""

    def __init__(self) -> None:
        self.saved: list[dict[str, Any]] = []
        self.open = trio.Event()
        self.open.set()

    async def save(self, payload: bytes) -> bool:
        await self.open.wait()
        self.saved.append(json.loads(payload))
        return True

    def saved_in_sync(self, shard_id: int) -> set[str]:
        return set(self.saved[-1]["table"]["shards"][shard_id]["in_sync"]) if self.saved else set()


@dataclass
class RouterRig:
    state: ClusterState
    nodes: dict[str, FakeNode]
    client: FakeNodeClient
    backend: GatedBackend
    persister: Persister
    router: Router
    tracker: WriteTracker
    sync: AssignmentSync
    actions: CopyActions


@asynccontextmanager
async def router_rig(copies: list[str], *, shards: int = 1) -> AsyncIterator[RouterRig]:
    """One shard (or more) held by ``copies``, all in sync and healthy."""
    state = ClusterState(CoordinatorSettings(shards=shards, replication_factor=len(copies)))
    nodes = {name: FakeNode() for name in copies}
    for name in copies:
        state.registry.register(name, f"http://{name}", None)
        state.health_status[name] = "healthy"
    for shard in state.table.shards:
        shard.copies = list(copies)
        shard.in_sync = set(copies)
    client = FakeNodeClient(nodes)
    backend = GatedBackend()
    persister = Persister(state, backend)
    tracker = WriteTracker()
    sync = AssignmentSync(state, client)  # type: ignore[arg-type]
    actions = CopyActions(persister, sync, lambda event: None, tracker)
    router = Router(state, client, sync, tracker, actions, Versions(state, persister))  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(persister.run)
        yield RouterRig(state, nodes, client, backend, persister, router, tracker, sync, actions)
        nursery.cancel_scope.cancel()
