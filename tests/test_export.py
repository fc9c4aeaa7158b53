"""A node's export route: frames with a next-page header, ``since`` for catch-up."""

from __future__ import annotations

import httpx
import trio

from torua.http.records import NEXT_HEADER, RECORDS_TYPE, decode_cursor, encode_frames
from torua.http.records import decode_frames as frames_of

from .conftest import LocalCluster

COORDINATOR = {"X-Torua-Coordinator": "test"}


async def _held_shard(cluster: LocalCluster) -> tuple[str, int]:
    await cluster.wait_healthy(len(cluster.nodes))
    node = next(iter(cluster.nodes.values()))
    with trio.fail_after(10):  # the coordinator tells the node its shards shortly
        while True:
            if node.runtime.held:
                break
            await trio.sleep(0.05)
    return node.url, min(node.runtime.held)


async def _fill(http: httpx.AsyncClient, shard: int, rows: list) -> None:
    headers = {**COORDINATOR, "Content-Type": RECORDS_TYPE}
    reply = await http.post(f"/shard/{shard}/import", content=encode_frames(rows), headers=headers)
    assert reply.status_code == 200, reply.text


async def test_export_since_answers_newer_records_tombstones_included(
    cluster: LocalCluster,
) -> None:
    url, shard = await _held_shard(cluster)
    old = [(f"k{i:03}", b"old", 10) for i in range(30)]
    new = [("k005", None, 50), ("k010", b"\x00new", 51), ("k029", b"", 52)]
    accept = {"Accept": RECORDS_TYPE}
    async with httpx.AsyncClient(base_url=url) as http:
        await _fill(http, shard, old)
        await _fill(http, shard, new)
        whole = await http.get(f"/shard/{shard}/export", params={"since": 10}, headers=accept)
        assert whole.headers["content-type"] == RECORDS_TYPE
        assert frames_of(whole.content, max_records=100) == new
        assert NEXT_HEADER not in whole.headers  # nothing after this page

        # Pages of one record: each names where the next starts, until the end.
        got, params = [], {"since": "10", "limit": "1"}
        for _ in range(40):
            page = await http.get(f"/shard/{shard}/export", params=params, headers=accept)
            got += frames_of(page.content, max_records=1)
            if NEXT_HEADER not in page.headers:
                break
            params["after"] = decode_cursor(page.headers[NEXT_HEADER])
        assert got == new

        as_json = (await http.get(f"/shard/{shard}/export", params={"since": 51})).json()
        assert as_json["records"] == [{"key": "k029", "value": "", "version": 52}]
        assert as_json["end"] is True
        everything = await http.get(f"/shard/{shard}/export", headers=accept)
        assert len(frames_of(everything.content, max_records=100)) == 30


async def test_a_bad_since_or_limit_is_a_400(cluster: LocalCluster) -> None:
    url, shard = await _held_shard(cluster)
    async with httpx.AsyncClient(base_url=url) as http:
        for params in (
            {"since": "-1"},
            {"since": "x"},
            {"since": "9" * 5000},
            {"since": str(2**63)},
            {"since": "²"},
            {"limit": "0"},
            {"limit": "10001"},
        ):
            reply = await http.get(f"/shard/{shard}/export", params=params)
            assert reply.status_code == 400, params
            assert reply.json()["error"] == "invalid_field"
