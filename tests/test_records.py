"""Binary record frames (torua.http.records) and the node routes that take them."""

from __future__ import annotations

import struct

import httpx
import pytest
import trio

from torua.errors import BadRequest
from torua.http.records import (
    RECORDS_TYPE,
    decode_frames,
    decode_sections,
    encode_frames,
    encode_sections,
)

from .conftest import LocalCluster

ROWS = [
    ("a", b"1", 5),
    ("sp ace/é", b"", 6),
    ("gone", None, 7),
    ("bin", b"\xff\x00" * 50, 2**63 - 1),
]


def test_frames_round_trip_values_tombstones_and_keys() -> None:
    assert decode_frames(encode_frames(ROWS), max_records=10) == ROWS
    assert decode_frames(b"", max_records=10) == []


@pytest.mark.parametrize(
    "frames",
    [
        encode_frames(ROWS)[:-1],  # a value cut short
        encode_frames([("a", b"x", 1)])[:5],  # a header cut short
        struct.pack(">HqI", 0, 1, 0),  # empty key
        struct.pack(">HqI", 1, 0, 0) + b"k",  # version 0
        struct.pack(">HqI", 1, 1, 0) + b"\xff",  # key not UTF-8
        encode_frames([("k", b"v", 1)] * 3),  # more records than allowed
    ],
)
def test_bad_frames_are_a_400(frames: bytes) -> None:
    with pytest.raises(BadRequest):
        decode_frames(frames, max_records=2)


async def test_node_import_and_get_many_speak_frames(cluster: LocalCluster) -> None:
    await cluster.wait_healthy(len(cluster.nodes))
    node = next(iter(cluster.nodes.values()))
    with trio.fail_after(10):  # the coordinator tells the node its shards shortly
        while True:
            if node.runtime.held:
                break
            await trio.sleep(0.05)
    shard = min(node.runtime.held)
    headers = {"X-Torua-Coordinator": "test", "Content-Type": RECORDS_TYPE}
    async with httpx.AsyncClient(base_url=node.url) as http:
        reply = await http.post(
            f"/shard/{shard}/import", content=encode_frames(ROWS), headers=headers
        )
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"shard_id": shard, "received": 4, "applied": 4}
        keys = {"keys": ["a", "gone", "bin", "missing"]}
        framed = await http.post(
            f"/shard/{shard}/get_many", json=keys, headers={"Accept": RECORDS_TYPE}
        )
        assert framed.headers["content-type"] == RECORDS_TYPE
        assert decode_frames(framed.content, max_records=4) == [ROWS[0], ROWS[2], ROWS[3]]
        as_json = await http.post(f"/shard/{shard}/get_many", json=keys)
        assert [r["key"] for r in as_json.json()["records"]] == ["a", "gone", "bin"]
        bad = await http.post(f"/shard/{shard}/import", content=b"\x00\x01", headers=headers)
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_field"
        again = await http.post(f"/shard/{shard}/get_many", json={"keys": ["a"]})
        assert again.json()["records"][0]["version"] == 5  # the bad body changed nothing


def test_sections_round_trip_and_share_one_record_budget() -> None:
    body = encode_sections([(3, encode_frames(ROWS)), (0, b""), (7, encode_frames(ROWS[:1]))])
    assert decode_sections(body, max_records=5) == [(3, ROWS), (0, []), (7, ROWS[:1])]
    with pytest.raises(BadRequest):
        decode_sections(body, max_records=4)
    with pytest.raises(BadRequest):
        decode_sections(body[:-1], max_records=5)


async def test_node_imports_sections_and_answers_per_shard(cluster: LocalCluster) -> None:
    await cluster.wait_healthy(len(cluster.nodes))
    node = next(iter(cluster.nodes.values()))
    with trio.fail_after(10):
        while True:
            if node.runtime.held:
                break
            await trio.sleep(0.05)
    shard = min(node.runtime.held)
    other = min(set(range(64)) - node.runtime.held)
    headers = {"X-Torua-Coordinator": "test", "Content-Type": RECORDS_TYPE}
    body = encode_sections([(shard, encode_frames(ROWS[:2])), (other, encode_frames(ROWS[:1]))])
    async with httpx.AsyncClient(base_url=node.url) as http:
        bad = await http.post("/shards/import", content=body[:-1], headers=headers)
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_field"
        assert (await http.post(f"/shard/{shard}/get_many", json={"keys": ["a"]})).json()[
            "records"
        ] == []  # the bad body applied nothing, not even its whole first section
        reply = await http.post("/shards/import", content=body, headers=headers)
        assert reply.status_code == 200, reply.text
        first, second = reply.json()["results"]
        assert first == {"shard_id": shard, "status": 200, "received": 2, "applied": 2}
        assert (second["shard_id"], second["status"], second["error"]) == (
            other,
            404,
            "shard_not_held",
        )
        as_json = await http.post("/shards/import", json={"records": []})
        assert as_json.status_code == 400
