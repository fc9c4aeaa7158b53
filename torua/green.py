"""When a cluster counts as green: one definition for rolling restarts, the
bench and the tests, so "wait until green" means the same everywhere.

Green is more than ``cluster_state == "green"``: a shard can be green in that
sense while a copy is still being relocated, so every shard must also be
``active``: nothing filling, handing over or waiting to merge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from torua.cluster.states import ClusterHealth, ShardState

__all__ = ["cluster_green", "is_green"]


def is_green(info: Mapping[str, Any], shards: Iterable[Mapping[str, Any]]) -> bool:
    """Green from the answers of ``GET /cluster/info`` and ``GET /shards`` (its list)."""
    return info.get("cluster_state") == ClusterHealth.GREEN and all(
        shard.get("state") == ShardState.ACTIVE for shard in shards
    )


async def cluster_green(http: httpx.AsyncClient) -> bool:
    """Ask the coordinator ``http`` points at (base URL and token set) whether it is green."""
    info = (await http.get("/cluster/info")).json()
    shards = (await http.get("/shards")).json()["shards"]
    return is_green(info, shards)
