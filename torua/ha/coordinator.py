"""A coordinator that leads only while it holds the etcd lease.

Every coordinator serves HTTP all the time. While one leads, requests go to
that term's full API (``torua.coordinator``), each inside a cancel scope tied
to the term, so a request still running when the lease may lapse is cut off
and answered 503 ``not_leader`` instead of being acknowledged. A follower
answers the read-only state routes from the state saved in etcd and forwards
everything else to the leader (``torua.ha.forward``).

Each term starts from the state saved in etcd and builds fresh services
whose every call to a node carries the term's epoch; the term's state writes
are etcd transactions that succeed only while this term's leader key exists.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any

import trio

from torua import __version__
from torua.config import CoordinatorSettings
from torua.coordinator.api.app import create_coordinator_app
from torua.coordinator.api.docs import COORDINATOR_DOCS
from torua.coordinator.api.services import Services
from torua.coordinator.assembly import open_services
from torua.coordinator.state.persistence import restore
from torua.coordinator.state.state import ClusterState
from torua.errors import ApiError, Unavailable
from torua.ha.election import Election, StateStore
from torua.ha.etcd import Etcd
from torua.ha.forward import Forwarder
from torua.ha.native_data import LeaderData, NativeAware
from torua.ha.saved_views import SavedViews
from torua.ha.term import Term
from torua.http.openapi import install_openapi
from torua.http.raw import RawResponder, token_error
from torua.http.server import serve_then_cancel
from torua.limits import BODY_SLACK, BULK_BODY_BYTES

__all__ = ["EtcdBackend", "HACoordinator"]

log = logging.getLogger(__name__)

FORWARD_LIMIT = BULK_BODY_BYTES + BODY_SLACK  # the largest body the leader accepts (bulk)


class EtcdBackend:
    """Saves the state only while ``epoch`` still owns the leader key."""

    def __init__(self, etcd: StateStore, state_key: str, leader_key: str, epoch: int) -> None:
        self._etcd = etcd
        self._state_key = state_key
        self._leader_key = leader_key
        self._epoch = epoch

    async def save(self, payload: bytes) -> bool:
        return await self._etcd.put_if_owner(
            self._state_key, payload, owner_key=self._leader_key, owner_revision=self._epoch
        )


class HACoordinator:
    def __init__(self, settings: CoordinatorSettings, *, etcd: StateStore | None = None) -> None:
        """``etcd`` replaces the client built from the settings (tests pass a fake)."""
        self.settings = settings
        self.port: int | None = None
        self._client: Etcd | None = None  # ours to close
        if etcd is None:
            etcd = self._client = Etcd(settings.etcd_endpoints)
        self.etcd: StateStore = etcd
        self.election: Election | None = None
        self.services: Services | None = None  # the current term's, while leading
        self._leading: tuple[Term, Any] | None = None  # (term, its Quart app)
        self._stopping = trio.Event()
        self._respond = RawResponder(lambda: None)
        self._forward: Forwarder | None = None
        prefix = settings.etcd_prefix.rstrip("/") + "/"
        self.leader_key, self.state_key = prefix + "leader", prefix + "state"
        self._views = SavedViews(settings, self.etcd, self.state_key, self.info, self._epoch)

    @property
    def url(self) -> str:
        return self.settings.with_port(self.port or self.settings.port).url

    def stop(self) -> None:
        self._stopping.set()

    def _epoch(self) -> int | None:
        """The epoch of the leader we know of, or None while there is none."""
        election = self.election
        return election.epoch if election is not None and election.leader else None

    def info(self) -> dict[str, Any]:
        """``leader`` and ``epoch`` for ``/cluster/info``, on every coordinator."""
        election = self.election
        leading = election is not None and election.is_leader
        return {
            "leader": None if election is None else election.leader,
            "epoch": 0 if election is None else election.epoch,
            "role": "leader" if leading else "follower",
        }

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self.port = await nursery.start(
                    partial(
                        serve_then_cancel,
                        nursery,
                        NativeAware(self._asgi, LeaderData(lambda: self._leading)),
                        self.settings.host,
                        self.settings.port,
                        stopping=self._stopping,
                        server=self.settings.server,
                        access_log=self.settings.access_log,
                    )
                )
                self._forward = Forwarder(self.url, self._respond, max_body=FORWARD_LIMIT)
                self.election = Election(
                    self.etcd, key=self.leader_key, url=self.url, ttl=self.settings.leader_ttl
                )
                await nursery.start(partial(self.election.run, self._lead))
                log.info(
                    "coordinator serving at %s (etcd %s)",
                    self.url,
                    ",".join(self.settings.etcd_endpoints),
                )
                task_status.started(self.url)
        finally:
            with trio.CancelScope(shield=True):
                if self._forward is not None:
                    await self._forward.aclose()
                if self._client is not None:
                    await self._client.aclose()

    async def _lead(self, term: Term) -> None:
        """One term: load the saved state, run the leader's services until the term ends."""
        state = ClusterState(self.settings)
        saved = await self.etcd.get(self.state_key)
        if saved is not None:
            restore(state, json.loads(saved.value), origin="etcd")
        state.epoch = term.epoch
        log.info(
            "leading cluster %s (epoch %d, %d nodes)",
            state.cluster_id,
            term.epoch,
            len(state.registry),
        )
        backend = EtcdBackend(self.etcd, self.state_key, self.leader_key, term.epoch)
        async with open_services(
            state,
            backend,
            stopping=self._stopping,
            epoch=term.epoch,
            on_lost=term.end,
            info=self.info,
        ) as services:
            # Saved at once: a new cluster's id, and this term's epoch, which tells
            # followers that the node statuses saved by the previous leader are stale.
            await services.persister.flush()
            app = create_coordinator_app(services)
            install_openapi(app, "Torua coordinator", __version__, COORDINATOR_DOCS)
            self.services, self._leading = services, (term, app)
            try:
                await trio.sleep_forever()
            finally:
                self.services, self._leading = None, None

    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        leading = self._leading
        if leading is not None and leading[0].valid():
            await self._as_leader(*leading, scope, receive, send)
            return
        try:
            await self._as_follower(scope, receive, send)
        except ApiError as err:
            await self._respond.error(send, err)

    async def _as_leader(
        self, term: Term, app: Any, scope: dict[str, Any], receive: Any, send: Any
    ) -> None:
        started = False

        with term.guard() as guard:

            async def guarded_send(message: dict[str, Any]) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    if not term.valid():
                        # The lease may have lapsed: acknowledge nothing from now on.
                        guard.cancel()
                        await trio.lowlevel.checkpoint()
                    started = True
                await send(message)

            await app(scope, receive, guarded_send)
        if guard.cancelled_caught and not started:
            await self._respond.error(
                send,
                Unavailable(
                    "this coordinator's leadership ended while the request ran; "
                    "its outcome is unknown: retry",
                    code="not_leader",
                ),
            )

    async def _as_follower(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        method, path = scope["method"], scope["path"]
        if path == "/health" and method == "GET":
            body = json.dumps({"status": "ok", "role": "follower"}).encode()
            await self._respond.send(send, 200, body, content_type=b"application/json")
            return
        if SavedViews.serves(method, path):
            if (denied := token_error(scope, self.settings.token)) is not None:
                raise denied
            body = json.dumps(await self._views.render(path)).encode()
            await self._respond.send(send, 200, body, content_type=b"application/json")
            return
        leader = None if self.election is None else self.election.leader
        if leader == self.url:
            leader = None  # a term of ours that just ended: nobody to forward to yet
        if self._forward is None:
            raise Unavailable("starting up", code="no_leader")
        changed = None if self.election is None else self.election.changed
        await self._forward(leader, scope, receive, send, leader_changed=changed)


async def _lifespan(receive: Any, send: Any) -> None:
    """Startup and shutdown need nothing here: the nursery owns the services."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
