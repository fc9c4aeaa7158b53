"""torua.Client and torua.AsyncClient: against a real in-process cluster, against
scripted servers on loopback (failover, Retry-After, typed errors), and on
httpx's MockTransport under Trio's virtual clock where the timing is the point.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import httpx
import pytest
import trio
import trio.testing

import torua
from tests.fake_etcd import FakeEtcd
from tests.scripted_http import THEN_CLOSE, scripted_server
from torua import (
    AsyncClient,
    BulkError,
    Client,
    Forbidden,
    InvalidKey,
    NoLeader,
    NotFound,
    Op,
    Retry,
    Unauthorized,
    Unavailable,
    Unreachable,
)
from torua.client.retry import Attempts, Endpoints, Failure
from torua.config import NodeSettings
from torua.errors import ToruaError
from torua.ha import HACoordinator
from torua.node import Node

from .conftest import LocalCluster
from .test_data_api import KEYS
from .test_election import until_leading
from .test_ha_in_process import settings as ha_settings


def answer(status: int, body: bytes = b"", **headers: str) -> bytes:
    """One scripted HTTP/1.1 answer."""
    reason = {200: "OK", 204: "No Content"}.get(status, "Error")
    lines = [f"HTTP/1.1 {status} {reason}", f"content-length: {len(body)}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def error(status: int, code: str, message: str, **headers: str) -> bytes:
    body = json.dumps({"error": code, "message": message}).encode()
    return answer(status, body, content_type="application/json", **headers)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed on return: nothing listens there


def requests_in(log: list[bytes]) -> list[bytes]:
    return [entry for entry in log if entry != b"<connection>"]


# -- a real cluster ------------------------------------------------------------------------


async def test_async_round_trip_of_unusual_keys_and_binary_values(cluster: LocalCluster) -> None:
    async with AsyncClient(cluster.coordinator.url) as db:
        for i, key in enumerate(KEYS):
            await db.put(key, f"value {i} \x00\xff".encode("latin-1"))
        for i, key in enumerate(KEYS):
            assert await db.get(key) == f"value {i} \x00\xff".encode("latin-1")
        await db.put("text", "café")
        assert await db.get_text("text") == "café"
        await db.delete("text")
        with pytest.raises(NotFound) as missing:
            await db.get("text")
        assert missing.value.code == "key_not_found" and missing.value.status == 404
        await db.delete("text")  # absent: still fine


async def test_sync_client_round_trip_and_bulk(cluster: LocalCluster) -> None:
    url = cluster.coordinator.url

    def scenario() -> tuple[bytes, dict[str, bytes], dict[str, bytes], list[int]]:
        with Client(url) as db:
            db.put("greeting", b"hello")
            got = db.get("greeting")
            db.put_many({f"k{i}": bytes([i, 255]) for i in range(40)})
            read = db.get_many([f"k{i}" for i in range(45)])
            db.delete_many([f"k{i}" for i in range(0, 40, 2)])
            after = db.get_many([f"k{i}" for i in range(40)])
            mixed = db.bulk([Op.put("m", "x"), Op.get("m"), Op.delete("zz"), Op.get("zz")])
            return got, read, after, [r.status for r in mixed]

    got, read, after, statuses = await trio.to_thread.run_sync(scenario)
    assert got == b"hello"
    assert read == {f"k{i}": bytes([i, 255]) for i in range(40)}  # k40..k44 are missing
    assert after == {f"k{i}": bytes([i, 255]) for i in range(1, 40, 2)}
    assert statuses == [204, 200, 204, 404]


async def test_async_bulk_reads_back_text_and_binary(cluster: LocalCluster) -> None:
    values = {"plain": b"text", "bin": b"\x00\xff\xfe", "empty": b"", "ключ": "é".encode()}
    async with AsyncClient(cluster.coordinator.url) as db:
        await db.put_many(values)
        assert await db.get_many([*values, "absent"]) == values
        results = await db.bulk([Op.get("bin"), Op.get("absent")])
        assert results[0].ok and results[0].value == b"\x00\xff\xfe"
        assert not results[1].ok and isinstance(results[1].error, NotFound)
        await db.delete_many(values)
        assert await db.get_many(values) == {}


async def test_a_bad_key_is_refused_before_anything_is_sent() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    async with AsyncClient(transport=httpx.MockTransport(handler)) as db:
        for bad in ("", "x" * 1025):
            with pytest.raises(InvalidKey):
                await db.put(bad, b"v")
        with pytest.raises(InvalidKey):
            await db.put_many({"ok": b"1", "": b"2"})
        with pytest.raises(TypeError):
            await db.put("k", 5)  # type: ignore[arg-type]
    assert sent == []


async def test_token_is_sent_and_a_missing_or_wrong_one_is_typed() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        offered = request.headers.get("authorization")
        seen.append(offered)
        if offered is None:
            return httpx.Response(401, json={"error": "unauthorized", "message": "token!"})
        if offered != "Bearer right":
            return httpx.Response(403, json={"error": "forbidden", "message": "wrong"})
        return httpx.Response(200, content=b"v")

    transport = httpx.MockTransport(handler)
    async with AsyncClient(token="right", transport=transport) as db:
        assert await db.get("k") == b"v"
    async with AsyncClient(transport=transport) as db:
        with pytest.raises(Unauthorized) as no_token:
            await db.get("k")
    async with AsyncClient(token="wrong", transport=transport) as db:
        with pytest.raises(Forbidden):
            await db.get("k")
    assert seen == ["Bearer right", None, "Bearer wrong"]
    assert no_token.value.code == "unauthorized" and no_token.value.message == "token!"
    assert isinstance(no_token.value, ToruaError)


async def test_async_client_rides_a_leader_failover_with_no_retry_code_of_its_own() -> None:
    """Two HA coordinators (on a fake etcd) and two nodes. The leader is cut off from
    etcd and stops, as if killed; the client was given both URLs and carries on: the
    dead URL refuses connections, the follower answers 503 until it leads and has
    probed the nodes, and the client's retries cover all of it."""
    etcd = FakeEtcd()
    async with trio.open_nursery() as nursery:
        a = HACoordinator(ha_settings(), etcd=etcd.client("a"))
        await nursery.start(a.run)
        assert a.election is not None
        with trio.fail_after(5):
            await until_leading(a.election)
        b = HACoordinator(ha_settings(), etcd=etcd.client("b"))
        urls = [a.url, await nursery.start(b.run)]
        nodes = [
            Node(NodeSettings(node_id=f"n{i}", port=0, coordinator=",".join(urls), memory=True))
            for i in (1, 2)
        ]
        for node in nodes:
            await nursery.start(node.run)
        values = {f"k{i}": f"v{i}".encode() for i in range(30)}
        async with AsyncClient(urls, timeout=5) as db:
            with trio.fail_after(30):
                await db.put_many(values)  # 503 until the nodes are up: retried
                etcd.cut_off.add("a")
                a.stop()
                assert await db.get_many(values) == values
                await db.put("after", b"failover")
                assert await db.get("after") == b"failover"
            assert db.base_url == b.url
        for node in nodes:
            node.stop()
        b.stop()


