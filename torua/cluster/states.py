"""The named states of the cluster's model, each a ``StrEnum``.

A ``StrEnum`` member is a ``str`` equal to its value, so the JSON views, the
metrics labels and the log lines show the same words as before, and code that
compares with a plain string still works; new code names the member, so a
typo is an AttributeError instead of a state that never matches.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CheckState",
    "ClusterHealth",
    "CopyJob",
    "FillKind",
    "MoveKind",
    "NodeMode",
    "NodeStatus",
    "ProbeResult",
    "ShardState",
]


class NodeStatus(StrEnum):
    """What the probes say of a node (``status`` in ``GET /nodes``)."""

    UNKNOWN = "unknown"  # not probed to a conclusion yet
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class NodeMode(StrEnum):
    """What the operator asked of a node (``mode`` in ``GET /nodes``)."""

    ACTIVE = "active"
    MAINTENANCE = "maintenance"  # copies move off, none arrive; it comes back
    EVACUATING = "evacuating"  # copies move off, primaries first
    DRAINING = "draining"  # leaving for good


class ShardState(StrEnum):
    """One shard's state (``state`` in ``GET /shards``)."""

    ACTIVE = "active"
    RECOVERING = "recovering"  # some copy lacks an acknowledged write
    RELOCATING = "relocating"  # a copy is being handed over
    INCOMPLETE = "incomplete"  # a lost copy waits to be merged back
    UNASSIGNED = "unassigned"  # no copy on a live node


class ClusterHealth(StrEnum):
    """``cluster_state`` in ``GET /cluster/info`` (docs/operations.md says what to do)."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


class CheckState(StrEnum):
    """A node self-check's result (docs/self-checks.md)."""

    PASSING = "passing"
    WARNING = "warning"
    CRITICAL = "critical"


class ProbeResult(StrEnum):
    """One health probe's outcome; inconclusive when the prober itself stalled."""

    OK = "ok"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class MoveKind(StrEnum):
    """What a placement move does to a shard's copies."""

    PROMOTE = "promote"
    ADD = "add"
    DROP = "drop"
    RELOCATE = "relocate"


class CopyJob(StrEnum):
    """The mover's jobs: a fill builds a copy, a merge brings a lost copy's
    writes back into the shard, a reconcile makes a suspect shard's copies agree
    after a restart."""

    FILL = "fill"
    MERGE = "merge"
    RECONCILE = "reconcile"


class FillKind(StrEnum):
    """A fill copies the whole shard, or only the records newer than a version
    the copy is known to hold (a node back from a planned restart)."""

    FULL = "full"
    DELTA = "delta"
