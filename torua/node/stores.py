"""Pick the node's store from its settings: durable by default, memory on request.

Kept apart from :mod:`torua.node.store` so the interface module never imports
SQLite, and apart from the service so tests and tools open the same store a
node would.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from torua.config import NodeSettings
from torua.node.sqlite_store import open_sqlite_store
from torua.node.store import MemoryStore, Store

__all__ = ["data_incarnation", "open_store", "store_directory"]


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
    cache_bytes = settings.read_cache_mb * 1024 * 1024
    async with open_sqlite_store(store_directory(settings), cache_bytes=cache_bytes) as durable:
        yield durable


def data_incarnation(directory: str) -> str:
    """The identity of the data in ``directory``, made once when it is created.

    A durable node reports it as its incarnation: a restart keeps it, so the
    coordinator keeps trusting the copies; a wiped or replaced data directory
    gets a new one, so its empty copies are refilled before anyone reads them.
    """
    path = os.path.join(directory, "incarnation")
    try:
        with open(path, encoding="ascii") as handle:
            known = handle.read().strip()
        if known:
            return known
    except FileNotFoundError:
        pass
    made = uuid.uuid4().hex
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as handle:
        handle.write(made)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return made
