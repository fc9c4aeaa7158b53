"""Binary record frames: the coordinator's bulk writes and reads to and from nodes.

The client-facing bulk API is JSON, and its values are text or base64; sending
them on to the nodes as JSON with base64 values again meant encoding every
value twice on the coordinator and parsing, validating (pydantic) and decoding
every record again on each node. These frames carry the bytes as they are.

A body of type :data:`RECORDS_TYPE` is a sequence of records, each::

    key length   u16 big-endian   (1 .. FRAME_MAX_KEY_BYTES)
    version      i64 big-endian   (>= 1)
    value length u32 big-endian   (TOMBSTONE = 0xFFFFFFFF: a delete)
    key          UTF-8 bytes
    value        bytes

The node's JSON forms of the same routes stay (for tools and older callers);
a frame body that breaks these rules is a 400, as malformed JSON is.

Moves use frames both ways: ``GET /shard/{id}/export`` with ``Accept:`` this
type answers a page of frames, and the coordinator posts that body unchanged
to the new copy's ``/shard/{id}/import``, so values are never decoded on the
way. Where the next page starts travels in the :data:`NEXT_HEADER` response
header (the key to pass as ``after``, percent-encoded UTF-8); its absence
means the shard has no rows left. A page may hold no frames and still name a
next key: with ``since``, it examined rows none of which was newer.

Several shards' frames go to one node in one request as *sections*, each::

    shard id     u32 big-endian
    length       u32 big-endian   (bytes of frames that follow)
    frames
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from urllib.parse import quote, unquote_to_bytes

from torua.errors import BadRequest
from torua.limits import FRAME_MAX_KEY_BYTES

__all__ = [
    "NEXT_HEADER",
    "RECORDS_TYPE",
    "Row",
    "decode_cursor",
    "decode_frames",
    "decode_sections",
    "encode_cursor",
    "encode_frames",
    "encode_sections",
]

RECORDS_TYPE = "application/x-torua-records"
NEXT_HEADER = "X-Torua-Next"
TOMBSTONE = 0xFFFFFFFF
_HEAD = struct.Struct(">HqI")
_SECTION = struct.Struct(">II")

Row = tuple[str, bytes | None, int]  # key, value (None: tombstone), version


def encode_frames(rows: Iterable[Row]) -> bytes:
    """The frames of ``rows``, ready to send; keys as the JSON form would carry them."""
    parts: list[bytes] = []
    pack = _HEAD.pack
    for key, value, version in rows:
        raw_key = key.encode("utf-8", "surrogatepass")
        if value is None:
            parts += (pack(len(raw_key), version, TOMBSTONE), raw_key)
        else:
            parts += (pack(len(raw_key), version, len(value)), raw_key, value)
    return b"".join(parts)


def decode_frames(data: bytes, *, max_records: int) -> list[Row]:
    """Every record in ``data``; a 400 for anything truncated, empty or out of range."""
    rows: list[Row] = []
    unpack, head, end = _HEAD.unpack_from, _HEAD.size, len(data)
    pos = 0
    while pos < end:
        if pos + head > end:
            raise _bad("a record header is cut short")
        key_len, version, value_len = unpack(data, pos)
        pos += head
        if not 0 < key_len <= FRAME_MAX_KEY_BYTES:
            raise _bad(f"a key is 1 to {FRAME_MAX_KEY_BYTES} bytes")
        if version < 1:
            raise _bad("a version is at least 1")
        if pos + key_len > end:
            raise _bad("a key is cut short")
        try:
            key = data[pos : pos + key_len].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise _bad("a key is not UTF-8") from None
        pos += key_len
        value: bytes | None = None
        if value_len != TOMBSTONE:
            if pos + value_len > end:
                raise _bad("a value is cut short")
            value = data[pos : pos + value_len]
            pos += value_len
        rows.append((key, value, version))
        if len(rows) > max_records:
            raise _bad(f"at most {max_records} records")
    return rows


def encode_sections(parts: Iterable[tuple[int, bytes]]) -> bytes:
    """One body carrying each ``(shard id, frames)`` part in order."""
    out: list[bytes] = []
    for shard_id, frames in parts:
        out += (_SECTION.pack(shard_id, len(frames)), frames)
    return b"".join(out)


def decode_sections(data: bytes, *, max_records: int) -> list[tuple[int, list[Row]]]:
    """Every section's shard id and records; at most ``max_records`` records in all."""
    sections: list[tuple[int, list[Row]]] = []
    pos, end, budget = 0, len(data), max_records
    while pos < end:
        if pos + _SECTION.size > end:
            raise _bad("a section header is cut short")
        shard_id, length = _SECTION.unpack_from(data, pos)
        pos += _SECTION.size
        if pos + length > end:
            raise _bad("a section is cut short")
        rows = decode_frames(data[pos : pos + length], max_records=budget)
        budget -= len(rows)
        pos += length
        sections.append((shard_id, rows))
    return sections


def encode_cursor(key: str) -> str:
    """A key as a header or query value: every byte but unreserved ones escaped."""
    return quote(key.encode("utf-8", "surrogatepass"), safe="")


def decode_cursor(text: str | bytes) -> str:
    """The key :func:`encode_cursor` made; a 400 when it is not UTF-8."""
    try:
        return unquote_to_bytes(text).decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        raise _bad("a cursor is percent-encoded UTF-8") from None


def _bad(why: str) -> BadRequest:
    return BadRequest(f"records: {why}", code="invalid_field")
