"""The etcd gateway client: member failover, proto3 defaults, and bad answers."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from torua.ha.etcd import Etcd, EtcdUnavailable


def client(handler) -> Etcd:  # type: ignore[no-untyped-def]
    etcd = Etcd(["http://m1:2379", "http://m2:2379"])
    etcd._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return etcd


def kv(value: bytes, revision: int) -> dict:
    return {
        "key": base64.b64encode(b"/torua/leader").decode(),
        "value": base64.b64encode(value).decode(),
        "create_revision": str(revision),
        "mod_revision": str(revision),
        "lease": "7",
    }


async def test_a_member_without_quorum_is_skipped() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "m1":
            return httpx.Response(503, json={"error": "etcdserver: no leader", "code": 14})
        return httpx.Response(200, json={"header": {"revision": "9"}, "kvs": [kv(b"x", 5)]})

    etcd = client(handler)
    got = await etcd.get("/torua/leader")
    assert got is not None and got.value == b"x" and got.create_revision == 5
    await etcd.get("/torua/leader")  # the member that answered is tried first now
    assert seen == ["m1", "m2", "m2"]
    await etcd.aclose()


async def test_proto3_defaults_are_supplied() -> None:
    """etcd leaves out ``succeeded: false``, an empty ``kvs`` and a zero TTL."""
    answers = iter(
        [
            {"header": {"revision": "3"}},  # range of a missing key: no kvs at all
            {"header": {"revision": "3"}, "responses": [{"response_range": {"kvs": []}}]},
            {"result": {"header": {"revision": "3"}}},  # keepalive of a lapsed lease
        ]
    )
    etcd = client(lambda request: httpx.Response(200, json=next(answers)))
    assert await etcd.get("/torua/leader") is None
    assert await etcd.create("/torua/leader", b"me", 7) == (False, None)
    assert await etcd.keepalive(7) == 0.0
    await etcd.aclose()


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="404 page not found"),
        httpx.Response(502, text="<html>bad gateway</html>"),
        httpx.Response(400, json={"error": "bad request", "message": "bad"}),
        httpx.Response(200, json={"header": {}}),  # a grant without a lease
    ],
)
async def test_bad_answers_are_unavailable_not_crashes(response: httpx.Response) -> None:
    etcd = client(lambda request: response)
    with pytest.raises(EtcdUnavailable):
        await etcd.grant(10)
    await etcd.aclose()


async def test_a_watch_error_raises() -> None:
    line = json.dumps({"error": {"grpc_code": 11, "message": "required revision compacted"}})
    etcd = client(lambda request: httpx.Response(200, text=line + "\n"))
    with pytest.raises(EtcdUnavailable):
        async for _ in etcd.watch("/torua/leader", 1):
            pass
    await etcd.aclose()
