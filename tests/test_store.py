"""Both node stores keep the same promises: versions, tombstones, merges.

The shared behaviour runs against MemoryStore and SqliteStore alike; the
durable store's own promises (reopen, group commit, its thread, its lock) follow.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from torua.config import NodeSettings
from torua.errors import ConfigError
from torua.node.sqlite_store import SqliteStore, open_sqlite_store
from torua.node.store import SCAN_FACTOR, MemoryStore, Page, Record, ShardStats, Store
from torua.node.stores import open_store


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "node")
    try:
        yield s
    finally:
        await s.close()


async def test_get_put_delete(store: Store) -> None:
    assert await store.get(0, "a") is None
    assert await store.put(0, "a", b"one", 10) is True
    assert await store.get(0, "a") == Record(b"one", 10)
    assert await store.get(1, "a") is None  # shards are separate key spaces
    assert await store.put(0, "empty", b"", 11) is True
    assert await store.get(0, "empty") == Record(b"", 11)  # empty is a value, not a tombstone
    assert await store.put(0, "a", None, 12) is True
    assert await store.get(0, "a") == Record(None, 12)


@pytest.mark.parametrize(("incoming", "applied"), [(4, False), (5, False), (6, True)])
async def test_only_a_newer_version_replaces(store: Store, incoming: int, applied: bool) -> None:
    await store.put(0, "k", b"stored", 5)
    assert await store.put(0, "k", b"incoming", incoming) is applied
    expected = Record(b"incoming", 6) if applied else Record(b"stored", 5)
    assert await store.get(0, "k") == expected


async def test_tombstones_hide_keys_keep_versions_and_beat_older_puts(store: Store) -> None:
    await store.put(0, "gone", b"12345", 1)
    await store.put(0, "kept", b"xy", 1)
    assert await store.put(0, "gone", None, 2) is True
    assert await store.keys(0) == ["kept"]
    assert store.stats(0) == ShardStats(keys=1, bytes=2)
    assert await store.put(0, "gone", b"late", 1) is False  # a delayed older write
    assert await store.get(0, "gone") == Record(None, 2)
    assert await store.put(0, "gone", b"again", 3) is True
    assert await store.keys(0) == ["gone", "kept"]


async def test_put_many_merges_highest_version_wins_both_ways(store: Store) -> None:
    await store.put_many(
        1, [("a", Record(b"a5", 5)), ("b", Record(b"b1", 1)), ("c", Record(None, 3))]
    )
    await store.put_many(
        2,
        [
            ("a", Record(b"a3", 3)),
            ("b", Record(b"b2", 2)),
            ("c", Record(b"c2", 2)),
            ("d", Record(b"d1", 1)),
        ],
    )
    one, two = await store.export(1), await store.export(2)
    assert await store.put_many(1, two) == 2  # b and d; a and c are older there
    assert await store.put_many(2, one) == 2  # a and c; b is older, d absent
    expected = {
        "a": Record(b"a5", 5),
        "b": Record(b"b2", 2),
        "c": Record(None, 3),
        "d": Record(b"d1", 1),
    }
    assert dict(await store.export(1)) == dict(await store.export(2)) == expected
    assert await store.put_many(1, []) == 0


async def test_keys_and_stats_count_live_values_only(store: Store) -> None:
    assert await store.keys(3) == [] and store.stats(3) == ShardStats(keys=0, bytes=0)
    for key, value in [("b", b"22"), ("a", b"1"), ("c", b"333")]:
        await store.put(3, key, value, 1)
    await store.put(4, "other", b"x" * 100, 1)
    assert await store.keys(3) == ["a", "b", "c"]
    assert store.stats(3) == ShardStats(keys=3, bytes=6)
    await store.put(3, "a", b"1111", 2)  # grows by 3
    await store.put(3, "c", None, 2)  # a tombstone takes its bytes away
    await store.put(3, "b", b"old", 1)  # refused: changes nothing
    assert store.stats(3) == ShardStats(keys=2, bytes=6)
    await store.put(3, "c", b"", 3)
    assert store.stats(3) == ShardStats(keys=3, bytes=6)
    assert store.stats(4) == ShardStats(keys=1, bytes=100)


async def test_export_includes_tombstones_and_pages_cover_everything(store: Store) -> None:
    rows = {f"k{i:03}": Record(None if i % 3 == 0 else bytes(i), i + 1) for i in range(50)}
    assert await store.put_many(5, rows.items()) == 50
    assert dict(await store.export(5)) == rows
    seen: list[tuple[str, Record]] = []
    page = await store.export_page(5, max_rows=7)
    while True:
        assert 1 <= len(page.rows) <= 7
        seen.extend(page.rows)
        if page.next is None:
            break
        assert page.next == page.rows[-1][0]
        page = await store.export_page(5, after=page.next, max_rows=7)
    assert seen == sorted(rows.items())
    # k000 is a tombstone (no bytes), so the page goes on to k001 and stops there.
    one_value = await store.export_page(5, max_bytes=1)
    assert [key for key, _ in one_value.rows] == ["k000", "k001"] and one_value.next == "k001"
    assert await store.export_page(6) == Page([], None)


async def test_export_since_keeps_only_newer_records_tombstones_included(store: Store) -> None:
    await store.put_many(2, [(f"k{i:02}", Record(b"old", 10 + i)) for i in range(20)])
    await store.put(2, "k03", None, 100)  # a delete after the cut: must travel
    await store.put(2, "k07", b"new", 101)
    await store.put(2, "k15", b"newer", 102)
    await store.put(2, "k16", None, 29)  # a delete before the cut (k16 was 26): stays behind
    await store.put(9, "k03", b"other shard", 500)
    expected = [
        ("k03", Record(None, 100)),
        ("k07", Record(b"new", 101)),
        ("k15", Record(b"newer", 102)),
    ]
    assert await store.export(2, since=29) == expected
    assert await store.export(2, since=101) == expected[2:]
    assert await store.export(2, since=102) == []
    assert len(await store.export(2, since=0)) == 20


async def test_export_since_pages_stay_bounded_and_cover_every_newer_record(store: Store) -> None:
    count = SCAN_FACTOR * 3 * 4  # several pages' worth of examined rows
    await store.put_many(1, [(f"k{i:04}", Record(b"v", 1)) for i in range(count)])
    newer = [f"k{i:04}" for i in range(0, count, 37)]
    for key in newer:
        await store.put(1, key, None, 2)
    found: list[str] = []
    pages = 0
    after: str | None = None
    while True:
        page = await store.export_page(1, after=after, since=1, max_rows=3)
        pages += 1
        assert len(page.rows) <= 3 and all(r.version == 2 for _, r in page.rows)
        found += [key for key, _ in page.rows]
        if page.next is None:
            break
        assert after is None or page.next > after  # every page moves on
        after = page.next
    assert found == newer
    # Each page examined at most SCAN_FACTOR * 3 rows, so even pages without a
    # newer record had to be asked for: the whole shard never went in one page.
    assert pages >= count // (SCAN_FACTOR * 3)


async def test_drop_shard_removes_only_that_shard(store: Store) -> None:
    await store.put(7, "a", b"1", 40)
    await store.put(7, "b", None, 41)
    await store.put(8, "a", b"2", 3)
    await store.drop_shard(7)
    assert await store.export(7) == [] and await store.keys(7) == []
    assert store.stats(7) == ShardStats(keys=0, bytes=0)
    assert await store.get(8, "a") == Record(b"2", 3)
    assert store.max_version() == 41  # versions never go backwards
    assert await store.put(7, "a", b"back", 1) is True  # a dropped shard starts afresh


async def test_max_version_is_the_highest_version_seen(store: Store) -> None:
    assert store.max_version() == 0
    await store.put(0, "a", b"", 7)
    await store.put_many(1, [("b", Record(None, 9)), ("c", Record(b"", 8))])
    await store.put(0, "a", b"", 3)
    assert store.max_version() == 9


# -- the durable store ---------------------------------------------------------


async def test_sqlite_store_keeps_everything_across_reopen(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path) as first:
        await first.put(0, "a", b"alpha", 100)
        await first.put(0, "b", None, 250)
        await first.put_many(2, [("c", Record(b"c", 7))])
        await first.drop_shard(2)
    async with open_sqlite_store(tmp_path) as second:
        assert second.max_version() == 250
        assert dict(await second.export(0)) == {"a": Record(b"alpha", 100), "b": Record(None, 250)}
        assert second.stats(0) == ShardStats(keys=1, bytes=5)
        assert await second.export(2) == []


async def test_concurrent_puts_all_commit_in_few_transactions(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path) as s:
        results: list[bool] = []

        async def put(i: int) -> None:
            results.append(await s.put(i % 4, f"key-{i}", str(i).encode(), i + 1))

        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(put, i)
        assert results == [True] * 200
        assert s.commits < 50, f"{s.commits} transactions for 200 puts: no group commit"
        assert sum(s.stats(shard).keys for shard in range(4)) == 200
    with sqlite3.connect(tmp_path / "store.sqlite3") as raw:  # what is on disk, not a cache
        assert raw.execute("SELECT count(*) FROM kv").fetchone() == (200,)


@asynccontextmanager
async def loop_ticks() -> AsyncIterator[Callable[[], int]]:
    """How often another task ran meanwhile: a call that holds the loop adds none."""
    ticks = 0

    async def other_work() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_work)
        await trio.lowlevel.checkpoint()
        yield lambda: ticks
        nursery.cancel_scope.cancel()


async def test_listing_a_large_shard_leaves_the_loop_free_meanwhile(tmp_path: Path) -> None:
    """Reading 50k keys or a 10k-row page must not hold the event loop: a node
    doing it still answers its health probes and serves other requests."""
    async with open_sqlite_store(tmp_path / "node") as store:
        rows = [(f"k{i:06}", Record(b"v" * 100, 1 + i % 7)) for i in range(50_000)]
        await store.put_many(0, rows)
        async with loop_ticks() as ticks:
            before = ticks()
            assert len(await store.keys(0)) == 50_000
            assert ticks() > before
            before = ticks()
            page = await store.export_page(0, max_rows=10_000, max_bytes=2**30)
            assert len(page.rows) == 10_000 and ticks() > before
            before = ticks()
            assert len(await store.export(0, since=6)) == 50_000 // 7
            assert ticks() > before


async def test_a_large_merge_commits_off_the_loop(tmp_path: Path) -> None:
    """A move's or a bulk request's rows commit on a worker thread: the node
    keeps answering meanwhile. Single-key writes commit on the loop (cheaper)."""
    async with open_sqlite_store(tmp_path / "node") as store:
        rows = [(f"k{i:06}", Record(b"v" * 100, 1)) for i in range(50_000)]
        async with loop_ticks() as ticks:
            before = ticks()
            assert await store.put_many(0, rows) == 50_000
            assert ticks() > before


async def test_one_failing_write_fails_only_its_caller(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_sqlite_store(tmp_path) as s:
        outcomes: dict[int, object] = {}

        async def put(i: int) -> None:
            key = None if i == 5 else f"k{i}"  # NOT NULL violated inside the batch
            try:
                outcomes[i] = await s.put(0, key, b"v", 1)  # type: ignore[arg-type]
            except sqlite3.IntegrityError as exc:
                outcomes[i] = exc

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(put, i)
        assert "retrying one by one" in caplog.text  # it was in a group, not alone
        assert isinstance(outcomes.pop(5), sqlite3.IntegrityError)
        assert set(outcomes.values()) == {True}
        assert s.stats(0).keys == 19


async def test_bad_versions_and_values_are_refused_before_queueing(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path) as s:
        with pytest.raises(ValueError, match="version"):
            await s.put(0, "k", b"v", 2**63)
        with pytest.raises(ValueError, match="version"):
            await s.put_many(0, [("k", Record(b"v", -1))])
        with pytest.raises(TypeError, match="bytes"):
            await s.put(0, "k", "text", 1)  # type: ignore[arg-type]
        assert await s.export(0) == []


def _writer_tasks() -> list[str]:
    """Names of the store writer tasks alive in this run (they are system tasks)."""
    found: list[str] = []
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        if task.name.startswith("sqlite writer"):
            found.append(task.name)
        todo += [child for nursery in task.child_nurseries for child in nursery.child_tasks]
    return found


async def test_no_task_outlives_the_store_even_when_close_is_cancelled(
    tmp_path: Path,
) -> None:
    s = SqliteStore(tmp_path)
    await s.put(0, "k", b"v", 1)
    assert len(_writer_tasks()) == 1
    with trio.CancelScope() as scope:
        scope.cancel()
        await s.close()  # shielded: still commits and ends the writer
    assert _writer_tasks() == []
    await s.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await s.put(0, "k", b"v", 2)
    async with open_sqlite_store(tmp_path) as again:
        assert await again.get(0, "k") == Record(b"v", 1)
    assert _writer_tasks() == []


async def test_close_waits_for_the_commit_in_flight(tmp_path: Path) -> None:
    rows = [(f"k{i:05}", Record(b"v", 1)) for i in range(20_000)]  # commits on a thread
    async with open_sqlite_store(tmp_path) as s:
        done: list[object] = []

        async def put_many() -> None:
            done.append(await s.put_many(0, rows))

        async def put() -> None:
            done.append(await s.put(1, "late", b"v", 5))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(put_many)
            nursery.start_soon(put)
            await trio.testing.wait_all_tasks_blocked()  # both queued, the commit running
            await s.close()
        assert sorted(done, key=str) == [20_000, True]
    async with open_sqlite_store(tmp_path) as again:
        assert await again.get(1, "late") == Record(b"v", 5)
        assert again.stats(0).keys == 20_000


async def test_a_directory_serves_one_store_at_a_time(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path):
        with pytest.raises(ConfigError, match="in use"):
            SqliteStore(tmp_path)
    async with open_sqlite_store(tmp_path):
        pass


async def test_open_store_picks_memory_or_a_directory_per_node(tmp_path: Path) -> None:
    async with open_store(NodeSettings(node_id="n1", memory=True)) as memory:
        assert isinstance(memory, MemoryStore)
    settings = NodeSettings(node_id="n1", data_dir=str(tmp_path))
    async with open_store(settings) as durable:
        assert isinstance(durable, SqliteStore)
        await durable.put(0, "k", b"v", 1)
    assert (tmp_path / "n1" / "store.sqlite3").exists()


async def test_a_dead_writer_fails_its_callers_instead_of_hanging(tmp_path: Path) -> None:
    class WriterBug(BaseException):
        pass

    def broken(ops: object) -> None:
        raise WriterBug

    before = set(threading.enumerate())
    async with open_sqlite_store(tmp_path) as s:
        s._commits._transaction = broken  # type: ignore[method-assign]
        with trio.fail_after(5), pytest.raises(WriterBug):
            await s.put(0, "k", b"v", 1)
        with pytest.raises(RuntimeError, match="writer failed"):
            await s.put(0, "k", b"v", 2)
    assert set(threading.enumerate()) == before


# -- both stores agree with a model, whatever order copies arrive in -------------

_writes = st.lists(
    st.tuples(st.sampled_from("abcde"), st.one_of(st.none(), st.binary(max_size=8))),
    max_size=30,
)


@settings(max_examples=30, deadline=None)
@given(writes=_writes, data=st.data())
def test_any_delivery_order_converges_to_the_highest_versions(writes, data) -> None:
    records = [(key, Record(value, version)) for version, (key, value) in enumerate(writes, 1)]
    model: dict[str, Record] = {}
    for key, record in records:
        model[key] = record  # versions ascend, so the last write of a key wins
    order = data.draw(st.permutations(records))
    split = data.draw(st.integers(0, len(order)))
    since = data.draw(st.integers(0, len(records)))
    newer = sorted((k, r) for k, r in model.items() if r.version > since)

    async def scenario(store: Store) -> dict[str, Record]:
        for key, record in order[:split]:  # some arrive one by one...
            await store.put(0, key, record.value, record.version)
        await store.put_many(0, order[split:])  # ...the rest as a merge
        assert await store.export(0, since=since) == newer  # what a catch-up copies
        return dict(await store.export(0))

    async def both() -> None:
        memory = MemoryStore()
        assert await scenario(memory) == model
        with tempfile.TemporaryDirectory() as directory:
            async with open_sqlite_store(os.path.join(directory, "n")) as durable:
                assert await scenario(durable) == model
                assert await durable.keys(0) == sorted(
                    k for k, r in model.items() if r.value is not None
                )

    trio.run(both)
