"""The per-key linearizability checker on known-good and known-bad histories.

The Hypothesis tests simulate a real register (each op takes effect at one
instant inside its interval) so every generated history is linearizable, and
then plant a stale read where no linearization can explain it.
"""

from __future__ import annotations

import random
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from .linearizability import Op, check_history, check_key

K = "k"


def w(value: str, start: float, end: float | None, client: int = 0) -> Op:
    return Op(K, "write", value.encode(), start, end, client)


def d(start: float, end: float | None, client: int = 0) -> Op:
    return Op(K, "delete", None, start, end, client)


def r(value: str | None, start: float, end: float | None, client: int = 0) -> Op:
    return Op(K, "read", None if value is None else value.encode(), start, end, client)


def ok(*ops: Op) -> bool | None:
    return check_key(K, _numbered(ops)).ok


def _numbered(ops: tuple[Op, ...] | list[Op]) -> list[Op]:
    return [
        Op(o.key, o.kind, o.value, o.invoke, o.complete, o.client, i) for i, o in enumerate(ops)
    ]


def test_empty_and_sequential_histories_are_linearizable() -> None:
    assert ok() is True
    assert ok(r(None, 0, 1)) is True
    assert ok(w("a", 0, 1), r("a", 2, 3), d(4, 5), r(None, 6, 7), w("b", 8, 9), r("b", 10, 11))


def test_stale_read_after_acked_write() -> None:
    result = check_key(K, _numbered([w("a", 0, 1), w("b", 2, 3), r("a", 4, 5)]))
    assert result.ok is False
    assert "read -> 'a'" in result.explanation and "write 'b'" in result.explanation
    assert "shortest failing prefix is the first 3" in result.explanation


def test_read_of_a_value_never_written() -> None:
    assert ok(w("a", 0, 1), r("zzz", 2, 3)) is False
    assert ok(r("zzz", 0, 1)) is False


def test_deleted_key_coming_back() -> None:
    assert ok(w("a", 0, 1), d(2, 3), r("a", 4, 5)) is False
    assert ok(w("a", 0, 1), d(2, 3), r(None, 4, 5), r("a", 6, 7)) is False


def test_acked_write_then_absent_is_a_lost_write() -> None:
    assert ok(w("a", 0, 1), r(None, 2, 3)) is False


def test_two_reads_in_an_order_no_register_allows() -> None:
    # a then b were written concurrently with both readers; one reader saw b then a
    # while the other saw a then b, after both writes had finished.
    ops = [
        w("a", 0, 10, 0),
        w("b", 0, 10, 1),
        r("b", 11, 12, 2),
        r("a", 13, 14, 2),
    ]
    assert ok(*ops) is False
    # While both writes are open, either order may be observed.
    assert ok(w("a", 0, 10, 0), w("b", 0, 10, 1), r("a", 1, 2, 2), r("b", 3, 4, 3)) is True
    assert ok(w("a", 0, 10, 0), w("b", 0, 10, 1), r("b", 1, 2, 2), r("a", 3, 4, 3)) is True
    # But not a flip back: a, b, a.
    flip = [r("a", 1, 2, 2), r("b", 3, 4, 3), r("a", 5, 6, 2)]
    assert ok(w("a", 0, 10, 0), w("b", 0, 10, 1), *flip) is False


def test_concurrent_ops_may_take_effect_in_either_order() -> None:
    assert ok(w("a", 0, 5, 0), r("a", 1, 2, 1), r(None, 0, 0.5, 2)) is True
    assert ok(w("a", 0, 5, 0), d(1, 6, 1), r(None, 2, 3, 2), r("a", 2.5, 4, 3)) is True
    assert ok(w("a", 0, 5, 0), d(1, 6, 1), r("a", 2, 3, 2), r(None, 3.5, 4, 3)) is True
    back = [r("a", 2, 3, 2), r(None, 3.5, 4, 3), r("a", 4.5, 4.8, 2)]
    assert ok(w("a", 0, 5, 0), d(1, 6, 1), *back) is False
    # Touching intervals count as concurrent.
    assert ok(w("a", 0, 1, 0), r(None, 1, 2, 1)) is True


