"""Bad input gets a clear 4xx JSON error and changes nothing."""

from __future__ import annotations

import pytest

from .conftest import LocalCluster

BAD_REQUESTS = [
    ("POST", "/register", b"{not json", 400),
    ("POST", "/register", b"[]", 400),
    ("POST", "/register", b"{}", 400),
    ("POST", "/register", b'{"node": {"id": "n9"}}', 400),
    ("POST", "/register", b'{"node": {"id": "bad id!", "addr": "127.0.0.1:9"}}', 400),
    ("POST", "/register", b'{"node": {"id": "n9", "addr": "127.0.0.1:9", "x": 1}}', 400),
    ("POST", "/register", b'{"node": {"id": 7, "addr": "127.0.0.1:9"}}', 400),
    ("POST", "/register", b'{"node": {"id": "n9", "addr": "not a url"}}', 400),
    ("POST", "/shards/assign", b'{"shard_id": 99, "node_id": "n1"}', 404),
    ("POST", "/shards/assign", b'{"shard_id": -1, "node_id": "n1"}', 400),
    ("POST", "/shards/assign", b'{"shard_id": "3", "node_id": "n1"}', 400),
    ("POST", "/shards/assign", b'{"shard_id": 3, "node_id": "ghost"}', 404),
    ("POST", "/shards/assign", b'{"shard_id": 3}', 400),
    ("GET", "/nodes/ghost/info", b"", 404),
    ("GET", "/nodes/ghost/health", b"", 404),
    ("DELETE", "/nodes/ghost", b"", 404),
    ("DELETE", "/nodes/n1", b"", 409),
    ("POST", "/broadcast", b'{"payload": {}}', 400),
    ("POST", "/broadcast", b'{"path": "http://evil/", "payload": {}}', 400),
    ("GET", "/no/such/route", b"", 404),
    ("PATCH", "/nodes", b"", 405),
    ("PUT", "/data/", b"x", 400),
    ("POST", "/rebalance", b'{"by": "speed"}', 400),
    ("POST", "/rebalance", b'{"by": "load", "max_moves": 0}', 400),
    ("POST", "/rebalance", b'{"by": "load", "extra": 1}', 400),
    ("POST", "/rebalance", b"[]", 400),
    ("POST", "/rebalance", b"{not json", 400),
]


@pytest.mark.parametrize(("method", "route", "body", "status"), BAD_REQUESTS)
async def test_bad_request_is_a_json_4xx_and_changes_nothing(
    cluster: LocalCluster, method: str, route: str, body: bytes, status: int
) -> None:
    before = await cluster.snapshot()
    response = await cluster.http.request(
        method, route, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"error", "message"}
    assert error["message"]
    assert "Traceback" not in response.text
    assert await cluster.snapshot() == before


async def test_oversized_json_body_is_413(cluster: LocalCluster) -> None:
    before = await cluster.snapshot()
    huge = b'{"node": {"id": "n9", "addr": "127.0.0.1:9", "pad": "' + b"x" * (2 << 20) + b'"}}'
    response = await cluster.http.post("/register", content=huge)
    assert response.status_code == 413
    assert await cluster.snapshot() == before
