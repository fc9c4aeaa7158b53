"""The simulated processes: one coordinator and its nodes, each on its own host.

A process is a task that installs its :class:`SimHost` and runs the real
``Coordinator`` or ``Node`` inside a cancel scope. A crash is the network
dropping the host (listeners closed, peers read EOF) and the scope cancelled;
a restart is a new task with a new service object. A node's store is an
in-memory store kept across crashes, with its incarnation, as a durable data
directory would keep them, unless the crash loses the data.
"""

from __future__ import annotations

import json
import random
import traceback
from collections.abc import Callable
from typing import Protocol

import trio

from torua.config import CoordinatorSettings, HealthSettings, NodeSettings
from torua.coordinator.service import Coordinator
from torua.coordinator.state.persistence import StateBackend, restore
from torua.coordinator.state.state import ClusterState
from torua.ha import HACoordinator
from torua.ha.etcd import EtcdUnavailable
from torua.node.service import Node
from torua.node.store import MemoryStore
from torua.sim.seam import installed

from ..fake_etcd import FakeClient, FakeEtcd
from .hosts import SimHost
from .network import SimNetwork

__all__ = ["Proc", "SimCluster", "COORDINATOR", "CLIENT", "ETCD"]

COORDINATOR = "coord"
CLIENT = "client"
ETCD = "etcd"
ETCD_TIMEOUT = 2.0  # how long an etcd call across a partition waits before failing
COORDINATOR_PORT = 8080
NODE_PORT = 7000


class Service(Protocol):
    def stop(self) -> None: ...

    async def run(self, *, task_status: trio.TaskStatus[str] = ...) -> None: ...


class SimDisk:
    """The coordinator's saved state: survives its crashes; a save can be slow."""

    def __init__(self) -> None:
        self.payload: bytes | None = None
        self.delay = 0.0  # seconds each save takes (the nemesis's slow disk)

    async def save(self, payload: bytes) -> bool:
        if self.delay:
            await trio.sleep(self.delay)
        self.payload = payload
        return True


class SimCoordinator(Coordinator):
    """The real coordinator, saving its state on a :class:`SimDisk` (no file, no thread)."""

    def __init__(self, settings: CoordinatorSettings, disk: SimDisk) -> None:
        super().__init__(settings)
        self._disk = disk

    def _load(self) -> None:
        if self._disk.payload is not None:
            restore(self.state, json.loads(self._disk.payload))

    def _backend(self) -> StateBackend | None:
        return self._disk


class Proc:
    """One simulated process: started, crashed, restarted, stopped."""

    def __init__(self, host: SimHost, make: Callable[[], Service]) -> None:
        self.host = host
        self.make = make
        self.service: Service | None = None
        self.scope: trio.CancelScope | None = None
        self.done = trio.Event()
        self.running = False
        self.starts = 0
        self.errors: list[str] = []  # tracebacks of exceptions that ended the process

    @property
    def name(self) -> str:
        return self.host.name

    def start(self, nursery: trio.Nursery) -> None:
        self.done = trio.Event()
        self.running = True
        self.starts += 1
        nursery.start_soon(self._main, name=f"sim:{self.name}")

    async def _main(self) -> None:
        try:
            with installed(self.host), trio.CancelScope() as self.scope:
                self.service = self.make()
                await self.service.run()
        except Exception as exc:  # a process that dies of a bug fails the seed, not the run
            self.errors.append("".join(traceback.format_exception(exc))[-3000:])
        finally:
            self.running = False
            self.done.set()

    async def crash(self) -> None:
        # The process stops first (its tasks get Cancelled, not a closed stream),
        # then the kernel's part: listeners gone, peers read EOF.
        if self.scope is not None:
            self.scope.cancel(reason="simulated crash")
        self.host.net.crash(self.name)
        await self.done.wait()

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()


