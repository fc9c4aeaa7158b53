"""The sizes and timeouts every native server connection is held to."""

from __future__ import annotations

from dataclasses import dataclass

from torua.limits import BODY_SLACK, BULK_BODY_BYTES

__all__ = ["ServerLimits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerLimits:
    """Why each limit: a client must not make the server hold memory or a task forever.

    ``max_url`` and ``max_head`` bound what is buffered before a request is
    known (414, 431); ``max_body`` bounds any body (413: the routes have
    smaller limits of their own, the largest being a 64 MiB bulk request).
    ``read_timeout`` is the whole time a request head may take once it has
    begun (a slowloris client dripping bytes is cut then) and the longest
    wait for each piece of a body; ``idle_timeout`` is how long a kept-alive
    connection may sit between requests. ``drain_limit`` is how much of an
    unread body is read and discarded after a response, to keep the
    connection usable; more than that and the connection is closed.
    """

    max_url: int = 64 * 1024  # a 1,024-byte key percent-encoded is 3 KiB; hypercorn allowed 64
    max_head: int = 80 * 1024
    max_headers: int = 100
    max_body: int = BULK_BODY_BYTES + BODY_SLACK
    read_timeout: float = 60.0
    idle_timeout: float = 30.0
    drain_limit: int = 1024 * 1024
    graceful: float = 5.0
    access_log: bool = False
