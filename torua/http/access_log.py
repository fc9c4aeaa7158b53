"""The access log: one line per HTTP request, in the same shape on both servers.

Off by default (``TORUA_ACCESS_LOG=1`` / ``--access-log`` turns it on),
because formatting and writing a line costs about as much as answering a key
from memory. When on, the line is logged at INFO on ``torua.http.access``,
which the process's logging setup keeps at INFO whatever the general level,
so turning the switch on is all it takes to see the lines.

A line: ``CLIENT METHOD PATH STATUS BYTES DURATION``, e.g.
``127.0.0.1:51234 GET /data/k1 200 100 0.412ms``. PATH is the target as the
client sent it (percent-encoded, query included), so a key holding a newline
cannot forge a second line. BYTES is the response body, ``-`` when not known.
"""

from __future__ import annotations

import logging
from typing import Any

from hypercorn.logging import Logger as HypercornLogger

__all__ = ["ACCESS_LOGGER", "HypercornAccessLogger", "log_request"]

ACCESS_LOGGER = "torua.http.access"
access_log = logging.getLogger(ACCESS_LOGGER)


def _client(client: Any) -> str:
    if isinstance(client, (tuple, list)) and len(client) >= 2:
        return f"{client[0]}:{client[1]}"
    return "-"


def log_request(
    client: Any, method: str, target: bytes, status: int, size: int | None, seconds: float
) -> None:
    """Log one request's line (call only when the access log is on)."""
    access_log.info(
        "%s %s %s %d %s %.3fms",
        _client(client),
        method,
        target.decode("ascii", "backslashreplace"),
        status,
        "-" if size is None else size,
        seconds * 1000.0,
    )


class HypercornAccessLogger(HypercornLogger):
    """hypercorn's logger, writing access lines in the native server's shape."""

    async def access(self, request: Any, response: Any, request_time: float) -> None:
        # hypercorn 0.18 also calls this with no response when the client closes
        # while the answer's last piece is still being sent, then again with the
        # response: the first call would be a second, wrong line for one request.
        if self.access_logger is None or response is None:
            return
        target = request.get("raw_path") or request.get("path", "").encode()
        if query := request.get("query_string"):
            target += b"?" + query
        size: int | None = None
        for name, value in response.get("headers", ()):
            if name.lower() == b"content-length" and value.isdigit():
                size = int(value)
        status = response["status"]
        method = request.get("method", "GET")
        log_request(request.get("client"), method, target, status, size, request_time)
