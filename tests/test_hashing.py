"""Keys must land on the same shard as in the Go original (hash/fnv New32a)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from torua.cluster import fnv1a_32, shard_for_key


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"", 0x811C9DC5), (b"a", 0xE40C292C), (b"foobar", 0xBF9CF968)],
)
def test_known_fnv1a_32_vectors(data: bytes, expected: int) -> None:
    assert fnv1a_32(data) == expected


def test_shard_is_the_hash_of_the_utf8_bytes_modulo_the_shard_count() -> None:
    assert shard_for_key("foobar", 16) == 0xBF9CF968 % 16 == 8
    assert shard_for_key("a", 7) == 0xE40C292C % 7
    assert shard_for_key("é/ü key", 16) == fnv1a_32("é/ü key".encode()) % 16
    assert shard_for_key("anything", 1) == 0


@pytest.mark.parametrize("bad", [0, -3, True, 2.0])
def test_shard_count_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(ValueError, match="num_shards"):
        shard_for_key("k", bad)  # type: ignore[arg-type]


@given(st.text(max_size=64), st.integers(min_value=1, max_value=1024))
def test_every_key_maps_into_range_and_is_stable(key: str, num_shards: int) -> None:
    shard = shard_for_key(key, num_shards)
    assert 0 <= shard < num_shards
    assert shard == shard_for_key(key, num_shards)
    assert 0 <= fnv1a_32(key.encode()) < 2**32
