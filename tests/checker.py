"""An acknowledged-write checker, after Elasticsearch's testAckedIndexing.

It records every write the cluster acknowledged (204) and every write whose
fate is unknown (an error or a timeout: it may or may not have landed). At
the end each key must read back its last acknowledged value, or a value from
an unknown-fate write issued after it; anything else is a lost write.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import trio

__all__ = ["AckedWrites"]


@dataclass
class AckedWrites:
    acked: dict[str, bytes] = field(default_factory=dict)
    maybe: dict[str, set[bytes]] = field(default_factory=dict)
    attempts: int = 0
    failures: int = 0

    async def put(self, http: httpx.AsyncClient, key: str, value: bytes) -> bool:
        self.attempts += 1
        try:
            response = await http.put(f"/data/{key}", content=value)
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == 204:
            self.acked[key] = value
            self.maybe.pop(key, None)
            return True
        self.failures += 1
        self.maybe.setdefault(key, set()).add(value)
        return False

    async def run_writer(
        self,
        http: httpx.AsyncClient,
        keys: int,
        *,
        prefix: str = "k",
        stop: trio.Event,
        pause: float = 0.0,
    ) -> None:
        """Write ``keys`` keys round-robin until ``stop`` is set (then finish the round)."""
        generation = 0
        while not stop.is_set():
            for i in range(keys):
                await self.put(http, f"{prefix}{i}", f"{prefix}{i}-g{generation}".encode())
                if pause:
                    await trio.sleep(pause)
            generation += 1

    async def lost(self, http: httpx.AsyncClient) -> list[str]:
        """Keys whose last acknowledged value cannot be read back."""
        missing: list[str] = []
        for key, value in sorted(self.acked.items()):
            response = await http.get(f"/data/{key}")
            got = response.content if response.status_code == 200 else None
            if got != value and got not in self.maybe.get(key, set()):
                missing.append(
                    f"{key}: expected {value!r}, got HTTP {response.status_code} "
                    f"{response.content[:60]!r}"
                )
        return missing
