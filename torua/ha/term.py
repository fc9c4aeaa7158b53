"""One leadership term: the epoch, and how long the leader may still act.

The deadline is the earliest moment etcd could let the lease expire, less a
margin: a renewal sent at ``t`` that etcd answers with TTL ``ttl`` keeps the
lease alive at least until ``t + ttl`` (etcd starts counting only when it
receives the request). Everything only a leader may do runs in cancel scopes
that carry this deadline, so when renewals stop succeeding the leader's work
is cancelled before another coordinator can possibly be elected (Patroni's
rule: a lease that may have lapsed leads nothing). A process frozen past its deadline
(SIGSTOP) finds its scopes expired the moment it runs again, because Trio
expires deadlines before it resumes any task.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

__all__ = ["Term"]


class Term:
    def __init__(self, epoch: int, deadline: float) -> None:
        self.epoch = epoch
        self.deadline = deadline
        self.ended = False
        self._scopes: set[trio.CancelScope] = set()

    def valid(self) -> bool:
        """May the leader still act (acknowledge a write, save state) right now?"""
        return not self.ended and trio.current_time() < self.deadline

    def extend(self, deadline: float) -> None:
        """A renewal succeeded: push the deadline of every guarded scope back."""
        if self.ended or deadline <= self.deadline or trio.current_time() >= self.deadline:
            return  # once lapsed, a term stays lapsed: its work is already cancelled
        self.deadline = deadline
        for scope in self._scopes:
            scope.deadline = deadline

    def end(self) -> None:
        """The term is over (lost, lapsed or given up): cancel all leader work."""
        self.ended = True
        for scope in list(self._scopes):
            scope.cancel()

    @contextmanager
    def guard(self) -> Iterator[trio.CancelScope]:
        """A cancel scope that lives and dies with this term."""
        scope = trio.CancelScope(deadline=self.deadline)
        if self.ended:
            scope.cancel()
        self._scopes.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._scopes.discard(scope)
