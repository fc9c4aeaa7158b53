"""Node routes that move shard data: export a page, import a page, drop a copy.

The coordinator drives every move through these: it pages a donor's records
(tombstones and versions included) into the new copy, where the versioned
merge keeps the highest version, so writes that reach the new copy directly
while it is being filled are never overwritten by older exported data.

``export``, ``import`` and ``get_many`` also speak binary record frames
(:mod:`torua.http.records`): the mover and the coordinator's bulk API send and
read them, so values cross this hop as bytes, not base64 inside JSON.
``export?since=V`` answers only records (tombstones included) whose version is
above V: a copy that was away catches up on what it missed, not the shard. ``POST
/shards/import`` takes several shards' frames at once (one request per node
for a whole bulk request, not one per shard) and answers per shard, so one
shard the node does not hold fails only that shard.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field
from quart import Quart, Response, jsonify, request

from torua.errors import ApiError, BadRequest, Conflict, NotFound
from torua.fanout import fan_out
from torua.http.errors import read_limited
from torua.http.records import (
    NEXT_HEADER,
    RECORDS_TYPE,
    Row,
    decode_cursor,
    decode_frames,
    decode_sections,
    encode_cursor,
    encode_frames,
)
from torua.http.validate import Body, parse_body
from torua.limits import BULK_MAX_OPS, IMPORT_MAX_KEY_CHARS, MAX_KEY_BYTES
from torua.node.state import NodeRuntime
from torua.node.store import Record, Store

__all__ = ["decode_records", "encode_records", "install_transfer_routes"]

PAGE_ROWS = 1000
MAX_RECORDS = 10_000
MAX_VERSION = 2**63 - 1
IMPORT_BYTES = 64 * 1024 * 1024


class WireRecord(Body):
    key: str = Field(min_length=1, max_length=IMPORT_MAX_KEY_CHARS)
    value: str | None  # base64; None is a tombstone
    version: int = Field(ge=1)


class ImportBody(Body):
    records: list[WireRecord] = Field(max_length=MAX_RECORDS)


class GetManyBody(Body):
    keys: list[Annotated[str, Field(min_length=1, max_length=MAX_KEY_BYTES)]] = Field(
        max_length=BULK_MAX_OPS
    )


def encode_records(rows: list[tuple[str, Record]]) -> list[dict[str, object]]:
    return [
        {
            "key": key,
            "version": record.version,
            "value": None if record.value is None else base64.b64encode(record.value).decode(),
        }
        for key, record in rows
    ]


def decode_records(records: list[WireRecord]) -> list[tuple[str, Record]]:
    try:
        return [
            (
                r.key,
                Record(
                    None if r.value is None else base64.b64decode(r.value, validate=True), r.version
                ),
            )
            for r in records
        ]
    except binascii.Error:
        raise BadRequest("records: values must be base64", code="invalid_field") from None


def install_transfer_routes(
    app: Quart, runtime: NodeRuntime, store: Store, writable: Callable[[int], int]
) -> None:
    @app.get("/shard/<int:shard_id>/export")
    async def export_page(shard_id: int) -> Response:
        # Any copy may be read, held or not: a returning node's lost copy is merged this way.
        after = _after(request.query_string)
        limit = _bounded_int("limit", request.args.get("limit"), PAGE_ROWS, 1, MAX_RECORDS)
        since = _bounded_int("since", request.args.get("since"), 0, 0, MAX_VERSION)
        page = await store.export_page(shard_id, after=after, since=since, max_rows=limit)
        if request.headers.get("Accept") == RECORDS_TYPE:
            frames = encode_frames((key, r.value, r.version) for key, r in page.rows)
            response = Response(frames, content_type=RECORDS_TYPE)
            if page.next is not None:
                response.headers[NEXT_HEADER] = encode_cursor(page.next)
            return response
        # ``next`` stays the last key of a non-empty page even at the end (callers that
        # stop at an empty page keep working); ``end`` says there is nothing after it.
        last = page.next or (page.rows[-1][0] if page.rows else None)
        return jsonify(
            {
                "shard_id": shard_id,
                "records": encode_records(page.rows),
                "next": last,
                "end": page.next is None,
            }
        )

    @app.post("/shard/<int:shard_id>/import")
    async def import_page(shard_id: int) -> Response:
        writable(shard_id)
        if request.mimetype == RECORDS_TYPE:
            raw = await read_limited(IMPORT_BYTES, "record bodies")
            frames = decode_frames(raw, max_records=MAX_RECORDS)
            records = [(key, Record(value, version)) for key, value, version in frames]
        else:
            body = await parse_body(ImportBody, max_bytes=IMPORT_BYTES)
            records = decode_records(body.records)
        applied = await store.put_many(shard_id, records)
        return jsonify({"shard_id": shard_id, "received": len(records), "applied": applied})

    @app.post("/shards/import")
    async def import_sections() -> Response:
        """Several shards' frames; every section is checked before any is applied."""
        if request.mimetype != RECORDS_TYPE:
            raise BadRequest(f"the body is {RECORDS_TYPE} sections", code="invalid_body")
        raw = await read_limited(IMPORT_BYTES, "record bodies")
        sections = decode_sections(raw, max_records=MAX_RECORDS)

        async def one(section: tuple[int, list[Row]]) -> dict[str, Any]:
            shard_id, rows = section
            result: dict[str, Any] = {"shard_id": shard_id}
            try:
                writable(shard_id)
                records = [(key, Record(value, version)) for key, value, version in rows]
                applied = await store.put_many(shard_id, records)
            except ApiError as exc:
                result.update(status=exc.status, error=exc.code, message=exc.message)
                return result
            result.update(status=200, received=len(rows), applied=applied)
            if applied < len(rows):
                # Equal versions are resends; a larger stored one means these writes were
                # not taken, and the coordinator must retry them with larger versions.
                newer = await newest_above(store, shard_id, rows)
                if newer:
                    result["newer_version"] = newer
            return result

        results = await fan_out(one, sections)  # concurrent: one group commit for all
        return jsonify({"results": results})

    @app.post("/shard/<int:shard_id>/get_many")
    async def get_many(shard_id: int) -> Response:
        """Many reads in one request: the bulk API's read path (frames when accepted)."""
        if shard_id not in runtime.held:
            raise NotFound(
                f"node {runtime.node_id} holds no copy of shard {shard_id}", code="shard_not_held"
            )
        body = await parse_body(GetManyBody, max_bytes=16 * 1024 * 1024)
        rows = []
        for key in body.keys:
            record = await store.get(shard_id, key)
            if record is not None:
                rows.append((key, record))
        if request.headers.get("Accept") == RECORDS_TYPE:
            frames = encode_frames((key, r.value, r.version) for key, r in rows)
            return Response(frames, content_type=RECORDS_TYPE)
        return jsonify({"shard_id": shard_id, "records": encode_records(rows)})

    @app.post("/shard/<int:shard_id>/drop")
    async def drop(shard_id: int) -> Response:
        if shard_id in runtime.held:
            raise Conflict(f"shard {shard_id} is still assigned here", code="shard_held")
        await store.drop_shard(shard_id)
        return jsonify({"shard_id": shard_id, "dropped": True})


def _after(query: bytes) -> str | None:
    """The ``after`` key, decoded here rather than by the framework, which replaces
    bytes that are not UTF-8: a cursor must come back exactly as it was sent, or a
    page repeats or skips keys (keys may hold anything the record frames carry)."""
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if name == b"after":
            return decode_cursor(value.replace(b"+", b" "))
    return None


def _bounded_int(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and low <= int(raw) <= high):
        raise BadRequest(f"{name}: an integer from {low} to {high}", code="invalid_field")
    return int(raw)


async def newest_above(store: Store, shard_id: int, rows: list[Row]) -> int:
    """The largest stored version above the one a row carried (0 when none is)."""
    newest = 0
    for key, _, version in rows:
        current = await store.get(shard_id, key)
        if current is not None and current.version > version:
            newest = max(newest, current.version)
    return newest
