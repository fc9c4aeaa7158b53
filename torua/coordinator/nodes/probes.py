"""Health probes: one attempt to reach a node, reported as a value.

A probe answers one question, "did the node pass just now?", and returns
``None`` for yes or a short error text for no ("connection refused",
"HTTP 500"). Expected failures are values, never exceptions, so the monitor
can count them without ``try`` around every call.

A probe never applies the probe timeout itself: the monitor wraps each call in
its own cancel scope (``trio.move_on_after(settings.timeout)``), so a probe may
simply hang on a stopped node and the deadline lives in exactly one place.

Probes take the *live* settings on every call, so a change of kind or path
through ``PUT /cluster/config`` applies from the next probe without rebuilding
anything.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from torua.config import HealthSettings, normalize_url
from torua.sim import seam

__all__ = ["Probe", "describe_error", "probe_tcp"]

log = logging.getLogger(__name__)

Probe = Callable[[str, HealthSettings], Awaitable[str | None]]
"""``await probe(addr, settings)`` -> ``None`` when the node passed, else why not."""

_MAX_ERROR = 200


async def probe_tcp(addr: str, settings: HealthSettings) -> str | None:
    """Pass iff a TCP connection to the node's host:port opens; then close it.

    Cheaper than HTTP and independent of the node's web stack, but weaker: a
    stopped (SIGSTOPped) process still completes the handshake from the kernel's
    backlog, so only the monitor's timeout catches some hung nodes.
    """
    del settings  # same signature as every probe; tcp needs nothing from it
    try:
        host, port = _host_port(addr)
    except ValueError as exc:
        return _clip(f"bad address: {exc}")
    try:
        stream = await seam.current().open_tcp_stream(host, port)
    except OSError as exc:
        return describe_error(exc)
    await stream.aclose()
    return None


def describe_error(exc: BaseException) -> str:
    """A short, stable text for a failed connection, for history and events.

    trio wraps the OS error several layers deep (``OSError`` <- ``ExceptionGroup``
    of ``ConnectionRefusedError``, one per address tried); the innermost OS error
    is what an operator wants to read, so dig it out.
    """
    root = _innermost_os_error(exc)
    if isinstance(root, ConnectionRefusedError):
        return "connection refused"
    if isinstance(root, ConnectionResetError):
        return "connection reset"
    if isinstance(root, socket.gaierror):
        return "cannot resolve host"
    if isinstance(root, TimeoutError):
        return "connect timed out"
    if root is not None and root.strerror:
        return _clip(root.strerror.lower())
    return _clip(str(exc) or type(exc).__name__)


def _innermost_os_error(exc: BaseException) -> OSError | None:
    """The deepest OSError carrying an errno in the cause/context/group tree."""
    found: OSError | None = None
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and (current.errno is not None or found is None):
            found = current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for nxt in (current.__cause__, current.__context__):
            if nxt is not None:
                stack.append(nxt)
    return found


def _host_port(addr: str) -> tuple[str, int]:
    """``host:port`` from an address with or without a scheme (default port by scheme)."""
    parts = urlsplit(normalize_url(addr))
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in {addr!r}")
    port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return host, port


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."
