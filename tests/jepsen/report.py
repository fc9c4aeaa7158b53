"""The human-readable report of a run: what was done, what broke, what it means."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runner import RunResult

__all__ = ["render", "suspects"]

# Faults that ended this long before a failing op can still be blamed: a lost
# write shows up only when the key is next read.
BLAME_WINDOW = 15.0


def suspects(result: RunResult, at: float) -> list[str]:
    """Fault kinds active or recently ended around monotonic time ``at``."""
    return sorted({f.kind for f in result.faults if f.start <= at and f.end >= at - BLAME_WINDOW})


def latest(result: RunResult, at: float) -> str:
    """The last fault that began before ``at``: often, but not always, the culprit."""
    before = [f for f in result.faults if f.start <= at]
    return before[-1].describe() if before else "none"


def render(result: RunResult) -> str:
    o = result.options
    c = o.cluster
    lines = [
        f"jepsen seed={o.seed} seconds={o.seconds:g} clients={o.clients} keys={o.keys} "
        f"nodes={c.nodes} R={c.replicas} {'memory' if c.memory else 'durable'} nodes",
        f"elapsed {result.elapsed:.1f}s, {len(result.history.records)} ops",
    ]
    counts = result.history.counts()
    for kind in ("write", "delete", "read"):
        row = {outcome: counts.get((kind, outcome), 0) for outcome in ("ok", "fail", "unknown")}
        lines.append(f"  {kind:6} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    by_kind = Counter(f.kind for f in result.faults)
    lines.append(
        f"faults: {len(result.faults)} " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items()))
    )
    lines += [f"  {f.describe()}" for f in result.faults]
    lines.append(f"healed to green: {'yes' if result.healed else 'NO'}")
    if result.unread:
        lines.append(f"keys never read after healing: {', '.join(result.unread)}")
    lines.append(f"verdicts (checked in {result.check_seconds:.2f}s):")
    for key_result in result.results:
        verdict = {True: "linearizable", False: "NOT LINEARIZABLE", None: "unknown (budget)"}
        lines.append(
            f"  {key_result.key}: {verdict[key_result.ok]} "
            f"({key_result.ops} ops, {key_result.steps} steps)"
        )
    for key_result in result.violations:
        at = max(op.complete or op.invoke for op in key_result.failing)
        lines.append("")
        lines.append(key_result.explanation)
        lines.append(f"  faults around it: {', '.join(suspects(result, at)) or 'none'}")
        lines.append(f"  the last fault before it: {latest(result, at)}")
    if result.violations:
        kinds = sorted(
            {
                kind
                for r in result.violations
                for kind in suspects(result, max(op.complete or op.invoke for op in r.failing))
            }
        )
        lines.append(f"\nVIOLATION (seed {o.seed}); fault kinds around the failures: {kinds}")
    else:
        lines.append(
            "\nno linearizability violation found"
            + ("" if result.passed else " (but the run is not clean)")
        )
    return "\n".join(lines)