def test_unknown_write_that_later_shows_up() -> None:
    assert ok(w("a", 0, 1), w("b", 2, None), r("a", 3, 4), r("b", 5, 6)) is True
    # Once seen, it happened: reading the older value afterwards is stale.
    assert ok(w("a", 0, 1), w("b", 2, None), r("b", 3, 4), r("a", 5, 6)) is False


def test_unknown_write_that_never_shows_up() -> None:
    assert ok(w("a", 0, 1), w("b", 2, None), r("a", 3, 4), r("a", 50, 51)) is True
    # It cannot explain a read before its own invocation.
    assert ok(w("a", 0, 1), r("b", 1.5, 1.8), w("b", 2, None)) is False


def test_unknown_write_appearing_after_a_long_time() -> None:
    ops = [w("a", 0, 1), w("b", 2, None)]
    ops += [r("a", 3 + i, 3.5 + i, 1) for i in range(100)]
    ops += [r("b", 500, 501, 1)]
    assert ok(*ops) is True
    # But an acked write in between orders them: b may land after c, then c is gone.
    assert ok(w("a", 0, 1), w("b", 2, None), w("c", 10, 11), r("b", 20, 21)) is True
    assert ok(w("a", 0, 1), w("b", 2, None), w("c", 10, 11), r("b", 20, 21), r("c", 22, 23)) is (
        False
    )


def test_unknown_deletes_may_or_may_not_happen() -> None:
    assert ok(w("a", 0, 1), d(2, None), r("a", 3, 4), r(None, 5, 6)) is True
    assert ok(w("a", 0, 1), d(2, None), r(None, 3, 4), r("a", 5, 6)) is False
    many = [d(2 + i, None, 1) for i in range(30)]
    assert ok(w("a", 0, 1), *many, r("a", 40, 41), w("b", 42, 43), r("zz", 44, 45)) is False
    assert ok(w("a", 0, 1), *many, r("a", 40, 41), w("b", 42, 43), r(None, 44, 45)) is True


def test_reads_of_unknown_outcome_are_ignored() -> None:
    assert ok(w("a", 0, 1), r("nonsense", 2, None)) is True


def test_keys_are_checked_independently() -> None:
    ops = [
        Op("x", "write", b"1", 0, 1, 0, 0),
        Op("y", "write", b"2", 0, 1, 0, 1),
        Op("x", "read", b"1", 2, 3, 0, 2),
        Op("y", "read", None, 2, 3, 0, 3),
    ]
    results = {res.key: res.ok for res in check_history(ops)}
    assert results == {"x": True, "y": False}


# -- generated histories ---------------------------------------------------