# -- scripted servers on loopback ----------------------------------------------------------


async def test_typed_errors_carry_the_servers_code_and_message() -> None:
    script: list[bytes | None] = [
        error(400, "invalid_field", "ops: bad"),
        error(400, "invalid_key", "the key is empty"),
        error(404, "key_not_found", "no key 'k'"),
        error(409, "cannot_assign", "full"),
        error(413, "too_large", "over 16 bytes"),
        answer(500, b"not json"),
    ]
    log: list[bytes] = []
    async with trio.open_nursery() as nursery:
        port = await scripted_server(nursery, script, log)
        async with AsyncClient(f"http://127.0.0.1:{port}") as db:
            caught = []
            for _ in range(6):
                with pytest.raises(torua.ResponseError) as err:
                    await db.request("POST", "/anything", json={})
                caught.append(err.value)
        nursery.cancel_scope.cancel()
    kinds = [type(e) for e in caught]
    assert kinds == [
        torua.BadRequest,
        InvalidKey,
        NotFound,
        torua.Conflict,
        torua.TooLarge,
        torua.ResponseError,
    ]
    assert [e.code for e in caught] == ["invalid_field", "invalid_key", "key_not_found"] + [
        "cannot_assign",
        "too_large",
        "",
    ]
    assert caught[2].message == "no key 'k'"
    assert str(caught[2]) == "no key 'k' (HTTP 404 key_not_found)"
    assert caught[5].message == "not json"
    assert len(requests_in(log)) == 6  # none of them retried


async def test_503_is_retried_after_its_retry_after() -> None:
    script: list[bytes | None] = [
        error(503, "no_copy", "no copy of shard 3 is up", retry_after="1"),
        answer(200, b"value"),
    ]
    log: list[bytes] = []
    times: list[float] = []
    async with trio.open_nursery() as nursery:
        port = await scripted_server(nursery, script, log)
        async with AsyncClient(f"http://127.0.0.1:{port}") as db:
            start = trio.current_time()
            assert await db.get("k") == b"value"
            times.append(trio.current_time() - start)
        nursery.cancel_scope.cancel()
    assert len(requests_in(log)) == 2
    assert times[0] >= 1.0  # it waited as the server asked


