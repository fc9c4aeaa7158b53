"""Torua: a distributed key-value cluster runtime on Trio.

Layers, imports pointing one way:

* ``torua.cluster``      pure, synchronous shard table and placement (no trio)
* ``torua.coordinator``  health monitor, redistributor, router, HTTP API, service
* ``torua.node``         store, HTTP API, registration, service
* ``torua.launcher``     ``python -m torua up``: a whole local cluster
* ``torua.client``       the Python client (``from torua import Client``)
* ``torua.__main__``     argv -> settings -> logging -> trio.run
"""

from __future__ import annotations

__version__ = "0.1.0"

from torua.client import (  # noqa: E402 (the client reads __version__ above)
    AsyncClient,
    BadGateway,
    BadRequest,
    BulkError,
    Client,
    ClientError,
    Conflict,
    Forbidden,
    InvalidKey,
    NoLeader,
    NotFound,
    Op,
    ProtocolError,
    ResponseError,
    Result,
    Retry,
    Timeout,
    TooLarge,
    TransportError,
    Unauthorized,
    Unavailable,
    Unreachable,
)
from torua.errors import ToruaError  # noqa: E402

__all__ = [
    "AsyncClient",
    "BadGateway",
    "BadRequest",
    "BulkError",
    "Client",
    "ClientError",
    "Conflict",
    "Forbidden",
    "InvalidKey",
    "NoLeader",
    "NotFound",
    "Op",
    "ProtocolError",
    "ResponseError",
    "Result",
    "Retry",
    "Timeout",
    "TooLarge",
    "ToruaError",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "Unreachable",
    "__version__",
]
