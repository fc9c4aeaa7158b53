"""How the coordinator talks to its nodes: one place for URLs, headers, deadlines.

Every call returns a :class:`Reply` or raises :class:`NodeUnreachable`; callers
decide what a failure means (fail over, leave the in-sync set, retry later).
Calls go over kept-alive connections per node
(:mod:`torua.coordinator.nodes.connections`), http and https alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import trio

from torua.coordinator.nodes.connections import NodeConnections, header_lines
from torua.coordinator.nodes.sent import Sent
from torua.errors import ToruaError
from torua.http.records import RECORDS_TYPE, encode_cursor
from torua.http.wire import WireError

__all__ = ["NodeClient", "NodeUnreachable", "Reply", "key_path"]

VERSION_HEADER = "X-Torua-Version"
_VERSION_NAME = VERSION_HEADER.encode("latin-1")
_JSON = b"content-type: application/json\r\n"
LATE_ANSWER = 1.0  # seconds to finish reading an answer that arrived by the deadline


class NodeUnreachable(ToruaError):
    """The node did not answer in time or the connection failed."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    headers: Mapping[str, str]  # names lower-cased

    @property
    def error_code(self) -> str | None:
        if self.status < 400 or not self.body.startswith(b"{"):
            return None
        try:
            return str(json.loads(self.body).get("error"))
        except ValueError:
            return None

    @property
    def version(self) -> int | None:
        raw = self.headers.get("x-torua-version")
        return int(raw) if raw and raw.isdigit() else None


# Keys that percent-encoding leaves as they are (dots aside): most keys, and
# matching them costs a fraction of quote() on every node call.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_~-]+").fullmatch


def key_path(shard_id: int, key: str) -> str:
    """Percent-encode everything, dots too, so no client normalises ``..`` away."""
    if _PLAIN_KEY(key) is not None:
        return f"/shard/{shard_id}/store/{key}"
    return f"/shard/{shard_id}/store/" + quote(key, safe="").replace(".", "%2E")


