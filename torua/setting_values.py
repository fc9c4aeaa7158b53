"""Parsing and printing one setting value: durations, booleans, numbers, log
levels, listen addresses, node URLs.

Kept apart from the settings objects (:mod:`torua.config`) because the CLI,
the launcher and the coordinator's live configuration parse single values
too; each parser raises :class:`~torua.errors.ConfigError` with the one line
a process prints before exiting with status 2.
"""

from __future__ import annotations

import ipaddress
import re

from torua.errors import ConfigError

__all__ = [
    "LOG_LEVELS",
    "format_duration",
    "is_loopback_host",
    "normalize_url",
    "parse_bool",
    "parse_duration",
    "parse_int",
    "parse_listen",
    "parse_log_level",
]

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str, *, setting: str = "duration") -> float:
    """Parse a Go duration (``500ms``, ``2s``, ``1m30s``) into seconds.

    Go syntax because operators of the original Torua already write it; a bare
    number is refused because ``5`` could mean seconds or milliseconds.
    """
    raw = text.strip()
    if raw in ("0",):
        return 0.0
    pos, total = 0, 0.0
    while pos < len(raw):
        match = _DURATION_PART.match(raw, pos)
        if match is None:
            raise ConfigError(
                f"{setting}={text!r} is not a duration (use Go syntax such as 500ms, 2s, 1m30s)"
            )
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not raw:
        raise ConfigError(f"{setting}={text!r} is not a duration (use Go syntax such as 2s)")
    return total


def format_duration(seconds: float) -> str:
    """Render seconds in Go syntax, the inverse of :func:`parse_duration`."""
    if seconds == 0:
        return "0s"
    if seconds < 0.001:
        return f"{round(seconds * 1e6)}us"
    ms = round(seconds * 1000)
    if ms % 1000:
        return f"{ms}ms"
    secs = ms // 1000
    hours, rest = divmod(secs, 3600)
    minutes, secs = divmod(rest, 60)
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return out + (f"{secs}s" if secs or not out else "")


def parse_bool(text: str, *, setting: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{setting}={text!r} is not a boolean (use 1/0, true/false)")


def parse_int(text: str, *, setting: str, minimum: int | None = None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError(f"{setting}={text!r} is not a whole number") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{setting}={text!r} must be at least {minimum}")
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_log_level(text: str | None, *, setting: str = "TORUA_LOG_LEVEL") -> str:
    """A logging level name, checked here so a typo is one line and exit 2, not a
    traceback from the logging module once the process is half started."""
    chosen = (text or "INFO").strip().upper()
    if chosen not in LOG_LEVELS:
        raise ConfigError(f"{setting}={text!r} is not a log level (use {', '.join(LOG_LEVELS)})")
    return chosen


def parse_listen(text: str, *, setting: str) -> tuple[str, int]:
    """Split ``host:port`` (``:8080`` means every interface, as in Go)."""
    raw = text.strip()
    if raw.startswith(("http://", "https://")):
        raw = raw.split("://", 1)[1].rstrip("/")
    host, sep, port_text = raw.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{setting}={text!r} is not a listen address (use host:port)")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_url(addr: str) -> str:
    """Accept a node address with or without a scheme; return ``http://host:port``."""
    url = addr.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url
