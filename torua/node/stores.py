"""Pick the node's store from its settings: durable by default, memory on request.

Kept apart from :mod:`torua.node.store` so the interface module never imports
SQLite, and apart from the service so tests and tools open the same store a
node would.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from torua.config import NodeSettings
from torua.node.sqlite_store import open_sqlite_store
from torua.node.store import MemoryStore, Store

__all__ = ["open_store", "store_directory"]


def store_directory(settings: NodeSettings) -> str:
    """``<data_dir>/<node_id>``: one directory per node, so nodes can share a data dir."""
    return os.path.join(settings.data_dir, settings.node_id)


@asynccontextmanager
async def open_store(settings: NodeSettings) -> AsyncIterator[Store]:
    """The store a node with these settings uses, closed (writer joined) on exit."""
    if settings.memory:
        store = MemoryStore()
        try:
            yield store
        finally:
            await store.close()
        return
    async with open_sqlite_store(store_directory(settings)) as durable:
        yield durable
