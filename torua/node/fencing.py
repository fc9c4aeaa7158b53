"""Fencing: a node obeys only the newest leader it has heard from.

With several coordinators every call from the leader carries its
epoch, the revision of its etcd leader key. A node remembers the largest
epoch it has seen and refuses writes and shard commands that carry a smaller
one: a deposed leader that has not noticed yet (a long GC pause, SIGSTOP, a
partition) cannot change data behind its successor's back. etcd locks are
not safe without this (jepsen.io/analyses/etcd-3.4.3). A single coordinator
sends no epoch (0), and a node that never saw one fences nothing.
"""

from __future__ import annotations

import logging

from torua.errors import BadRequest, Conflict
from torua.node.state import NodeRuntime

__all__ = ["EPOCH_HEADER", "fence"]

EPOCH_HEADER = "X-Torua-Epoch"
READS = frozenset({"GET", "HEAD"})

log = logging.getLogger(__name__)


def fence(runtime: NodeRuntime, raw: str | None, method: str) -> None:
    """Note a newer epoch; raise 409 for a command from an older one."""
    epoch = 0
    if raw is not None:
        if not raw.isdigit() or len(raw) > 19:
            raise BadRequest(f"{EPOCH_HEADER} must be a whole number", code="invalid_epoch")
        epoch = int(raw)
    if epoch > runtime.epoch:
        log.info("following the leader of epoch %d (was %d)", epoch, runtime.epoch)
        runtime.epoch = epoch
    elif epoch < runtime.epoch and method not in READS:
        raise Conflict(
            f"refused: sent under leader epoch {epoch}, but epoch {runtime.epoch} leads now",
            code="stale_epoch",
        )