@st.composite
def register_histories(draw: st.DrawFn) -> list[Op]:
    """Clients issue ops one after another; each takes effect at one instant
    inside its interval (or, for an unknown outcome, maybe never) on a real register."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    clients = draw(st.integers(1, 6))
    count = draw(st.integers(0, 60))
    now = [rng.uniform(0, 2) for _ in range(clients)]
    planned: list[tuple[float, float, float | None, int, str, bytes | None]] = []
    for n in range(count):
        c = rng.randrange(clients)
        start = now[c] + rng.uniform(0, 1)
        end = start + rng.choice([0.0, 0.01, rng.uniform(0, 3)])
        point = rng.uniform(start, end)
        kind = rng.choice(["write", "write", "delete", "read", "read", "read"])
        value = f"v{n}".encode() if kind == "write" else None
        if kind != "read" and rng.random() < 0.15:
            # Unknown outcome: the client gives up at `end`, the effect may land
            # long after, or never.
            point = rng.choice([point, end + rng.uniform(0, 10), None])
            planned.append((point if point is not None else -1, start, None, c, kind, value))
        else:
            planned.append((point, start, end, c, kind, value))
        now[c] = end
    register: bytes | None = None
    ops: list[Op] = []
    for point, start, end, c, kind, value in sorted(planned, key=lambda p: p[0]):
        if point == -1:
            ops.append(Op(K, kind, value, start, None, c))  # type: ignore[arg-type]
            continue
        if kind == "read":
            ops.append(Op(K, "read", register, start, end, c))
        else:
            register = value
            ops.append(Op(K, kind, value, start, end, c))  # type: ignore[arg-type]
    return _numbered(sorted(ops, key=lambda o: o.invoke))


@settings(max_examples=300, deadline=None)
@given(register_histories())
def test_histories_of_a_real_register_are_linearizable(ops: list[Op]) -> None:
    result = check_key(K, ops)
    assert result.ok is True, result.explanation


def _certainly_stale(ops: list[Op]) -> list[tuple[int, bytes]]:
    """(read, value) pairs where reading the value is impossible: its only writer
    finished before another acked write or delete began, which finished before the read."""
    found = []
    writes = [o for o in ops if o.kind != "read" and o.complete is not None]
    for read in ops:
        if read.kind != "read" or read.complete is None:
            continue
        for old in writes:
            if old.kind != "write" or old.value == read.value:
                continue
            if any(
                new is not old and old.complete < new.invoke and new.complete < read.invoke  # type: ignore[operator]
                for new in writes
            ):
                assert old.value is not None
                found.append((read.index, old.value))
    return found


@settings(max_examples=300, deadline=None)
@given(register_histories(), st.data())
def test_a_planted_stale_read_is_detected(ops: list[Op], data: st.DataObject) -> None:
    candidates = _certainly_stale(ops)
    if not candidates:
        return
    index, stale = data.draw(st.sampled_from(candidates))
    bad = ops[index]
    ops[index] = Op(K, "read", stale, bad.invoke, bad.complete, bad.client, bad.index)
    result = check_key(K, ops)
    assert result.ok is False
    assert f"#{index} " in result.explanation or result.failing


def test_speed_on_a_large_history() -> None:
    """Thousands of ops on ten hot keys from eight clients check in seconds."""
    rng = random.Random(3)
    ops: list[Op] = []
    for key in range(10):
        history = _simulate(rng, f"k{key}", clients=8, count=3000)
        ops += history
    started = time.perf_counter()
    results = check_history(ops)
    elapsed = time.perf_counter() - started
    assert all(res.ok for res in results), [res.explanation for res in results if not res.ok]
    print(f"checked {len(ops)} ops in {elapsed:.2f}s ({len(ops) / elapsed:.0f} ops/s)")
    assert elapsed < 60


def _simulate(rng: random.Random, key: str, *, clients: int, count: int) -> list[Op]:
    now = [0.0] * clients
    planned = []
    for n in range(count):
        c = rng.randrange(clients)
        start = now[c] + rng.expovariate(100)
        end = start + rng.expovariate(50)
        kind = rng.choice(["write", "delete", "read", "read"])
        unknown = kind != "read" and rng.random() < 0.03
        point = rng.uniform(start, end) + (rng.uniform(0, 2) if unknown else 0)
        value = f"{key}-{n}".encode() if kind == "write" else None
        planned.append((point, start, None if unknown else end, c, kind, value))
        now[c] = end
    register: bytes | None = None
    ops = []
    for _, start, end, c, kind, value in sorted(planned, key=lambda p: p[0]):
        if kind == "read":
            ops.append(Op(key, "read", register, start, end, c))
        else:
            register = value
            ops.append(Op(key, kind, value, start, end, c))
    ops.sort(key=lambda o: o.invoke)
    return [
        Op(o.key, o.kind, o.value, o.invoke, o.complete, o.client, i) for i, o in enumerate(ops)
    ]
