"""The ASGI lifespan protocol, so the app's startup and shutdown hooks run.

Quart sets up per-serving state in its startup (``app.shutdown_event``,
QuartTrio's nursery for background tasks); hypercorn drives this protocol,
and so does the native server, in the same order: startup before the first
request, shutdown after the last.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

__all__ = ["lifespan"]

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Run ``app``'s lifespan around the body; an app without one is fine."""
    to_app, app_inbox = trio.open_memory_channel[dict[str, Any]](2)
    app_outbox, from_app = trio.open_memory_channel[dict[str, Any]](2)
    supported = True

    async def run() -> None:
        nonlocal supported
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        try:
            await app(scope, app_inbox.receive, app_outbox.send)
        except Exception:
            supported = False
            log.debug("the app does not support the ASGI lifespan", exc_info=True)
        finally:
            await app_outbox.aclose()

    async def step(kind: str) -> None:
        if not supported:
            return
        await to_app.send({"type": f"lifespan.{kind}"})
        try:
            reply = await from_app.receive()
        except trio.EndOfChannel:
            return
        if reply["type"].endswith(".failed"):
            raise RuntimeError(f"the app's lifespan {kind} failed: {reply.get('message')}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await step("startup")
        try:
            yield
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await step("shutdown")
            nursery.cancel_scope.cancel(reason="lifespan over")