async def test_truncated_answers_are_retried_for_gets_only() -> None:
    truncated = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc" + THEN_CLOSE
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    script: list[bytes | None] = [truncated, chunked, truncated, None]
    log: list[bytes] = []
    async with trio.open_nursery() as nursery:
        port = await scripted_server(nursery, script, log)
        async with AsyncClient(f"http://127.0.0.1:{port}") as db:
            assert await db.get("k") == b"abc"  # the truncated answer, then again
            with pytest.raises(Unreachable):
                await db.request("POST", "/rebalance")  # it may have run: not again
            with pytest.raises(Unreachable):
                await db.request("POST", "/rebalance")  # closed without an answer
        nursery.cancel_scope.cancel()
    assert len(requests_in(log)) == 4


async def test_sync_failover_from_a_dead_url_and_a_follower_without_leader() -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    no_leader = error(503, "no_leader", "an election is under way", retry_after="1")
    follower_log: list[bytes] = []
    leader_log: list[bytes] = []
    async with trio.open_nursery() as nursery:
        follower = await scripted_server(nursery, [no_leader], follower_log)
        leader = await scripted_server(
            nursery, [answer(200, b"from the leader"), answer(204)], leader_log
        )
        urls = [dead, f"http://127.0.0.1:{follower}", f"http://127.0.0.1:{leader}"]

        def scenario() -> tuple[bytes, str]:
            with Client(urls) as db:
                got = db.get("k")
                db.put("k", b"v")  # goes straight to the URL that worked
                return got, db.base_url

        got, used = await trio.to_thread.run_sync(scenario)
        nursery.cancel_scope.cancel()
    assert got == b"from the leader" and used == urls[2]
    assert len(requests_in(follower_log)) == 1
    assert [r.split(b" ")[0] for r in requests_in(leader_log)] == [b"GET", b"PUT"]


async def test_unreachable_everywhere_gives_up_after_one_round_when_asked() -> None:
    urls = [f"http://127.0.0.1:{closed_port()}", f"http://127.0.0.1:{closed_port()}"]
    async with AsyncClient(urls, retry=Retry(when_unreachable=False)) as db:
        with pytest.raises(Unreachable) as err:
            await db.get("k")
    assert err.value.url in urls and "cannot reach" in str(err.value)


# -- timing, on the virtual clock ----------------------------------------------------------


def scripted(
    answers: list[Callable[[httpx.Request], httpx.Response]], log: list[tuple[float, str]]
) -> httpx.MockTransport:
    """A transport answering each request from ``answers`` in turn, logging (time, URL)."""

    async def handler(request: httpx.Request) -> httpx.Response:
        log.append((trio.current_time(), str(request.url)))
        await trio.lowlevel.checkpoint()
        return answers.pop(0)(request)

    return httpx.MockTransport(handler)


def unavailable(code: str, retry_after: str | None = None) -> Callable[..., httpx.Response]:
    headers = {"retry-after": retry_after} if retry_after else {}
    body = {"error": code, "message": "not now"}
    return lambda request: httpx.Response(503, json=body, headers=headers)


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b"done")


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def reset(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("server disconnected", request=request)


async def test_waits_are_exactly_what_retry_after_asks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[float, str]] = []
    answers = [unavailable("no_copy", "3"), unavailable("no_copy", "2"), ok]
    async with AsyncClient("http://c1", transport=scripted(answers, log)) as db:
        start = trio.current_time()
        assert await db.get("k") == b"done"
    assert [t - start for t, _ in log] == [0.0, 3.0, 5.0]


async def test_retries_stop_at_the_budget(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[float, str]] = []
    answers = [unavailable("no_copy", "2")] * 10
    retry = Retry(total=5.0)
    async with AsyncClient("http://c1", retry=retry, transport=scripted(answers, log)) as db:
        start = trio.current_time()
        with pytest.raises(Unavailable) as err:
            await db.get("k")
    # Tries at 0, 2 and 4; a wait to 6 would pass the 5 s budget, so it stops at 4.
    assert [t - start for t, _ in log] == [0.0, 2.0, 4.0]
    assert trio.current_time() - start == 4.0
    assert err.value.retry_after == 2.0 and err.value.code == "no_copy"