class NodeClient:
    def __init__(self, conns: NodeConnections, *, request_timeout: float = 5.0) -> None:
        self._conns = conns
        self.request_timeout = request_timeout

    async def request(
        self,
        method: str,
        addr: str,
        path: str,
        *,
        content: bytes | None = None,
        payload: Any = None,
        headers: dict[str, str] | None = None,
        deadline: float | None = None,
        idempotent: bool | None = None,
    ) -> Reply:
        """One call; ``idempotent`` (default: by method) allows a resend on a fresh
        connection when a kept one turns out closed before the node answered."""
        extra = b"" if headers is None else header_lines(headers)
        if payload is not None:
            content = json.dumps(payload, separators=(",", ":")).encode()
            extra += _JSON
        limit = deadline if deadline is not None else self.request_timeout
        return await self._exchange(method, addr, path, content, extra, limit, idempotent)

    async def _exchange(
        self,
        method: str,
        addr: str,
        path: str,
        content: bytes | None,
        extra: bytes,
        limit: float,
        idempotent: bool | None,
    ) -> Reply:
        """:meth:`request` with its header lines ready-made (the per-key write's path)."""
        conns = self._conns
        if not conns.handles(addr):
            raise NodeUnreachable(f"{addr} is not an http:// or https:// address")
        # A bare cancel scope, not trio.fail_after: its generator-based context
        # manager cost a tenth of the coordinator's CPU per routed read.
        scope = trio.CancelScope(deadline=trio.current_time() + limit)
        try:
            with scope:
                raw = await conns.request(
                    addr, method, path, body=content, headers=extra, idempotent=idempotent
                )
                return Reply(raw.status, raw.body, raw.headers)
        except (OSError, WireError, trio.BrokenResourceError) as exc:
            raise NodeUnreachable(f"{addr}: {type(exc).__name__} {exc}".strip()) from None
        raise NodeUnreachable(f"{addr} did not answer {method} {path} in time")

    async def get(self, addr: str, shard_id: int, key: str) -> Reply:
        return await self.request("GET", addr, key_path(shard_id, key))

    async def write(
        self, addr: str, shard_id: int, key: str, value: bytes | None, version: int
    ) -> Reply:
        extra = b"%s: %d\r\n" % (_VERSION_NAME, version)
        method = "PUT" if value is not None else "DELETE"
        path = key_path(shard_id, key)
        return await self._exchange(method, addr, path, value, extra, self.request_timeout, None)

    async def write_each(
        self, addrs: list[str], shard_id: int, key: str, value: bytes | None, version: int
    ) -> list[Reply | NodeUnreachable]:
        """:meth:`write` to every address at once; each answer, or its failure, in order.

        The requests go out on kept connections from this task, and their answers
        are read here one after another: a replicated write then costs no task
        per copy (a nursery and its tasks were a tenth of the coordinator's CPU
        per write). A copy that cannot be sent to without waiting (no kept
        connection yet, TLS, every slot busy) gets a task of its own, as before.
        Each call has the usual deadline; an answer that began to arrive while an
        earlier copy's was awaited past it gets :data:`LATE_ANSWER` seconds more.
        """
        conns = self._conns
        method = "PUT" if value is not None else "DELETE"
        path = key_path(shard_id, key)
        extra = b"%s: %d\r\n" % (_VERSION_NAME, version)
        limit = self.request_timeout
        answers: list[Reply | NodeUnreachable | None] = [None] * len(addrs)
        await trio.lowlevel.checkpoint_if_cancelled()  # nothing is sent once given up
        deadline = trio.current_time() + limit
        sent: list[tuple[int, Sent]] = []
        waiting: list[int] = []
        try:
            for index, addr in enumerate(addrs):
                request = conns.send_nowait(addr, method, path, body=value, headers=extra)
                if request is None:
                    waiting.append(index)
                else:
                    sent.append((index, request))

            async def call(index: int) -> None:
                try:
                    answers[index] = await self._exchange(
                        method, addrs[index], path, value, extra, limit, None
                    )
                except NodeUnreachable as exc:
                    answers[index] = exc

            if len(waiting) == 1 and not sent:  # one copy, or a simulated network
                await call(waiting[0])
            elif waiting:
                async with trio.open_nursery() as nursery:
                    for index in waiting:
                        nursery.start_soon(call, index)
                    await self._answers(addrs, sent, answers, deadline, method, path)
            elif sent:
                await self._answers(addrs, sent, answers, deadline, method, path)
        finally:
            for _, request in sent:
                request.abandon()
        return answers  # type: ignore[return-value]  # every slot was filled

    async def _answers(
        self,
        addrs: list[str],
        sent: list[tuple[int, Sent]],
        answers: list[Reply | NodeUnreachable | None],
        deadline: float,
        method: str,
        path: str,
    ) -> None:
        """Read the answers to requests already sent, in order, within ``deadline``."""
        with trio.CancelScope(deadline=deadline):
            for index, request in sent:
                answers[index] = await self._answer(addrs[index], request)
        for index, request in sent:
            if answers[index] is not None:
                continue
            if request.has_input():  # it answered while an earlier copy was awaited
                with trio.move_on_after(LATE_ANSWER):
                    answers[index] = await self._answer(addrs[index], request)
            if answers[index] is None:
                request.abandon()
                addr = addrs[index]
                answers[index] = NodeUnreachable(f"{addr} did not answer {method} {path} in time")

    async def _answer(self, addr: str, request: Sent) -> Reply | NodeUnreachable:
        try:
            raw = await request.answer()
        except (OSError, WireError, trio.BrokenResourceError) as exc:
            return NodeUnreachable(f"{addr}: {type(exc).__name__} {exc}".strip())
        return Reply(raw.status, raw.body, raw.headers)

    async def export_page(
        self, addr: str, shard_id: int, after: str | None, *, since: int = 0, limit: int = 1000
    ) -> Reply:
        """A page of the shard's records newer than ``since``, as frames; where the next
        page starts is in the ``X-Torua-Next`` header (absent at the end)."""
        query = f"?limit={limit}"
        if after is not None:
            query += "&after=" + encode_cursor(after)
        if since:
            query += f"&since={since}"
        return await self.request(
            "GET",
            addr,
            f"/shard/{shard_id}/export{query}",
            headers={"Accept": RECORDS_TYPE},
            deadline=60.0,
        )

    async def import_page(self, addr: str, shard_id: int, frames: bytes) -> Reply:
        """Merge frames (an export page as it came) into the node's copy of the shard."""
        return await self.request(
            "POST",
            addr,
            f"/shard/{shard_id}/import",
            content=frames,
            headers={"Content-Type": RECORDS_TYPE},
            deadline=60.0,
            idempotent=True,  # a versioned merge: applying it twice changes nothing
        )

    async def import_sections(self, addr: str, sections: bytes) -> Reply:
        """Merge several shards' frames (``POST /shards/import``); answers per shard."""
        return await self.request(
            "POST",
            addr,
            "/shards/import",
            content=sections,
            headers={"Content-Type": RECORDS_TYPE},
            deadline=60.0,
            idempotent=True,
        )

    async def get_many_frames(self, addr: str, shard_id: int, keys: list[str]) -> Reply:
        """The stored records of ``keys`` (tombstones included) as binary frames."""
        return await self.request(
            "POST",
            addr,
            f"/shard/{shard_id}/get_many",
            payload={"keys": keys},
            headers={"Accept": RECORDS_TYPE},
            idempotent=True,
        )

    async def drop(self, addr: str, shard_id: int) -> Reply:
        return await self.request("POST", addr, f"/shard/{shard_id}/drop", deadline=10.0)

    async def control(self, addr: str, message: dict[str, Any], *, deadline: float) -> Reply:
        return await self.request("POST", addr, "/control", payload=message, deadline=deadline)

    async def wipe(self, addr: str, shard_id: int) -> Reply:
        """Empty a held copy before a fill from scratch (tombstone GC)."""
        return await self.request("POST", addr, f"/shard/{shard_id}/wipe", deadline=30.0)

    async def purge_tombstones(self, addr: str, shards: list[int], older_than: float) -> Reply:
        body = {"shards": shards, "older_than": older_than}
        return await self.request(
            "POST", addr, "/tombstones/purge", payload=body, deadline=30.0, idempotent=True
        )
