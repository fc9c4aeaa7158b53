"""One format for wall-clock times in every JSON answer: RFC 3339, UTC,
milliseconds, a ``Z`` suffix, so a client parses every view the same way."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["rfc3339"]


def rfc3339(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    text = datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
