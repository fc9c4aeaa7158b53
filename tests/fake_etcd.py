"""An in-process etcd stand-in for the election, on Trio's clock.

It keeps etcd's rules that the election depends on: revisions grow by one per
change, a key bound to a lease disappears when the lease expires (measured on
``trio.current_time()``, so the virtual clock drives expiry), a create
succeeds only if the key is absent. ``cut_off`` makes every call from the
named client fail, as a partition between that coordinator and etcd would.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import trio

from torua.ha.etcd import EtcdUnavailable, KeyValue


@dataclass
class FakeEtcd:
    revision: int = 1
    keys: dict[str, KeyValue] = field(default_factory=dict)
    leases: dict[int, tuple[float, float]] = field(default_factory=dict)  # id -> (ttl, expires)
    cut_off: set[str] = field(default_factory=set)
    latency: float = 0.001
    _next_lease: int = 100
    _changed: trio.Event = field(default_factory=trio.Event)

    def touch(self) -> None:
        self.revision += 1
        self._changed.set()
        self._changed = trio.Event()

    async def wait_change(self) -> None:
        """Until a key changes or the next lease runs out (which may delete keys)."""
        expiries = [expires for _, expires in self.leases.values()]
        with trio.move_on_at(min(expiries, default=float("inf"))):
            await self._changed.wait()
        self.expire()

    def client(self, name: str) -> FakeClient:
        return FakeClient(self, name)

    def expire(self) -> None:
        now = trio.current_time()
        for lease, (_, expires) in list(self.leases.items()):
            if expires <= now:
                del self.leases[lease]
                self._drop_lease(lease)

    def _drop_lease(self, lease: int) -> None:
        for key, kv in list(self.keys.items()):
            if kv.lease == lease:
                del self.keys[key]
                self.touch()

    def holder(self, key: str) -> KeyValue | None:
        self.expire()
        return self.keys.get(key)


@dataclass
class FakeClient:
    etcd: FakeEtcd
    name: str

    async def _enter(self) -> FakeEtcd:
        await trio.sleep(self.etcd.latency)
        if self.name in self.etcd.cut_off:
            raise EtcdUnavailable(f"{self.name}: cut off from etcd")
        self.etcd.expire()
        return self.etcd

    async def get(self, key: str) -> KeyValue | None:
        return (await self._enter()).keys.get(key)

    async def grant(self, ttl: float) -> tuple[int, float]:
        etcd = await self._enter()
        etcd._next_lease += 1
        granted = float(max(1, round(ttl)))
        etcd.leases[etcd._next_lease] = (granted, trio.current_time() + granted)
        return etcd._next_lease, granted

    async def keepalive(self, lease: int) -> float:
        etcd = await self._enter()
        if lease not in etcd.leases:
            return 0.0
        ttl, _ = etcd.leases[lease]
        etcd.leases[lease] = (ttl, trio.current_time() + ttl)
        return ttl

    async def revoke(self, lease: int) -> None:
        etcd = await self._enter()
        if etcd.leases.pop(lease, None) is not None:
            etcd._drop_lease(lease)

    async def create(self, key: str, value: bytes, lease: int) -> tuple[bool, KeyValue | None]:
        etcd = await self._enter()
        if key in etcd.keys:
            return False, etcd.keys[key]
        if lease not in etcd.leases:
            raise EtcdUnavailable("requested lease not found")
        etcd.touch()
        etcd.keys[key] = KeyValue(value, etcd.revision, etcd.revision, lease)
        return True, etcd.keys[key]

    async def put_if_owner(
        self, key: str, value: bytes, *, owner_key: str, owner_revision: int
    ) -> bool:
        etcd = await self._enter()
        owner = etcd.keys.get(owner_key)
        if owner is None or owner.create_revision != owner_revision:
            return False
        etcd.touch()
        old = etcd.keys.get(key)
        created = old.create_revision if old else etcd.revision
        etcd.keys[key] = KeyValue(value, created, etcd.revision, 0)
        return True

    async def watch(self, key: str, after: int) -> AsyncGenerator[dict[str, Any], None]:
        etcd = await self._enter()
        start = etcd.keys.get(key)
        while True:
            await etcd.wait_change()
            if self.name in etcd.cut_off:
                raise EtcdUnavailable(f"{self.name}: watch broken")
            now = etcd.keys.get(key)
            if now is None and start is not None:
                yield {"type": "DELETE"}
                return
            if now is not None and (start is None or now.mod_revision != start.mod_revision):
                yield {"type": "PUT"}
                return
