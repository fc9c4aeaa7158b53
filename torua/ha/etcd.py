"""The few etcd v3 calls Torua needs, over etcd's JSON gateway.

Why the gateway and httpx rather than a gRPC client: the maintained Python
etcd clients are asyncio or thread based and none runs under Trio, while the
gateway is plain HTTP that etcd 3.4+ always serves next to gRPC. Keys and
values travel base64-encoded and int64 fields as strings; proto3 leaves out
fields at their default (``succeeded: false``, an empty ``kvs``), so every
read here supplies the default itself.

Each call tries the endpoints in turn, starting with the last one that
answered, so losing one member of an etcd cluster costs one failed attempt.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from torua.errors import ToruaError

__all__ = ["Etcd", "EtcdUnavailable", "KeyValue"]

log = logging.getLogger(__name__)


class EtcdUnavailable(ToruaError, OSError):
    """No endpoint answered, or etcd refused the call (a failed I/O, like any other)."""


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


@dataclass(frozen=True, slots=True)
class KeyValue:
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int

    @classmethod
    def from_json(cls, kv: dict[str, Any]) -> KeyValue:
        return cls(
            value=base64.b64decode(kv.get("value", "")),
            create_revision=int(kv.get("create_revision", 0)),
            mod_revision=int(kv.get("mod_revision", 0)),
            lease=int(kv.get("lease", 0)),
        )


class Etcd:
    """A client for one etcd cluster (a list of client URLs)."""

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 2.0) -> None:
        if not endpoints:
            raise ValueError("etcd needs at least one endpoint")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout = timeout
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, read=None))
        self._preferred = 0

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        errors: list[str] = []
        count = len(self.endpoints)
        for step in range(count):
            index = (self._preferred + step) % count
            url = self.endpoints[index] + path
            try:
                with trio.fail_after(self.timeout):
                    response = await self._client.post(url, json=body)
            except (httpx.HTTPError, OSError, trio.TooSlowError) as exc:
                errors.append(f"{url}: {type(exc).__name__}")
                continue
            if response.status_code >= 500 or response.status_code == 429:
                # This member cannot serve (no quorum, overloaded): try the next one.
                errors.append(f"{url}: HTTP {response.status_code}")
                continue
            try:
                data: dict[str, Any] = response.json() if response.content else {}
            except ValueError:
                raise EtcdUnavailable(f"{url}: HTTP {response.status_code}, not JSON") from None
            if response.status_code != 200 or not isinstance(data, dict):
                message = data.get("message") if isinstance(data, dict) else None
                raise EtcdUnavailable(f"{url}: HTTP {response.status_code} {message}")
            self._preferred = index
            return data
        raise EtcdUnavailable("; ".join(errors))

    async def get(self, key: str) -> KeyValue | None:
        data = await self._call("/v3/kv/range", {"key": _b64(key)})
        kvs = data.get("kvs", [])
        return KeyValue.from_json(kvs[0]) if kvs else None

    async def grant(self, ttl: float) -> tuple[int, float]:
        """A new lease; returns its id and the TTL etcd granted (whole seconds)."""
        data = await self._call("/v3/lease/grant", {"TTL": max(1, round(ttl))})
        if "ID" not in data or "TTL" not in data:
            raise EtcdUnavailable(f"lease grant answered without a lease: {data.get('error')}")
        return int(data["ID"]), float(data["TTL"])

    async def keepalive(self, lease: int) -> float:
        """Renew a lease; returns its fresh TTL, 0 when the lease is gone."""
        data = await self._call("/v3/lease/keepalive", {"ID": str(lease)})
        return float(data.get("result", {}).get("TTL", 0))

    async def revoke(self, lease: int) -> None:
        try:
            await self._call("/v3/lease/revoke", {"ID": str(lease)})
        except EtcdUnavailable as exc:
            if "not found" not in str(exc):
                raise

    async def create(self, key: str, value: bytes, lease: int) -> tuple[bool, KeyValue | None]:
        """Create ``key`` bound to ``lease`` unless it exists.

        Returns (True, the new key) or (False, the key that was there).
        """
        body = {
            "compare": [
                {"key": _b64(key), "result": "EQUAL", "target": "CREATE", "create_revision": "0"}
            ],
            "success": [
                {"request_put": {"key": _b64(key), "value": _b64(value), "lease": str(lease)}}
            ],
            "failure": [{"request_range": {"key": _b64(key)}}],
        }
        data = await self._call("/v3/kv/txn", body)
        revision = int(data.get("header", {}).get("revision", 0))
        if data.get("succeeded", False):
            return True, KeyValue(value, revision, revision, lease)
        kvs = data["responses"][0]["response_range"].get("kvs", [])
        return False, KeyValue.from_json(kvs[0]) if kvs else None

    async def put_if_owner(
        self, key: str, value: bytes, *, owner_key: str, owner_revision: int
    ) -> bool:
        """Put ``key`` only while ``owner_key`` still has this create revision.

        This is how a leader's writes are fenced in etcd itself: once its lease
        lapses and another coordinator creates the leader key, the revision
        no longer matches and the put is refused.
        """
        body = {
            "compare": [
                {
                    "key": _b64(owner_key),
                    "result": "EQUAL",
                    "target": "CREATE",
                    "create_revision": str(owner_revision),
                }
            ],
            "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}],
        }
        data = await self._call("/v3/kv/txn", body)
        return bool(data.get("succeeded", False))

    async def watch(self, key: str, after: int) -> AsyncGenerator[dict[str, Any], None]:
        """Events on ``key`` after revision ``after``, as etcd streams them.

        Ends (the caller re-reads and watches again) when the stream breaks.
        """
        body = {"create_request": {"key": _b64(key), "start_revision": str(after + 1)}}
        url = self.endpoints[self._preferred] + "/v3/watch"
        try:
            async with self._client.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    raise EtcdUnavailable(f"{url}: watch answered HTTP {response.status_code}")
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    message = json.loads(line)
                    result = message.get("result", {})
                    if "error" in message or result.get("canceled"):
                        raise EtcdUnavailable(f"{url}: watch refused: {message}"[:300])
                    for event in result.get("events", []):
                        yield event
        except (httpx.HTTPError, OSError, ValueError) as exc:
            raise EtcdUnavailable(f"{url}: watch ended: {type(exc).__name__}") from None
