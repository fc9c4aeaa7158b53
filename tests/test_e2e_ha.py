"""Several coordinators on a real etcd, as processes on loopback.

Each test starts its own one-member etcd and three coordinators with a 2 s
leader lease, then kills, freezes or cuts off what a real deployment loses,
with writers running through the coordinators that stay up. Every write the
cluster acknowledged must read back afterwards (``AckedWrites``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from tests.checker import AckedWrites
from tests.procs import Proc, ProcessGroup, needs_etcd, stop_up, wait_until
from tests.test_e2e_durability import _token
from tests.test_examples import free_port_run

pytestmark = [
    pytest.mark.e2e,
    needs_etcd,
]

TTL = 2.0
INTERVAL = 0.5
ENV = {"TORUA_LEADER_TTL": f"{TTL:g}s", "HEALTH_CHECK_INTERVAL": f"{INTERVAL * 1000:g}ms"}


@dataclass
class HACluster:
    group: ProcessGroup
    etcd: Proc
    coordinators: list[Proc]
    nodes: list[Proc]

    async def info(self, proc: Proc) -> dict | None:
        try:
            async with httpx.AsyncClient(timeout=1.0) as client:
                response = await client.get(proc.url + "/cluster/info")
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    async def leader(self, *, among: list[Proc] | None = None, not_: str | None = None) -> str:
        """The leader URL every one of ``among`` agrees on (and not ``not_``)."""

        async def agreed() -> str | None:
            seen = set()
            for proc in among or self.coordinators:
                info = await self.info(proc)
                if info is None or not info.get("leader"):
                    return None
                seen.add(info["leader"])
            leader = seen.pop() if len(seen) == 1 else None
            return leader if leader != not_ else None

        return await wait_until(agreed, within=TTL + 15, every=0.05, what="an agreed leader")

    def proc(self, url: str) -> Proc:
        return next(p for p in self.coordinators if p.url == url)

    async def restart(self, url: str) -> None:
        """Start the (killed) coordinator at ``url`` again, on its port."""
        old = self.proc(url)
        await old.wait()
        env = {**ENV, "TORUA_ETCD_ENDPOINTS": self.etcd.url}
        port = int(url.rsplit(":", 1)[1])
        again = await self.group.coordinator(env, port=port)
        self.coordinators[self.coordinators.index(old)] = again


@asynccontextmanager
async def ha_cluster(
    tmp_path: Path, *, nodes: int = 3, durable: bool = False
) -> AsyncIterator[HACluster]:
    async with ProcessGroup() as group:
        etcd = await group.etcd(tmp_path / "etcd")
        env = {**ENV, "TORUA_ETCD_ENDPOINTS": etcd.url}
        coordinators = [await group.coordinator(env) for _ in range(3)]
        urls = ",".join(c.url for c in coordinators)
        keep = tmp_path / "nodes" if durable else None
        started = [await group.node(f"n{i}", urls, ENV, data_dir=keep) for i in range(1, nodes + 1)]
        cluster = HACluster(group, etcd, coordinators, started)
        leader = cluster.proc(await cluster.leader())

        async def green() -> bool:
            info = await cluster.info(leader)
            return info is not None and info["cluster_state"] == "green"

        await wait_until(green, within=30, what="a green cluster")
        yield cluster


async def writers(
    checker: AckedWrites, procs: list[Proc], stop: trio.Event, nursery: trio.Nursery
) -> None:
    for i, proc in enumerate(procs):
        for j in range(2):
            client = httpx.AsyncClient(base_url=proc.url, timeout=10.0)
            nursery.start_soon(_write, checker, client, f"w{i}{j}-", stop)


async def _write(checker: AckedWrites, client: httpx.AsyncClient, prefix: str, stop: trio.Event):
    async with client:
        await checker.run_writer(client, 40, prefix=prefix, stop=stop, pause=0.005)


def acked(checker: AckedWrites) -> int:
    return checker.attempts - checker.failures


async def more_acked(checker: AckedWrites, than: int) -> None:
    async def grew() -> bool:
        return acked(checker) > than

    await wait_until(grew, within=30, every=0.02, what="an acknowledged write")


async def no_lost_writes(checker: AckedWrites, proc: Proc) -> None:
    async with httpx.AsyncClient(base_url=proc.url, timeout=10.0) as client:
        lost = await checker.lost(client)
    assert lost == [], f"{len(lost)} acknowledged writes lost: {lost[:5]}"
    assert len(checker.acked) >= 100


async def test_leader_killed_under_writes(tmp_path: Path) -> None:
    async with ha_cluster(tmp_path) as cluster:
        old = await cluster.leader()
        followers = [p for p in cluster.coordinators if p.url != old]
        checker, stop = AckedWrites(), trio.Event()
        async with trio.open_nursery() as nursery:
            await writers(checker, followers, stop, nursery)
            await more_acked(checker, 50)  # writes flow through the followers to the leader
            before = acked(checker)
            killed_at = trio.current_time()
            cluster.proc(old).kill()
            new = await cluster.leader(among=followers, not_=old)
            elected = trio.current_time() - killed_at
            await more_acked(checker, before)
            serving = trio.current_time() - killed_at
            await more_acked(checker, acked(checker) + 100)
            stop.set()
        print(f"failover: new leader after {elected:.2f}s, serving writes after {serving:.2f}s")
        # The lease runs out at most one TTL after the kill; a follower notices at once.
        assert elected <= TTL + INTERVAL + 1.0
        await no_lost_writes(checker, cluster.proc(new))


async def test_frozen_leader_is_fenced_when_it_wakes(tmp_path: Path) -> None:
    async with ha_cluster(tmp_path) as cluster:
        old_url = await cluster.leader()
        old = cluster.proc(old_url)
        old_epoch = (await cluster.info(old) or {})["epoch"]
        followers = [p for p in cluster.coordinators if p is not old]
        checker, stop = AckedWrites(), trio.Event()
        async with trio.open_nursery() as nursery:
            # One writer goes through the leader itself: its requests hang in the freeze.
            await writers(checker, [*followers, old], stop, nursery)
            await more_acked(checker, 50)
            old.suspend()
            # Followers answer state reads from etcd while the leader is frozen.
            async with httpx.AsyncClient(base_url=followers[0].url, timeout=5.0) as client:
                shards = await client.get("/shards")
                assert shards.status_code == 200
                assert len(shards.json()["shards"]) == 16
            new_url = await cluster.leader(among=followers, not_=old_url)
            await more_acked(checker, acked(checker))
            # Past its lease for certain, then it wakes up.
            await trio.sleep(TTL)  # the freeze itself is what is tested: it must outlast the lease
            old.resume()

            async def stood_down() -> bool:
                info = await cluster.info(old)
                return info is not None and info["role"] == "follower" and info["leader"] == new_url

            await wait_until(stood_down, within=5, every=0.02, what="the old leader standing down")
            new_epoch = (await cluster.info(cluster.proc(new_url)) or {})["epoch"]
            assert new_epoch > old_epoch
            # A write signed with the old epoch is refused by every node.
            async with httpx.AsyncClient(timeout=5.0) as client:
                for node in cluster.nodes:
                    response = await client.put(
                        f"{node.url}/shard/0/store/fenced",
                        content=b"from the old leader",
                        headers={"X-Torua-Epoch": str(old_epoch), "X-Torua-Version": "1"},
                    )
                    assert response.status_code == 409, response.text
                    assert response.json()["error"] == "stale_epoch"
            # Writes through the old leader work again: it forwards them to the new one.
            await more_acked(checker, acked(checker) + 100)
            stop.set()
        await no_lost_writes(checker, old)


async def test_coordinators_reconnect_after_etcd_restarts(tmp_path: Path) -> None:
    async with ha_cluster(tmp_path, nodes=2) as cluster:
        client_port = int(cluster.etcd.url.rsplit(":", 1)[1])
        checker = AckedWrites()
        async with httpx.AsyncClient(base_url=cluster.coordinators[1].url, timeout=10.0) as http:
            for i in range(50):
                assert await checker.put(http, f"before{i}", b"v")
            cluster.etcd.kill()
            await cluster.etcd.wait()
            # Down for longer than the lease: the leader must stop acting blind.
            await trio.sleep(TTL + 1)  # an outage of a known length is the fault being injected

            async def nobody_leads() -> bool:
                infos = [await cluster.info(p) for p in cluster.coordinators]
                return all(i is None or i["role"] == "follower" for i in infos)

            assert await nobody_leads()
            etcd = await cluster.group.etcd(tmp_path / "etcd", client_port=client_port)
            assert etcd.url == cluster.etcd.url
            await cluster.leader()

            async def writes_work() -> bool:
                return await checker.put(http, "after", b"etcd came back")

            await wait_until(writes_work, within=30, what="writes after etcd restarted")
            lost = await checker.lost(http)
        assert lost == []


async def test_up_with_three_coordinators_stops_clean_and_comes_back(tmp_path: Path) -> None:
    port = free_port_run(6)
    argv = ["up", "--coordinators", "3", "--nodes", "3", "--port", str(port)]
    argv += ["--data-dir", str(tmp_path)]
    urls = [f"http://127.0.0.1:{port + i}" for i in range(3)]
    checker = AckedWrites()
    for run in range(2):
        async with ProcessGroup() as group:
            proc = await group.start("up", argv, ENV, ready_within=90)
            token = await wait_until(partial(_token, proc.output), within=5, what="token line")
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(timeout=10, headers=headers) as http:
                infos = [(await http.get(url + "/cluster/info")).json() for url in urls]
                assert len({i["leader"] for i in infos}) == 1
                assert sorted(i["role"] for i in infos) == ["follower", "follower", "leader"]
                if run == 0:
                    for i in range(120):  # through every coordinator in turn
                        http.base_url = httpx.URL(urls[i % 3])
                        assert await checker.put(http, f"up-{i}", f"v{i}".encode())
                else:
                    http.base_url = httpx.URL(urls[2])
                    assert await checker.lost(http) == []
            await stop_up(proc, children=7)  # etcd, three coordinators, three nodes


@dataclass
class DirectWriter:
    """Writes through one coordinator on one kept-alive connection, noting each outcome."""

    url: str
    outcomes: list[tuple[float, int]]  # (answered at, status; 0 for a transport error)

    def acks_since(self, moment: float) -> int:
        return sum(1 for at, status in self.outcomes if at >= moment and status == 204)

    async def run(self, prefix: str, stop: trio.Event) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=self.url, timeout=10.0, limits=limits) as client:
            i = 0
            while not stop.is_set():
                try:
                    status = (await client.put(f"/data/{prefix}{i % 50}", content=b"v")).status_code
                except httpx.HTTPError:
                    status = 0
                self.outcomes.append((trio.current_time(), status))
                i += 1
                await trio.sleep(0.005 if status == 204 else 0.02)


async def _first_answer(writer: DirectWriter, since: float) -> float | None:
    return next((at for at, _ in writer.outcomes if at >= since), None)


FAILOVERS = 8  # a failure seen in 1 run of 3 escapes 8 runs with probability (2/3)^8 < 4%


async def test_each_new_leader_serves_writes_sent_to_it_directly(tmp_path: Path) -> None:
    """SIGKILL the leader again and again, with a keep-alive writer on each follower.

    The writer whose connection was opened while its coordinator was a follower
    must be served once that coordinator leads, as well as the writer whose
    requests reach it forwarded through the other follower.
    """
    async with ha_cluster(tmp_path, durable=True) as cluster:
        for run in range(FAILOVERS):
            old = await cluster.leader()
            followers = [p for p in cluster.coordinators if p.url != old]
            stop = trio.Event()
            direct = [DirectWriter(p.url, []) for p in followers]
            async with trio.open_nursery() as nursery:
                for i, writer in enumerate(direct):
                    nursery.start_soon(writer.run, f"r{run}w{i}-", stop)

                warm = partial(_acked_since, direct, 0.0, at_least=20)
                await wait_until(warm, within=30, every=0.02, what="writes via followers")
                killed_at = trio.current_time()
                cluster.proc(old).kill()
                new = await cluster.leader(among=followers, not_=old)
                mine = next(w for w in direct if w.url == new)
                other = next(w for w in direct if w.url != new)

                forwarded = partial(_acked_since, [other], killed_at)
                await wait_until(forwarded, within=30, every=0.02, what="forwarded writes")
                serving = trio.current_time()

                # A request sent before the failover may wait out its client
                # timeout: the window opens at the first answer after serving.
                answered = partial(_first_answer, mine, serving)
                opened = await wait_until(answered, within=15, every=0.02, what="a direct answer")
                # A measurement window, not a wait for a condition: the outcomes in it count.
                await trio.sleep_until(opened + 2.0)
                stop.set()
            window = [s for at, s in mine.outcomes if opened <= at <= opened + 2.0]
            failed = [s for s in window if s != 204]
            assert window and len(failed) <= len(window) // 10, (
                f"failover {run + 1}: the new leader {new} refused {len(failed)} of "
                f"{len(window)} direct writes while forwarded writes were served: "
                f"{sorted(set(failed))}"
            )
            await cluster.restart(old)


async def _acked_since(writers: list[DirectWriter], moment: float, *, at_least: int = 1) -> bool:
    return all(w.acks_since(moment) >= at_least for w in writers)
