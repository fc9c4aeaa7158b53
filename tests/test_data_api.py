"""Reads and writes through the coordinator, as a client sees them."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from torua.cluster import shard_for_key

from .conftest import LocalCluster

KEYS = [
    "plain",
    "with/slash",
    "a b c",
    "user@example.com",
    "ns:key",
    "ключ",
    "日本語/キー",
    "..",
    "x" * 1024,
]


def path(key: str) -> str:
    return "/data/" + quote(key, safe="").replace(".", "%2E")


async def test_put_get_delete_round_trip_for_unusual_keys(cluster: LocalCluster) -> None:
    for i, key in enumerate(KEYS):
        value = f"value {i} \x00\xff".encode("latin-1")
        assert (await cluster.http.put(path(key), content=value)).status_code == 204
        got = await cluster.http.get(path(key))
        assert got.status_code == 200, key
        assert got.content == value
    for key in KEYS:
        assert (await cluster.http.delete(path(key))).status_code == 204
        missing = await cluster.http.get(path(key))
        assert missing.status_code == 404
        assert missing.json()["error"] == "key_not_found"


async def test_raw_slash_and_encoded_slash_are_the_same_key(cluster: LocalCluster) -> None:
    await cluster.http.put("/data/a/b/c", content=b"raw")
    assert (await cluster.http.get("/data/a%2Fb%2Fc")).content == b"raw"


async def test_value_lands_on_every_copy_of_its_shard(cluster: LocalCluster) -> None:
    await cluster.http.put(path("replicated"), content=b"twice")
    shard_id = shard_for_key("replicated", 8)
    shard = (await cluster.http.get("/shards")).json()["shards"][shard_id]
    holders = [shard["primary"], *shard["replicas"]]
    assert len(holders) == 2
    for node_id in holders:
        record = await cluster.nodes[node_id].store.get(shard_id, "replicated")
        assert record is not None and record.value == b"twice"


async def test_delete_of_absent_key_is_204(cluster: LocalCluster) -> None:
    assert (await cluster.http.delete(path("never-written"))).status_code == 204


@pytest.mark.parametrize("bad", ["/data/", "/data"])
async def test_empty_key_is_400(cluster: LocalCluster, bad: str) -> None:
    response = await cluster.http.put(bad, content=b"x")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_key"


async def test_key_over_1024_bytes_is_400(cluster: LocalCluster) -> None:
    response = await cluster.http.put(path("é" * 513), content=b"x")
    assert response.status_code == 400


async def test_last_write_wins(cluster: LocalCluster) -> None:
    for i in range(5):
        await cluster.http.put(path("counter"), content=str(i).encode())
    assert (await cluster.http.get(path("counter"))).content == b"4"
