"""Logging setup, called only from ``__main__``: libraries just log."""

from __future__ import annotations

import logging
import os
import sys

from torua.config import parse_log_level

__all__ = ["configure_logging"]


def configure_logging(name: str, level: str | None = None) -> None:
    """Raises ConfigError for an unknown level (the flag's, else TORUA_LOG_LEVEL)."""
    chosen = parse_log_level(level or os.environ.get("TORUA_LOG_LEVEL"))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(chosen)
    # Lines reach this logger only when the access log is switched on; then
    # they show whatever the general level (``up`` runs its children at WARNING).
    logging.getLogger("torua.http.access").setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
