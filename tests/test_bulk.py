"""POST /data/_bulk: many operations in one request, split by shard."""

from __future__ import annotations

import base64

from .conftest import LocalCluster


async def test_bulk_puts_gets_and_deletes_in_order(cluster: LocalCluster) -> None:
    ops = [{"op": "put", "key": f"bulk/{i}", "value": f"v{i}"} for i in range(300)]
    ops.append({"op": "put", "key": "binary", "value_b64": base64.b64encode(b"\xff\x00").decode()})
    ops.append({"op": "delete", "key": "bulk/7"})
    ops += [{"op": "get", "key": k} for k in ("bulk/1", "bulk/7", "binary", "never")]
    response = await cluster.http.post("/data/_bulk", json={"ops": ops})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(ops)
    assert all(r["status"] == 204 for r in results[:302])
    got = {r["key"]: r for r in results[302:]}
    assert got["bulk/1"] == {"key": "bulk/1", "op": "get", "status": 200, "value": "v1"}
    assert got["bulk/7"]["status"] == 404  # the request's own delete came first
    assert got["binary"]["value_b64"] == base64.b64encode(b"\xff\x00").decode()
    assert got["never"]["status"] == 404 and got["never"]["error"] == "key_not_found"
    # The same data through the single-key API, from every copy's shard.
    assert (await cluster.http.get("/data/bulk%2F299")).content == b"v299"
    assert (await cluster.http.get("/data/bulk%2F7")).status_code == 404


async def test_a_bad_bulk_request_changes_nothing(cluster: LocalCluster) -> None:
    before = await cluster.snapshot()
    for body in (
        {"ops": []},
        {"ops": [{"op": "put", "key": "a"}]},
        {
            "ops": [
                {"op": "put", "key": "a", "value": "x"},
                {"op": "put", "key": "b", "value_b64": "not base64!"},
            ]
        },
        {"ops": [{"op": "get", "key": "a", "value": "x"}]},
        {"ops": [{"op": "put", "key": "", "value": "x"}]},
        {"ops": [{"op": "merge", "key": "a"}]},
    ):
        response = await cluster.http.post("/data/_bulk", json=body)
        assert response.status_code == 400, (body, response.text)
    assert (await cluster.http.get("/data/a")).status_code == 404
    assert await cluster.snapshot() == before
