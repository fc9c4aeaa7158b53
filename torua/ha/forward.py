"""A follower passes what it cannot answer itself to the leader, unchanged.

Chosen over redirecting: a 307 would need every client (curl, httpx, the
CLI, scripts) to follow redirects and resend bodies, while forwarding makes
any coordinator a working entry point. The client's headers, its token
included, travel with the request, so the leader applies its own checks. A
request that already went through one follower is never forwarded again:
two coordinators that each think the other leads answer 503, not a loop.
Responses stream back, so ``GET /events`` works through a follower too.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import trio

from torua.errors import Unavailable
from torua.http.raw import RawResponder, header, read_body
from torua.sim import seam

__all__ = ["FORWARDED_HEADER", "Forwarder"]

log = logging.getLogger(__name__)

FORWARDED_HEADER = b"x-torua-forwarded"
# Hop-by-hop headers (RFC 9110 §7.6.1) and the ones httpx sets itself.
_SKIP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade", b"host"}
_SKIP_BACK = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length"}


class Forwarder:
    def __init__(self, me: str, responder: RawResponder, *, max_body: int) -> None:
        self._me = me
        self._respond = responder
        self._max_body = max_body
        timeout = httpx.Timeout(10.0, connect=2.0, read=None)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        self._client = httpx.AsyncClient(
            timeout=timeout, limits=limits, transport=seam.current().http_transport()
        )
        self._unreachable: str | None = None

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __call__(
        self,
        leader: str | None,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        *,
        leader_changed: trio.Event | None = None,
    ) -> None:
        """Forward to ``leader``; give up (503, or a cut stream) if the leader changes.

        A leader frozen or cut off mid-request may never answer: waiting on it
        must end when the election moves on, not hold a task forever.
        """
        started = False

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        with trio.CancelScope() as scope_guard:
            async with trio.open_nursery() as nursery:
                if leader_changed is not None:
                    nursery.start_soon(_cancel_on, leader_changed, scope_guard)
                await self._forward(leader, scope, receive, tracked)
                nursery.cancel_scope.cancel()
        if scope_guard.cancelled_caught and not started:
            message = f"the leader at {leader} was replaced while the request waited; retry"
            await self._respond.error(send, Unavailable(message, code="no_leader"))

    async def _forward(
        self, leader: str | None, scope: dict[str, Any], receive: Any, send: Any
    ) -> None:
        if leader is None or header(scope, FORWARDED_HEADER) is not None:
            await self._respond.error(
                send,
                Unavailable(
                    "no coordinator leads right now (an election is under way); retry shortly",
                    code="no_leader",
                ),
            )
            return
        body = await read_body(receive, self._max_body, "request bodies")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _SKIP]
        headers.append((FORWARDED_HEADER, self._me.encode()))
        url = leader + scope["raw_path"].decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        request = self._client.build_request(scope["method"], url, headers=headers, content=body)
        try:
            response = await self._client.send(request, stream=True)
        except (httpx.HTTPError, OSError) as exc:
            if leader != self._unreachable:
                # Once per leader, not per request: in a failover every request fails.
                log.warning("the leader at %s does not answer (%s); answering 503", leader, exc)
                self._unreachable = leader
            message = f"the leader at {leader} did not answer; retry shortly"
            await self._respond.error(send, Unavailable(message, code="no_leader"))
            return
        self._unreachable = None
        try:
            back = [(k, v) for k, v in response.headers.raw if k.lower() not in _SKIP_BACK]
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": back}
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except (httpx.HTTPError, OSError):
            log.info("the leader broke off a forwarded %s %s", scope["method"], scope["path"])
        finally:
            await response.aclose()


async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
