"""The durable store's read cache never serves a record older than the newest
committed write of its key, and stays within its byte budget."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from torua.node.record_cache import RecordCache
from torua.node.sqlite_store import open_sqlite_store
from torua.node.store import Record


async def test_a_write_replaces_what_a_read_cached(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path) as store:
        await store.put(0, "k", b"one", 1)
        assert await store.get(0, "k") == Record(b"one", 1)
        assert await store.get(0, "k") == Record(b"one", 1)
        assert store.cache.hits == 1  # the second read came from memory
        await store.put(0, "k", b"two", 2)
        assert await store.get(0, "k") == Record(b"two", 2)
        await store.put(0, "k", None, 3)  # a delete leaves a tombstone
        assert await store.get(0, "k") == Record(None, 3)
        assert await store.put(0, "k", b"old", 1) is False  # refused: nothing changes
        assert await store.get(0, "k") == Record(None, 3)


async def test_a_large_merge_on_a_worker_thread_replaces_cached_records(tmp_path: Path) -> None:
    rows = [(f"k{i:05}", Record(b"new", 10)) for i in range(5_000)]  # over the inline limit
    async with open_sqlite_store(tmp_path) as store:
        await store.put(0, "k00007", b"old", 1)
        assert await store.get(0, "k00007") == Record(b"old", 1)
        seen: list[Record | None] = []

        async def merge() -> None:
            await store.put_many(0, rows)
            seen.append(await store.get(0, "k00007"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(merge)
            # Reads while the merge commits on its thread may see the old record
            # (the merge is not acknowledged yet) and cache it...
            while not seen:
                assert await store.get(0, "k00007") in (Record(b"old", 1), Record(b"new", 10))
                await trio.lowlevel.checkpoint()
        # ...but once put_many returned, only the new one.
        assert seen == [Record(b"new", 10)]
        assert await store.get(0, "k00007") == Record(b"new", 10)


async def test_dropping_a_shard_or_purging_tombstones_forgets_cached_records(
    tmp_path: Path,
) -> None:
    async with open_sqlite_store(tmp_path) as store:
        await store.put(1, "gone", b"v", 1)
        await store.put(2, "dead", None, 2)
        assert await store.get(1, "gone") == Record(b"v", 1)
        assert await store.get(2, "dead") == Record(None, 2)
        await store.drop_shard(1)
        assert await store.get(1, "gone") is None
        assert await store.purge_tombstones(2, older_than=0) == 1
        assert await store.get(2, "dead") is None


async def test_a_cache_of_zero_bytes_keeps_nothing(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path, cache_bytes=0) as store:
        await store.put(0, "k", b"v", 1)
        assert await store.get(0, "k") == Record(b"v", 1)
        assert await store.get(0, "k") == Record(b"v", 1)
        assert len(store.cache) == 0 and store.cache.hits == 0


def test_the_cache_stays_within_its_budget_dropping_the_least_recently_used() -> None:
    cache = RecordCache(max_bytes=10_000)
    for i in range(100):
        cache.put(0, f"k{i}", Record(b"x" * 100, i))
        assert cache.bytes <= cache.max_bytes
        if i >= 1:
            assert cache.get(0, "k0") is not None  # read often: kept
    assert 0 < len(cache) < 100
    assert cache.get(0, "k1") is None  # an early one, never read again: dropped first
    cache.put(0, "huge", Record(b"x" * 100_000, 1))
    assert cache.get(0, "huge") is None  # bigger than worth keeping
    cache.forget(0, ["k0"])
    assert cache.get(0, "k0") is None
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0


async def test_a_node_sizes_its_read_cache_from_its_settings(tmp_path: Path) -> None:
    from torua.config import NodeSettings
    from torua.node.sqlite_store import SqliteStore
    from torua.node.stores import open_store

    settings = NodeSettings(node_id="n1", data_dir=str(tmp_path), read_cache_mb=2)
    async with open_store(settings) as store:
        assert isinstance(store, SqliteStore)
        assert store.cache.max_bytes == 2 * 1024 * 1024
