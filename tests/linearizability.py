"""A per-key linearizability checker for a register (write, delete, read).

Wing & Gong's search with Lowe's just-in-time linearization and memoization,
as porcupine and Knossos run it: walk the history's call and return events in
time order; at each return, the op must already be linearized, so try every
pending call first (depth-first), remembering each (linearized set, register
value) pair already explored so no configuration is searched twice.
Linearizability is local (Herlihy & Wing), so every key is checked on its own.

Ops of unknown outcome (a timeout, a 5xx, a dropped connection) may or may not
have happened, and if they did, at any time after their invocation: their
return is at +infinity and the search may leave them out. Placing them freely
makes the search exponential in their number, so it uses a canonical form that
changes no verdict: an unknown write or delete matters only if some read sees
its effect, and then nothing but reads of that value can separate them, so it
is linearized only together with, and right before, a read that needs it
(the earliest-invoked of several interchangeable ones). An unknown write whose
value no read saw is dropped outright.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Kind", "KeyResult", "Op", "check_history", "check_key"]

Kind = Literal["write", "delete", "read"]
INF = math.inf


@dataclass(frozen=True, slots=True)
class Op:
    """One client operation on one key.

    ``value``: the bytes written (write), None (delete), or what the read saw
    (None = 404). ``complete`` None means the outcome is unknown.
    """

    key: str
    kind: Kind
    value: bytes | None
    invoke: float
    complete: float | None
    client: int = 0
    index: int = 0

    def describe(self) -> str:
        end = "?" if self.complete is None else f"{self.complete:.3f}"
        value = "absent" if self.value is None else _short(self.value)
        what = {"write": f"write {value}", "delete": "delete", "read": f"read -> {value}"}
        return f"#{self.index} c{self.client} {what[self.kind]} [{self.invoke:.3f}, {end}]"


@dataclass(slots=True)
class KeyResult:
    key: str
    ok: bool | None  # None: the search ran out of budget (no verdict)
    ops: int
    explanation: str = ""
    steps: int = 0
    failing: list[Op] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Entry:
    """A call or return event in the doubly linked list the search lifts ops out of."""

    op_id: int
    time: float
    is_call: bool
    prev: _Entry | None = None
    next: _Entry | None = None
    match: _Entry | None = None  # call -> its return


def check_history(ops: Iterable[Op], *, max_steps: int = 5_000_000) -> list[KeyResult]:
    """Check every key's sub-history; one result per key, sorted by key."""
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    return [check_key(key, by_key[key], max_steps=max_steps) for key in sorted(by_key)]


def check_key(key: str, ops: list[Op], *, max_steps: int = 5_000_000) -> KeyResult:
    """Is this one key's history linearizable for a register that starts absent?"""
    kept = _prepare(ops)
    n = len(kept)
    values = [op.value for op in kept]
    # Unknown-outcome ops stay out of the event list: they are only ever taken
    # as helpers of a read, the earliest-invoked free one leaving the value it needs.
    spare: dict[bytes | None, list[int]] = defaultdict(list)
    for i, op in enumerate(kept):
        if op.complete is None:
            spare[op.value].append(i)
    used = [False] * n
    head = _build_list(kept)

    remaining = n - sum(len(ids) for ids in spare.values())
    state: bytes | None = None
    linearized = 0
    cache: set[tuple[int, bytes | None]] = set()
    calls: list[tuple[_Entry, bytes | None, int]] = []
    steps = 0
    # The return the search got furthest to without being able to pass it.
    stuck_at: _Entry | None = None
    stuck_states: set[bytes | None] = set()

    entry = head.next
    while remaining:
        steps += 1
        if steps > max_steps:
            return KeyResult(key, None, n, f"{key}: gave up after {max_steps} steps", steps)
        assert entry is not None  # a required return is always ahead while remaining > 0
        if entry.is_call:
            i = entry.op_id
            helper = -1
            new_linearized = linearized | (1 << i)
            if values[i] != state and kept[i].kind == "read":
                helper = _helper(entry, spare.get(values[i], ()), kept, used)
                if helper < 0:
                    entry = entry.next
                    continue
                new_linearized |= 1 << helper
            new_state = values[i]  # a read leaves what it saw (its helper's effect)
            if (new_linearized, new_state) not in cache:
                cache.add((new_linearized, new_state))
                calls.append((entry, state, helper))
                state, linearized = new_state, new_linearized
                remaining -= 1
                if helper >= 0:
                    used[helper] = True
                _lift(entry)
                entry = head.next
                continue
            entry = entry.next
            continue
        # A return whose call is not linearized yet: backtrack.
        if stuck_at is None or entry.time > stuck_at.time:
            stuck_at, stuck_states = entry, {state}
        elif entry is stuck_at:
            stuck_states.add(state)
        if not calls:
            break
        entry, state, helper = calls.pop()
        linearized &= ~(1 << entry.op_id)
        remaining += 1
        _unlift(entry)
        if helper >= 0:
            linearized &= ~(1 << helper)
            used[helper] = False
        entry = entry.next
    if not remaining:
        return KeyResult(key, True, n, steps=steps)
    assert stuck_at is not None
    return _explain(key, kept, stuck_at, stuck_states, steps)


