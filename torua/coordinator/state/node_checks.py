"""The self-checks each node reported in its latest health answer.

The probe reads them out of the ``/health`` body it fetches anyway (no extra
request); the views show them in ``/nodes``, the CLI and the dashboard, and
placement keeps new copies off a node whose disk check is not passing. Kept by
address because that is what a probe knows; a node that moves to a new address
starts afresh at its first probe there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from torua.cluster.states import CheckState

__all__ = ["NodeChecks", "summary"]

STATES = tuple(CheckState)


class NodeChecks:
    def __init__(self) -> None:
        self._by_addr: dict[str, list[dict[str, str]]] = {}
        # Called with the address when a node's disk check passes again after a
        # warning: shards left short while it took no copies may use it now.
        self.on_disk_clear: Callable[[str], None] | None = None

    def note(self, addr: str, body: bytes) -> list[dict[str, str]]:
        """Keep the checks found in a health answer (none: a node without checks)."""
        warned = self.disk_warns(addr)
        checks = _parse(body)
        if checks:
            self._by_addr[addr] = checks
        else:
            self._by_addr.pop(addr, None)
        if warned and not self.disk_warns(addr) and self.on_disk_clear is not None:
            self.on_disk_clear(addr)
        return checks

    def forget(self, addr: str) -> None:
        self._by_addr.pop(addr, None)

    def of(self, addr: str) -> list[dict[str, str]]:
        return list(self._by_addr.get(addr, ()))

    def disk_warns(self, addr: str) -> bool:
        """Whether the node's disk check is not passing: it takes no new copies."""
        return any(c["name"] == "disk" and c["state"] != CheckState.PASSING for c in self.of(addr))


def summary(checks: list[dict[str, str]]) -> str:
    """The failing checks in one line, for probe history and logs."""
    return "; ".join(f"{c['name']} {c['state']}: {c['output']}" for c in checks)[:200]


def _parse(body: bytes) -> list[dict[str, str]]:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return []
    raw = data.get("checks") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        return []
    out = []
    for item in raw[:32]:
        if not isinstance(item, dict) or item.get("state") not in STATES:
            continue
        out.append(
            {
                "name": str(item.get("name", ""))[:64],
                "state": str(item["state"]),
                "output": str(item.get("output", ""))[:300],
            }
        )
    return out
