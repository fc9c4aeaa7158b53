"""The fan-out helper: concurrent, answers in the items' order, one item inline."""

from __future__ import annotations

import pytest
import trio

from torua.fanout import fan_out


async def test_calls_run_together_and_answers_keep_the_items_order(autojump_clock: object) -> None:
    async def slow_echo(seconds: int) -> int:
        await trio.sleep(seconds)
        return seconds * 10

    start = trio.current_time()
    answers = await fan_out(slow_echo, [3, 1, 2])
    assert answers == [30, 10, 20]
    assert trio.current_time() - start == 3.0  # the longest, not the sum


async def test_no_items_and_one_item() -> None:  # one item runs in a task too
    async def double(n: int) -> int:
        return 2 * n

    assert await fan_out(double, []) == []
    assert await fan_out(double, [4]) == [8]


async def test_a_failing_call_fails_the_fan_out_and_cancels_the_rest(
    autojump_clock: object,
) -> None:
    finished: list[int] = []

    async def call(n: int) -> int:
        if n == 0:
            raise ValueError("boom")
        await trio.sleep(n)
        finished.append(n)
        return n

    with pytest.RaisesGroup(ValueError):
        await fan_out(call, [0, 5])
    with pytest.RaisesGroup(ValueError):  # the same shape with one item
        await fan_out(call, [0])
    assert finished == []