class SimEtcdClient(FakeClient):
    """The in-memory fake etcd, reached over the simulated network's partitions:
    a coordinator cut off from the ``etcd`` host (or frozen) gets no answer."""

    net: SimNetwork | None = None

    async def _enter(self) -> FakeEtcd:
        net = self.net
        if net is not None and (
            (self.name, ETCD) in net.blocked
            or (ETCD, self.name) in net.blocked
            or self.name in net.frozen
        ):
            await trio.sleep(ETCD_TIMEOUT)
            raise EtcdUnavailable(f"{self.name}: etcd unreachable")
        return await super()._enter()


class SimCluster:
    def __init__(
        self,
        net: SimNetwork,
        seed: int,
        *,
        nodes: int,
        replicas: int,
        shards: int,
        coordinators: int = 1,
    ) -> None:
        self.net = net
        self.seed = seed
        self.shards = shards
        self.hosts: dict[str, SimHost] = {}
        self.disk = SimDisk()
        self.etcd = FakeEtcd() if coordinators > 1 else None
        names = (
            [COORDINATOR] if coordinators == 1 else [f"c{i}" for i in range(1, coordinators + 1)]
        )
        self.coordinators = {
            name: Proc(self._host(name), self._make_coordinator(name, replicas, shards))
            for name in names
        }
        self.urls = [f"http://{name}:{COORDINATOR_PORT}" for name in names]
        self.nodes: dict[str, Proc] = {}
        self.stores: dict[str, tuple[MemoryStore, str]] = {}
        for i in range(1, nodes + 1):
            name = f"n{i}"
            self.nodes[name] = Proc(self._host(name), self._make_node(name))
        self.client_host = self._host(CLIENT)
        self.url = self.urls[0]

    def _host(self, name: str) -> SimHost:
        host = SimHost(name, self.net, random.Random(f"{self.seed}:{name}"))
        self.hosts[name] = host
        return host

    def _make_coordinator(self, name: str, replicas: int, shards: int) -> Callable[[], Service]:
        settings = CoordinatorSettings(
            host=name,
            port=COORDINATOR_PORT,
            shards=shards,
            replication_factor=replicas,
            insecure=True,
            health=HealthSettings(interval=1.0, timeout=0.5, failures=3),
            etcd_endpoints=(f"http://{ETCD}:2379",) if self.etcd is not None else (),
            leader_ttl=3.0,
        )
        etcd = self.etcd
        if etcd is None:
            return lambda: SimCoordinator(settings, self.disk)

        def make() -> Service:
            client = SimEtcdClient(etcd, name)
            client.net = self.net
            return HACoordinator(settings, etcd=client)

        return make

    def leader_state(self) -> ClusterState | None:
        """The state of the coordinator that leads now (the newest term's, in HA)."""
        best: tuple[int, ClusterState] | None = None
        for proc in self.coordinators.values():
            service = proc.service
            if not proc.running:
                continue
            if isinstance(service, SimCoordinator):
                return service.state
            if isinstance(service, HACoordinator) and service.services is not None:
                state = service.services.state
                if best is None or state.epoch > best[0]:
                    best = (state.epoch, state)
        return None if best is None else best[1]

    def _make_node(self, name: str) -> Callable[[], Service]:
        settings = NodeSettings(
            node_id=name,
            host=name,
            port=NODE_PORT,
            coordinator=",".join(self.urls),
            memory=True,
            insecure=True,
            register_backoff_max=2.0,
        )

        def make() -> Service:
            kept = self.stores.get(name)
            if kept is None:
                node = Node(settings, store=MemoryStore())
                assert isinstance(node.store, MemoryStore)
                self.stores[name] = (node.store, node.runtime.incarnation)
            else:
                node = Node(settings, store=kept[0])
                node.runtime.incarnation = kept[1]
            node.runtime.durable = True
            return node

        return make

    def lose_data(self, name: str) -> None:
        """The next start of ``name`` finds an empty data directory."""
        self.stores.pop(name, None)

    def procs(self) -> list[Proc]:
        return [*self.coordinators.values(), *self.nodes.values()]

    def start(self, nursery: trio.Nursery) -> None:
        for proc in self.procs():
            proc.start(nursery)
