"""``POST /data/_bulk``: many puts, gets and deletes in one request.

Shape (documented in the README)::

    {"ops": [{"op": "put", "key": "k1", "value": "text"},
             {"op": "put", "key": "k2", "value_b64": "AAE="},
             {"op": "get", "key": "k1"},
             {"op": "delete", "key": "k3"}]}
    -> 200 {"results": [{"key": "k1", "op": "put", "status": 204}, ...]}

Each result has ``status`` (204 written, 200 read with ``value`` or
``value_b64`` when not UTF-8, 404 missing, 503/502 with ``error``) in the order
of ``ops``. Writes are split by shard and each shard's batch goes to all of its
copies concurrently (the same acknowledgement rule as a single PUT); shards are
handled concurrently too. Reads see the request's own writes: all writes are
applied before any read. To and from the nodes records travel as binary frames
(:mod:`torua.http.records`), each shard's batch encoded once for all its copies,
and all shards' writes to one node go in one request
(:class:`~torua.coordinator.data.import_batch.ImportBatcher`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from functools import partial
from typing import Any, Literal

from pydantic import Field, model_validator

from torua.cluster import shard_for_key
from torua.coordinator.data.import_batch import ImportBatcher
from torua.coordinator.data.replication import NotSent, StaleVersion
from torua.coordinator.data.router import WRITE_ATTEMPTS, Router
from torua.coordinator.nodes.client import NodeClient, Reply
from torua.coordinator.state.state import ClusterState
from torua.errors import ApiError, BadGateway, BadRequest, NotFound, TooLarge, Unavailable
from torua.fanout import fan_out
from torua.http.records import decode_frames, encode_frames
from torua.http.validate import Body
from torua.limits import BULK_MAX_OPS, MAX_KEY_BYTES

__all__ = ["BulkBody", "run_bulk"]


class BulkOp(Body):
    op: Literal["put", "get", "delete"]
    key: str = Field(min_length=1, max_length=MAX_KEY_BYTES)
    value: str | None = None
    value_b64: str | None = None

    @model_validator(mode="after")
    def _one_value_for_puts(self) -> BulkOp:
        if self.op == "put" and (self.value is None) == (self.value_b64 is None):
            raise ValueError("a put needs exactly one of value or value_b64")
        if self.op != "put" and (self.value is not None or self.value_b64 is not None):
            raise ValueError(f"a {self.op} takes no value")
        if len(self.key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            raise ValueError(f"keys are at most {MAX_KEY_BYTES} bytes of UTF-8")
        return self


class BulkBody(Body):
    ops: list[BulkOp] = Field(min_length=1, max_length=BULK_MAX_OPS)


def _value(op: BulkOp, max_value: int) -> bytes:
    if op.value is not None:
        raw = op.value.encode()
    else:
        try:
            raw = base64.b64decode(op.value_b64 or "", validate=True)
        except binascii.Error:
            raise BadRequest(
                f"ops: value_b64 of {op.key!r} is not base64", code="invalid_field"
            ) from None
    if len(raw) > max_value:
        raise TooLarge(f"the value of {op.key!r} is over {max_value} bytes (TORUA_MAX_VALUE)")
    return raw


def _node_records(body: bytes, keys: int) -> list[tuple[str, bytes | None, int]]:
    try:
        return decode_frames(body, max_records=keys)
    except BadRequest as exc:  # the node's answer is bad, not the client's request
        raise BadGateway(f"a node answered malformed records: {exc.message}") from None


async def _send_frames(batcher: ImportBatcher, shard_id: int, frames: bytes, addr: str) -> Reply:
    return await batcher.send(addr, shard_id, frames)


def _all_taken(router: Router, reply: Reply) -> bool:
    """Whether the copy took every record; it reports a newer version it holds."""
    try:
        newer = json.loads(reply.body).get("newer_version")
    except (ValueError, AttributeError):
        return True
    if isinstance(newer, int) and newer > 0:
        if router.versions.ours(newer):
            return True  # overtaken by a newer write of ours: not to be resent above it
        router.versions.observe(newer)
        return False
    return True


def _found(result: dict[str, Any], raw: bytes) -> None:
    result["status"] = 200
    try:
        result["value"] = raw.decode()
    except UnicodeDecodeError:
        result["value_b64"] = base64.b64encode(raw).decode()


def _error(exc: ApiError) -> dict[str, Any]:
    return {"status": exc.status, "error": exc.code, "message": exc.message}


async def run_bulk(
    state: ClusterState, router: Router, nodes: NodeClient, body: BulkBody
) -> list[dict[str, Any]]:
    num_shards = state.table.num_shards
    values = {
        i: _value(op, state.settings.max_value) for i, op in enumerate(body.ops) if op.op == "put"
    }  # all checked before any write
    results: list[dict[str, Any]] = [{"key": op.key, "op": op.op} for op in body.ops]
    writes: dict[int, list[int]] = defaultdict(list)
    reads: dict[int, list[int]] = defaultdict(list)
    for i, op in enumerate(body.ops):
        (reads if op.op == "get" else writes)[shard_for_key(op.key, num_shards)].append(i)

    batcher = ImportBatcher(nodes)  # one import request per node, not per shard

    async def write_shard(shard_id: int, indexes: list[int]) -> None:
        keys = [body.ops[i].key for i in indexes]
        with router.writing(shard_id, keys), router.outcomes.track(shard_id, keys):
            await write_shard_now(shard_id, indexes)

    async def write_shard_now(shard_id: int, indexes: list[int]) -> None:
        for _ in range(WRITE_ATTEMPTS):
            versions = [await router.versions.next() for _ in indexes]
            frames = encode_frames(
                (body.ops[i].key, values.get(i), version)
                for i, version in zip(indexes, versions, strict=True)
            )
            try:
                await router.replicate(
                    shard_id,
                    partial(_send_frames, batcher, shard_id, frames),
                    expect=200,
                    judge=partial(_all_taken, router),
                    lowest=min(versions),
                )
            except StaleVersion:
                continue  # a copy holds newer versions: retry above them
            except NotSent as exc:  # nothing was sent: nothing to settle
                for i in indexes:
                    results[i].update(_error(exc))
                return
            except ApiError as exc:
                await router.write_failed(shard_id, [body.ops[i].key for i in indexes])
                for i in indexes:
                    results[i].update(_error(exc))
                return
            router.write_settled(shard_id, [body.ops[i].key for i in indexes])
            for i in indexes:
                results[i]["status"] = 204
            return
        stale = Unavailable("copies kept holding newer versions; retry", code="version_conflict")
        for i in indexes:
            results[i].update(_error(stale))

    async def read_shard(shard_id: int, indexes: list[int]) -> None:
        unsettled = [i for i in indexes if router.needs_settle(shard_id, body.ops[i].key)]
        for i in unsettled:  # their copies may differ: compared and repaired one by one
            try:
                _found(results[i], await router.get(body.ops[i].key))
            except ApiError as exc:
                results[i].update(_error(exc))
        indexes = [i for i in indexes if i not in unsettled]
        if not indexes:
            return
        keys = sorted({body.ops[i].key for i in indexes})
        try:
            reply = await router.read_from_copies(
                shard_id, lambda addr: nodes.get_many_frames(addr, shard_id, keys)
            )
            rows = _node_records(reply.body, len(keys))
        except ApiError as exc:
            for i in indexes:
                results[i].update(_error(exc))
            return
        found = {key: (value, version) for key, value, version in rows if value is not None}
        incomplete = bool(state.lost.get(shard_id))
        floor = state.lost_floor.get(shard_id, 0) if incomplete else 0
        for i in indexes:
            raw, version = found.get(body.ops[i].key, (None, 0))
            if raw is not None and version < floor:
                stale = Unavailable(
                    "a lost copy may hold a newer version of this key", code="incomplete_shard"
                )
                results[i].update(_error(stale))
                continue
            if raw is None:
                miss = (
                    Unavailable("the key may be on a lost copy", code="incomplete_shard")
                    if incomplete
                    else NotFound("no such key", code="key_not_found")
                )
                results[i].update(_error(miss))
                continue
            _found(results[i], raw)

    await fan_out(lambda shard: write_shard(*shard), writes.items())
    await fan_out(lambda shard: read_shard(*shard), reads.items())
    return results
