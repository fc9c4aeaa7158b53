"""What goes on the wire for data calls: key paths, values, bulk bodies and results.

Shared by the sync and async clients, so the two cannot drift apart. Keys are
checked here before anything is sent (the coordinator would answer 400
``invalid_key``; a program learns it sooner and without a round trip).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from torua.client.errors import (
    BulkError,
    InvalidKey,
    NotFound,
    ProtocolError,
    ResponseError,
    error_from_answer,
)
from torua.limits import BULK_BODY_BYTES, BULK_MAX_OPS, MAX_KEY_BYTES

__all__ = [
    "BULK_MAX_BYTES",
    "BULK_MAX_OPS",
    "MAX_KEY_BYTES",
    "Op",
    "Result",
    "Value",
    "as_bytes",
    "bulk_bodies",
    "data_path",
    "ops_of",
    "parse_results",
    "raise_failures",
]

BULK_MAX_BYTES = BULK_BODY_BYTES // 2  # half the coordinator's body limit: headroom for JSON

Value = bytes | bytearray | memoryview | str
"""A value to store: bytes as they are, a str as its UTF-8 bytes."""


def check_key(key: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"keys are str, not {type(key).__name__}")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKey(400, "invalid_key", "keys are UTF-8 strings") from None
    if size == 0:
        raise InvalidKey(400, "invalid_key", "the key is empty")
    if size > MAX_KEY_BYTES:
        raise InvalidKey(
            400, "invalid_key", f"the key is {size} bytes; keys are at most {MAX_KEY_BYTES}"
        )
    return key


def data_path(key: str) -> str:
    """``/data/<key>`` with every byte of the key percent-encoded, ``/`` and ``.`` too,
    so no key is read as path segments (``..``) on the way."""
    raw = check_key(key).encode("utf-8")
    return "/data/" + quote(raw, safe="").replace(".", "%2E")


def as_bytes(value: Value) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"values are bytes or str, not {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of a bulk call; build with :meth:`put`, :meth:`get`, :meth:`delete`."""

    op: Literal["put", "get", "delete"]
    key: str
    value: bytes | None = None

    @classmethod
    def put(cls, key: str, value: Value) -> Op:
        return cls("put", check_key(key), as_bytes(value))

    @classmethod
    def get(cls, key: str) -> Op:
        return cls("get", check_key(key))

    @classmethod
    def delete(cls, key: str) -> Op:
        return cls("delete", check_key(key))

    def to_json(self) -> dict[str, str]:
        body = {"op": self.op, "key": self.key}
        if self.value is not None:
            try:
                body["value"] = self.value.decode("utf-8")
            except UnicodeDecodeError:
                body["value_b64"] = base64.b64encode(self.value).decode("ascii")
        return body


@dataclass(frozen=True, slots=True)
class Result:
    """One operation's outcome: ``status`` 204 written, 200 read (``value``), else ``error``."""

    op: Op
    status: int
    value: bytes | None = None
    error: ResponseError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def bulk_bodies(ops: Sequence[Op]) -> Iterator[tuple[int, int, bytes]]:
    """``(start, end, JSON body)`` for each request a bulk call needs: at most
    BULK_MAX_OPS operations and about BULK_MAX_BYTES each, in order."""
    start = 0
    while start < len(ops):
        parts: list[bytes] = []
        size = 0
        end = start
        while end < len(ops) and end - start < BULK_MAX_OPS:
            part = json.dumps(ops[end].to_json(), separators=(",", ":")).encode()
            if parts and size + len(part) > BULK_MAX_BYTES:
                break
            parts.append(part)
            size += len(part) + 1
            end += 1
        yield start, end, b'{"ops":[' + b",".join(parts) + b"]}"
        start = end


def _result(op: Op, item: Any, url: str) -> Result:
    if not isinstance(item, dict) or not isinstance(item.get("status"), int):
        raise ProtocolError(f"a bulk result from {url} is not an object with a status")
    status = item["status"]
    if status == 200:
        if "value_b64" in item:
            try:
                return Result(op, 200, base64.b64decode(item["value_b64"], validate=True))
            except (binascii.Error, TypeError, ValueError):
                raise ProtocolError(f"a bulk result from {url} has a bad value_b64") from None
        return Result(op, 200, str(item.get("value", "")).encode("utf-8"))
    if status < 300:
        return Result(op, status)
    body = json.dumps({"error": item.get("error", ""), "message": item.get("message", "")})
    return Result(op, status, error=error_from_answer(status, body.encode(), url=url))


def parse_results(body: bytes, ops: Sequence[Op], *, url: str) -> list[Result]:
    """The coordinator's ``{"results": [...]}``, one per operation, in order."""
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    items = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(items, list) or len(items) != len(ops):
        raise ProtocolError(f"the bulk answer from {url} has no result per operation")
    return [_result(op, item, url) for op, item in zip(ops, items, strict=True)]


def ops_of(kind: Literal["put", "get", "delete"], items: Iterable[Any]) -> list[Op]:
    if kind == "put":
        return [Op.put(key, value) for key, value in items]
    return [Op.get(key) if kind == "get" else Op.delete(key) for key in items]


def raise_failures(results: list[Result]) -> list[Result]:
    """``results`` when every operation succeeded (a get of a missing key counts),
    else :class:`BulkError` with each failed key's error."""
    errors: dict[str, ResponseError] = {
        r.op.key: r.error
        for r in results
        if r.error is not None and not (r.op.op == "get" and isinstance(r.error, NotFound))
    }
    if errors:
        raise BulkError(errors)
    return results
