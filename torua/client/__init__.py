"""The Python client of a Torua cluster: :class:`Client` (blocking) and
:class:`AsyncClient` (Trio), with the same calls and the same errors.

Modules, each one idea:

* ``errors``  the exception tree (one root, the server's JSON code on each)
* ``retry``   when to try again, where, and after how long (no I/O)
* ``shape``   keys, values and bulk bodies on the wire
* ``base``    URLs, headers and answers, for both clients
* ``sync``    :class:`Client` on ``httpx.Client``
* ``aio``     :class:`AsyncClient` on ``httpx.AsyncClient`` under Trio
"""

from __future__ import annotations

from torua.client.aio import AsyncClient
from torua.client.errors import (
    BadGateway,
    BadRequest,
    BulkError,
    ClientError,
    Conflict,
    Forbidden,
    InvalidKey,
    NoLeader,
    NotFound,
    ProtocolError,
    ResponseError,
    Timeout,
    TooLarge,
    TransportError,
    Unauthorized,
    Unavailable,
    Unreachable,
)
from torua.client.retry import Retry
from torua.client.shape import Op, Result
from torua.client.sync import Client

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
    "Result",
    "ResponseError",
    "Retry",
    "Timeout",
    "TooLarge",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "Unreachable",
]
