"""Followers answer the read-only state routes from the state saved in etcd.

The leader saves the cluster state (nodes, shard table, in-sync sets, config,
and each node's health status) whenever it changes, so a follower renders
the same JSON views the leader does without calling the leader: reads of the
cluster's shape keep working while an election is under way. What a
follower cannot know is per-probe detail (the time of the last probe, the
failure streak): those show as ``null`` and ``0``. Node statuses are shown
only when the leader that saved them still leads: after a failover every
node is ``unknown`` on the followers until the new leader has probed it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from torua.cluster.states import NodeStatus
from torua.config import CoordinatorSettings
from torua.coordinator.api.views import cluster_info, node_info, node_view, shards_view
from torua.coordinator.control.health import NodeHealth
from torua.coordinator.control.live_config import config_view
from torua.coordinator.state.persistence import restore
from torua.coordinator.state.state import ClusterState
from torua.errors import NotFound, Unavailable
from torua.ha.election import StateStore
from torua.ha.etcd import EtcdUnavailable

__all__ = ["SavedViews"]

_NODE_INFO = re.compile(r"^/nodes/([^/]+)/info$")
ROUTES = ("/cluster/info", "/nodes", "/shards", "/cluster/config")


class SavedHealth:
    """The health lookup the views expect, filled from saved statuses."""

    def __init__(self, statuses: dict[str, str]) -> None:
        self._health: dict[str, NodeHealth] = {}
        for node_id, status in statuses.items():
            health = NodeHealth(1)
            health.status = NodeStatus(status)
            self._health[node_id] = health

    def health(self, node_id: str) -> NodeHealth:
        return self._health[node_id]


class SavedViews:
    def __init__(
        self,
        settings: CoordinatorSettings,
        etcd: StateStore,
        state_key: str,
        info: Callable[[], dict[str, Any]],
        leader_epoch: Callable[[], int | None],
    ) -> None:
        self._settings = settings
        self._etcd = etcd
        self._key = state_key
        self._info = info
        self._leader_epoch = leader_epoch

    @staticmethod
    def serves(method: str, path: str) -> bool:
        return method == "GET" and (path in ROUTES or _NODE_INFO.match(path) is not None)

    async def _state(self) -> tuple[ClusterState, SavedHealth]:
        try:
            saved = await self._etcd.get(self._key)
        except EtcdUnavailable as exc:
            raise Unavailable(f"etcd did not answer ({exc})", code="etcd_unavailable") from None
        if saved is None:
            raise Unavailable("no leader has saved a cluster state yet", code="no_leader")
        data = json.loads(saved.value)
        state = ClusterState(self._settings)
        restore(state, data, origin="etcd")
        statuses: dict[str, str] = {}
        if data.get("epoch") == self._leader_epoch():
            # Probed by the leader that leads now; a dead or new leader's are not news.
            statuses = {k: v for k, v in data.get("status", {}).items() if k in state.registry}
        state.health_status = statuses
        return state, SavedHealth(statuses)

    async def render(self, path: str) -> Any:
        """The JSON body for a state route; raises an ApiError for 4xx and 503."""
        state, health = await self._state()
        if path == "/cluster/info":
            return cluster_info(state, health) | self._info()
        if path == "/nodes":
            return {"nodes": [node_view(state, health, r) for r in state.registry.all()]}
        if path == "/shards":
            return shards_view(state)
        if path == "/cluster/config":
            return config_view(state)
        match = _NODE_INFO.match(path)
        assert match is not None
        record = state.registry.get(match.group(1))
        if record is None:
            raise NotFound(f"no node {match.group(1)!r}", code="node_not_found")
        return node_info(state, health, record)
