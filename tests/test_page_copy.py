"""Copying a shard's pages between scripted nodes: bounded read-ahead, clean failures."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from torua.coordinator.data.page_copy import PAGE_ROWS, MoveAborted, copy_pages
from torua.coordinator.nodes.client import NodeUnreachable

from .fake_nodes import FakeNode, FakeNodeClient


def _nodes(pages: int) -> tuple[FakeNodeClient, FakeNode, FakeNode]:
    source, target = FakeNode(), FakeNode()
    for i in range(pages * PAGE_ROWS):
        source.records[(0, f"k{i:06}")] = (b"v", 1 + i)
    return FakeNodeClient({"a": source, "b": target}), source, target


async def test_the_source_reads_at_most_one_page_ahead_of_the_target() -> None:
    client, source, target = _nodes(5)
    target.import_gate = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(copy_pages, client, 0, lambda: "a", lambda: "b", lambda: None)
        await trio.testing.wait_all_tasks_blocked()
        # The first page waits at the target; the second is read and waits to be sent.
        assert len(source.exports) == 2 and target.imported == []
        target.import_gate.set()
    assert len(target.records) == 5 * PAGE_ROWS and len(source.exports) == 5


@pytest.mark.parametrize("side", ["source", "target"])
@pytest.mark.parametrize("fail", ["unreachable", "500"])
async def test_a_failing_node_stops_the_copy_with_one_plain_error(side: str, fail: str) -> None:
    client, source, target = _nodes(3)
    (source if side == "source" else target).fail = fail
    expected = NodeUnreachable if fail == "unreachable" else MoveAborted
    with pytest.raises(expected):  # not an exception group: the mover catches these
        await copy_pages(client, 0, lambda: "a", lambda: "b", lambda: None)
    assert len(target.records) == 0


async def test_a_copy_no_longer_wanted_stops_before_its_next_import() -> None:
    client, source, target = _nodes(3)
    imports = 0

    def check() -> None:
        nonlocal imports
        imports += 1
        if imports == 2:
            raise MoveAborted("the copy was moved again")

    with pytest.raises(MoveAborted):
        await copy_pages(client, 0, lambda: "a", lambda: "b", check)
    assert len(target.records) == PAGE_ROWS  # the first page only