async def test_no_leader_tries_every_url_then_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[float, str]] = []
    answers = [refused, unavailable("no_leader", "1"), unavailable("not_leader"), ok]
    urls = ["http://c1", "http://c2", "http://c3"]
    async with AsyncClient(urls, transport=scripted(answers, log)) as db:
        assert await db.get("k") == b"done"
        assert db.base_url == "http://c1"  # the one that answered in the end
    assert [(t, url.split("/data")[0]) for t, url in log] == [
        (0.0, "http://c1"),
        (0.0, "http://c2"),
        (0.0, "http://c3"),
        (0.05, "http://c1"),  # a round failed: the first backoff, then round again
    ]


async def test_a_leaderless_cluster_raises_no_leader(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[float, str]] = []
    retry = Retry(total=1.0)
    answers = [unavailable("no_leader", "1")] * 6
    transport = scripted(answers, log)
    async with AsyncClient(["http://c1", "http://c2"], retry=retry, transport=transport) as db:
        with pytest.raises(NoLeader):
            await db.put("k", b"v")
    assert [t for t, _ in log] == [0.0, 0.0, 1.0, 1.0]


async def test_a_broken_connection_retries_only_idempotent_calls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[float, str]] = []
    async with AsyncClient("http://c1", transport=scripted([reset, ok], log)) as db:
        assert await db.get("k") == b"done"
    async with AsyncClient("http://c1", transport=scripted([reset, ok], log)) as db:
        with pytest.raises(Unreachable):
            await db.request("POST", "/rebalance")
        assert (await db.request("POST", "/rebalance")).content == b"done"
    assert len(log) == 4


async def test_bulk_resends_only_the_operations_answered_503(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bodies: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ops = json.loads(request.content)["ops"]
        bodies.append([op["key"] for op in ops])
        first = len(bodies) == 1
        results = []
        for op in ops:
            if first and op["key"] == "b":
                results.append({"key": "b", "op": "put", "status": 503, "error": "no_copy"})
            else:
                results.append({"key": op["key"], "op": "put", "status": 204})
        return httpx.Response(200, json={"results": results})

    async with AsyncClient(transport=httpx.MockTransport(handler)) as db:
        await db.put_many({"a": b"1", "b": b"2", "c": b"3"})
    assert bodies == [["a", "b", "c"], ["b"]]


async def test_bulk_failures_name_their_keys(autojump_clock: trio.testing.MockClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        ops = json.loads(request.content)["ops"]
        results = [
            {"key": op["key"], "op": op["op"], "status": 413, "error": "too_large"}
            if op["key"] == "big"
            else {"key": op["key"], "op": op["op"], "status": 204}
            for op in ops
        ]
        return httpx.Response(200, json={"results": results})

    async with AsyncClient(transport=httpx.MockTransport(handler)) as db:
        with pytest.raises(BulkError) as err:
            await db.put_many([("small", b"1"), ("big", b"2")])
    assert list(err.value.errors) == ["big"]
    assert isinstance(err.value.errors["big"], torua.TooLarge)


@pytest.mark.parametrize(
    "body", [b"<html>a proxy</html>", b"[]", b'{"results": []}', b'{"results": [7]}']
)
async def test_a_bulk_answer_that_is_not_results_is_a_protocol_error(body: bytes) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    async with AsyncClient(transport=transport) as db:
        with pytest.raises(torua.ProtocolError):
            await db.get_many(["k"])


def test_attempts_rules_without_io() -> None:
    endpoints = Endpoints(["a", "b"])
    post = Attempts(endpoints, Retry(total=10), started=0.0, idempotent=False)
    assert post.next_wait(Failure.MAYBE_SENT, now=0.0) is None  # may have been applied
    assert post.next_wait(Failure.NO_LEADER, now=0.0) is None  # so may a not_leader one
    assert post.next_wait(Failure.UNAVAILABLE, now=0.0) is None
    assert post.next_wait(Failure.NOT_SENT, now=0.0) == 0.0  # never sent: the next URL
    get = Attempts(endpoints, Retry(total=10), started=0.0, idempotent=True)  # starts at b
    assert get.next_wait(Failure.MAYBE_SENT, now=0.0) == 0.0 and get.url == "a"  # round to a
    assert get.next_wait(Failure.NOT_SENT, now=0.0) == 0.05 and get.url == "b"
    assert get.next_wait(Failure.UNAVAILABLE, now=1.0, retry_after=9.0) == 9.0
    assert get.next_wait(Failure.UNAVAILABLE, now=1.0, retry_after=9.5) is None  # past 10 s
    assert endpoints.current == "b"
    with pytest.raises(ValueError):
        Client(["ftp://x"])
