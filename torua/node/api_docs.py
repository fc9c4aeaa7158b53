"""The node's routes as ``/openapi.json`` documents them."""

from __future__ import annotations

from torua.http.openapi import Doc
from torua.node.api import ControlMessage
from torua.node.tombstones import PurgeBody
from torua.node.transfer import GetManyBody, ImportBody

__all__ = ["NODE_DOCS"]

NODE_DOCS: dict[tuple[str, str], Doc] = {
    ("GET", "/health"): Doc(
        "liveness and self-checks (disk, store, event loop); 503 with status critical "
        "while a check is critical; never needs the token"
    ),
    ("GET", "/info"): Doc("the node and the copies it holds"),
    ("POST", "/control"): Doc(
        "assignment and config messages from the coordinator", ControlMessage
    ),
    ("GET", "/shard/<int:shard_id>/store/<path:key>"): Doc("read a value", raw_response=True),
    ("PUT", "/shard/<int:shard_id>/store/<path:key>"): Doc(
        "write a value", raw_body=True, success=204
    ),
    ("DELETE", "/shard/<int:shard_id>/store/<path:key>"): Doc("delete a key", success=204),
    ("GET", "/shard/<int:shard_id>/keys"): Doc("live keys of a held shard"),
    ("GET", "/shard/<int:shard_id>/stats"): Doc("key and byte counts of a held shard"),
    ("GET", "/shard/<int:shard_id>/export"): Doc(
        "a page of records, tombstones included, in key order after ?after=KEY; "
        "?since=V keeps only versions above V; ?limit=N rows (1 to 10000). Answers "
        "binary record frames when the request accepts application/x-torua-records, "
        "with the next page's start in X-Torua-Next (absent at the end); JSON otherwise"
    ),
    ("POST", "/shard/<int:shard_id>/import"): Doc(
        "merge a page of records: this JSON, or a body of type "
        "application/x-torua-records (binary frames, see torua.http.records)",
        ImportBody,
    ),
    ("POST", "/shards/import"): Doc(
        "merge several shards' records in one request: a body of type "
        "application/x-torua-records sections (see torua.http.records); answers "
        '{"results": [{"shard_id", "status", ...}]}, one per section, in order'
    ),
    ("POST", "/shard/<int:shard_id>/get_many"): Doc(
        "many reads in one request; answers binary record frames "
        "(application/x-torua-records) when the request accepts exactly that",
        GetManyBody,
    ),
    ("POST", "/shard/<int:shard_id>/drop"): Doc("drop the data of a copy no longer held"),
    ("POST", "/tombstones/purge"): Doc(
        "purge held shards' tombstones older than older_than seconds (node clock)", PurgeBody
    ),
    ("POST", "/shard/<int:shard_id>/wipe"): Doc("empty a held copy before a full fill"),
    ("GET", "/metrics"): Doc("Prometheus text format", content_type="text/plain"),
    ("GET", "/openapi.json"): Doc("this document"),
}
