"""When to try again, where, and after how long: no I/O here, so both clients share it.

The rules, and the failure each is for:

* A connection that could not be made never reached a coordinator, so any
  request may go to the next URL at once. Coordinators behind a failed leader
  answer 503 ``no_leader``/``not_leader``: another URL may be the new leader,
  so those move to the next URL too.
* Once every URL has failed in one round, the client waits (``Retry-After``
  when the answer had one, else a short doubling backoff) before the next
  round, so a cluster in an election is not flooded.
* Other 503 answers (a shard with no copy up, an incomplete shard) are retried
  on the same URL after ``Retry-After``.
* A connection that broke after the request was sent (a timeout, a reset) may
  have been applied, and so may a request answered 503 (``not_leader`` says
  so outright: the leader's term ended while it ran). Only idempotent
  requests (GET, PUT, DELETE, bulk) try again after those, which is safe
  because applying them twice leaves what once would. Any other request
  (a POST) is sent at most once: only a connection never made moves it on.
* A resent write whose first attempt did apply is applied twice. With no other
  writer of that key in between, that is the same as once; with one, a reader
  may see the value, the other writer's, then the value again. A program that
  needs every single-key history linearizable under concurrent writers to one
  key passes ``idempotent=False`` to ``request()`` for its writes and settles
  unknown outcomes itself (a read decides).
* Every call gives up once waiting would pass its budget (``Retry.total``
  seconds from the call's start), raising the last error. A call therefore
  lasts at most ``total`` plus one round of request timeouts.

The URL that answered last is remembered across calls (:class:`Endpoints`), so
after a failover every call goes straight to the coordinator that works.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from torua.client.errors import LEADER_CODES

__all__ = ["Attempts", "Endpoints", "Failure", "Retry"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """How long one call may keep trying.

    ``total``: seconds from the call's start after which no new wait begins
    (0 disables retries, except moving to the next URL within the first round).
    ``when_unreachable``: keep trying after every URL refused the connection
    (a coordinator restarting); False gives up after one round, as a command
    line tool should when nothing listens.
    """

    total: float = 15.0
    when_unreachable: bool = True
    first_backoff: float = 0.05
    max_backoff: float = 1.0

    def __post_init__(self) -> None:
        if self.total < 0 or self.first_backoff <= 0 or self.max_backoff < self.first_backoff:
            raise ValueError(f"bad retry settings: {self!r}")


class Failure(Enum):
    """What went wrong with one attempt."""

    NOT_SENT = "not_sent"  # the connection could not be made
    MAYBE_SENT = "maybe_sent"  # it broke, or timed out, after the request went out
    NO_LEADER = "no_leader"  # 503 no_leader / not_leader
    UNAVAILABLE = "unavailable"  # any other 503


class Endpoints:
    """The coordinator URLs, and which one to try first."""

    def __init__(self, urls: Sequence[str]) -> None:
        if not urls:
            raise ValueError("give at least one coordinator URL")
        self.urls = tuple(urls)
        self._preferred = 0

    @property
    def current(self) -> str:
        return self.urls[self._preferred]

    def move_past(self, url: str) -> None:
        """``url`` failed: prefer the one after it (unless another call moved on already)."""
        if self.urls[self._preferred] == url:
            self._preferred = (self._preferred + 1) % len(self.urls)


def classify_status(status: int, code: str) -> Failure | None:
    """The failure an answer is, when a retry may help; None for a final answer."""
    if status != 503:
        return None
    return Failure.NO_LEADER if code in LEADER_CODES else Failure.UNAVAILABLE


class Attempts:
    """One call's attempts: after each failure, :meth:`next_wait` says whether to
    try again and after how many seconds; :attr:`url` is where to send next.

    ``now`` is the caller's clock (``time.monotonic`` or ``trio.current_time``),
    read only when given, so tests drive this with plain numbers.
    """

    def __init__(
        self, endpoints: Endpoints, policy: Retry, *, started: float, idempotent: bool
    ) -> None:
        self._endpoints = endpoints
        self._policy = policy
        self._deadline = started + policy.total
        self._idempotent = idempotent
        self._failed_this_round: set[str] = set()
        self._waits = 0
        self.url = endpoints.current

    def next_wait(
        self, failure: Failure, *, now: float, retry_after: float | None = None
    ) -> float | None:
        """Seconds to wait before the next attempt, or None: give up, raise the last error."""
        if failure is not Failure.NOT_SENT and not self._idempotent:
            return None  # it may have been applied: sent at most once
        if failure is Failure.UNAVAILABLE:
            self._failed_this_round.clear()  # the URL answered: stay on it
            return self._wait(now, retry_after)
        self._failed_this_round.add(self.url)
        self._endpoints.move_past(self.url)
        self.url = self._endpoints.current
        if len(self._failed_this_round) < len(self._endpoints.urls):
            return 0.0  # a URL not tried this round: at once
        self._failed_this_round.clear()
        if failure is Failure.NOT_SENT and not self._policy.when_unreachable:
            return None
        return self._wait(now, retry_after)

    def _wait(self, now: float, retry_after: float | None) -> float | None:
        if retry_after is None:
            backoff = self._policy.first_backoff * 2**self._waits
            retry_after = min(self._policy.max_backoff, backoff)
        self._waits += 1
        if now + retry_after > self._deadline:
            return None
        return retry_after
