"""Disk watermarks for the node's disk self-check, parsed from settings.

Two forms, as operators know them from Elasticsearch's disk watermarks: a
percentage is the share of the disk used, a size is the space that must stay
free (on very large disks an absolute size reads better than a percentage).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torua.errors import ConfigError

__all__ = ["DiskLimit", "parse_disk_limit"]

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb)?$")
_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}


@dataclass(frozen=True, slots=True)
class DiskLimit:
    """``90%`` is crossed when 90 % or more of the disk is used, ``10gb`` when
    less than 10 GiB is free. Exactly one of the two fields is set."""

    used_percent: float | None = None
    free_bytes: int | None = None

    def crossed(self, total: int, free: int) -> bool:
        if self.used_percent is not None:
            return total > 0 and (total - free) * 100 >= self.used_percent * total
        return free < (self.free_bytes or 0)

    def __str__(self) -> str:
        if self.used_percent is not None:
            return f"{self.used_percent:g}% used"
        return f"less than {self.free_bytes} bytes free"


def parse_disk_limit(text: str, *, setting: str) -> DiskLimit:
    raw = text.strip().lower()
    if raw.endswith("%"):
        try:
            percent = float(raw[:-1])
        except ValueError:
            percent = -1.0
        if not 0 < percent <= 100:
            raise ConfigError(f"{setting}={text!r} must be a percentage of disk used, 0-100%")
        return DiskLimit(used_percent=percent)
    match = _SIZE.match(raw)
    if match is None:
        raise ConfigError(
            f"{setting}={text!r} is not a disk limit (use a percentage used such as 90%, "
            "or a free size such as 10gb)"
        )
    return DiskLimit(free_bytes=int(float(match[1]) * _SIZE_UNITS[match[2] or "b"]))
