"""Key-to-shard mapping: FNV-1a 32-bit over the key's UTF-8 bytes, modulo the shard count.

This is the mapping the original Go Torua used (``hash/fnv.New32a``), kept
bit-for-bit so that data written by either finds the same shard.
"""

from __future__ import annotations

__all__ = ["fnv1a_32", "shard_for_key"]

_OFFSET_BASIS = 0x811C9DC5
_PRIME = 0x01000193


def fnv1a_32(data: bytes) -> int:
    """FNV-1a, 32 bits: cheap, stable across processes and Python versions.

    Python's own ``hash()`` is salted per process, so it cannot route keys.
    """
    value = _OFFSET_BASIS
    for byte in data:
        value = ((value ^ byte) * _PRIME) & 0xFFFFFFFF
    return value


def shard_for_key(key: str, num_shards: int) -> int:
    """The shard that owns ``key``; the shard count is fixed per cluster."""
    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
        raise ValueError(f"num_shards must be a positive integer, not {num_shards!r}")
    return fnv1a_32(key.encode("utf-8")) % num_shards