def _helper(read: _Entry, candidates: Iterable[int], ops: list[Op], used: list[bool]) -> int:
    """The earliest free unknown-outcome op that leaves what ``read`` saw, or -1.

    Such an op matters only if a read sees its effect, and nothing but reads of
    that value can come between them, so it can always be placed right before
    the first such read; ops leaving the same value are interchangeable. It must
    have been invoked by now: before the first return still in the list.
    """
    now = read.next
    while now is not None and now.is_call:
        now = now.next
    bound = INF if now is None else now.time
    for j in candidates:  # sorted by invocation
        if ops[j].invoke > bound:
            break
        if not used[j]:
            return j
    return -1


def _prepare(ops: list[Op]) -> list[Op]:
    """Drop what cannot matter: reads without an answer, unknown writes nobody saw."""
    seen = {op.value for op in ops if op.kind == "read" and op.complete is not None}
    kept = [
        op
        for op in ops
        if op.complete is not None
        or (op.kind == "delete")
        or (op.kind == "write" and op.value in seen)
    ]
    return sorted(kept, key=lambda op: op.invoke)


def _build_list(ops: list[Op]) -> _Entry:
    events: list[tuple[float, int, int, _Entry]] = []
    for i, op in enumerate(ops):
        if op.complete is None:
            continue
        end = op.complete
        call = _Entry(i, op.invoke, True)
        ret = _Entry(i, end, False)
        call.match = ret
        # On equal times calls sort first: touching ops count as concurrent.
        events.append((op.invoke, 0, i, call))
        events.append((end, 1, i, ret))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    head = _Entry(-1, -INF, False)
    prev = head
    for _, _, _, entry in events:
        prev.next, entry.prev = entry, prev
        prev = entry
    return head


def _lift(call: _Entry) -> None:
    """Unlink a call and its return (the op is linearized)."""
    ret = call.match
    assert call.prev is not None and ret is not None and ret.prev is not None
    call.prev.next = call.next
    if call.next is not None:
        call.next.prev = call.prev
    ret.prev.next = ret.next
    if ret.next is not None:
        ret.next.prev = ret.prev


def _unlift(call: _Entry) -> None:
    ret = call.match
    assert call.prev is not None and ret is not None and ret.prev is not None
    ret.prev.next = ret
    if ret.next is not None:
        ret.next.prev = ret
    call.prev.next = call
    if call.next is not None:
        call.next.prev = call


def _explain(
    key: str,
    ops: list[Op],
    stuck: _Entry,
    states: set[bytes | None],
    steps: int,
) -> KeyResult:
    """The op no linearization of the history up to its return can place, and its company."""
    returns = [INF if op.complete is None else op.complete for op in ops]
    bad = ops[stuck.op_id]
    end = stuck.time
    before = sorted(
        (i for i, op in enumerate(ops) if returns[i] < bad.invoke),
        key=lambda i: returns[i],
    )[-3:]
    concurrent = [
        i
        for i, op in enumerate(ops)
        if i != stuck.op_id and op.invoke <= end and returns[i] >= bad.invoke
    ]
    # Unknown-outcome ops matter only if they could leave the value the op saw;
    # the last few of those are enough to show.
    definite = [i for i in concurrent if ops[i].complete is not None]
    maybe = [i for i in concurrent if ops[i].complete is None and ops[i].value == bad.value]
    concurrent = definite + (maybe[-3:] if bad.kind == "read" else [])
    involved = sorted(set(before) | set(concurrent) | {stuck.op_id}, key=lambda i: ops[i].invoke)
    possible = ", ".join(sorted("absent" if s is None else _short(s) for s in states))
    prefix = sum(1 for r in returns if r <= end)
    lines = [
        f"key {key}: not linearizable; the shortest failing prefix is the first {prefix} "
        f"of {len(ops)} ops, up to the return of {bad.describe()}",
        f"  the register could hold only: {possible}",
        "  ops involved (the last ones before it and every op concurrent with it):",
        *(("  * " if i == stuck.op_id else "    ") + ops[i].describe() for i in involved),
    ]
    return KeyResult(key, False, len(ops), "\n".join(lines), steps, [ops[i] for i in involved])


def _short(value: bytes) -> str:
    text = value.decode(errors="replace")
    return repr(text if len(text) <= 40 else text[:37] + "...")
