"""Torua's exceptions, one tree with one root.

    ToruaError
    ├── ConfigError          a bad setting; the process prints it and exits 2
    └── ApiError             becomes a JSON error response {"error", "message"}
        ├── BadRequest       400
        ├── NotFound         404
        ├── Conflict         409
        ├── TooLarge         413
        ├── BadGateway       502 a node failed mid-request
        └── Unavailable      503 no copy can serve; carries Retry-After

Raised and caught inside the services, defined next to the code that raises
them (each converts to an :class:`ApiError` or a log line at its boundary):

    ToruaError
    ├── PlacementError       torua.cluster.placement: a placement the table refuses
    │                        (also a ValueError: UnknownShard, UnknownNode, PlacementConflict)
    ├── WireError            torua.http.wire: a node's answer broke HTTP/1.1
    ├── NodeUnreachable      torua.coordinator.nodes.client: no answer from a node
    ├── StaleVersion         torua.coordinator.data.router: a copy holds a newer version
    ├── MoveAborted          torua.coordinator.data.page_copy: a page copy gave up
    ├── EtcdUnavailable      torua.ha.etcd: etcd did not answer (also an OSError)
    ├── RollingRestartFailed torua.rolling: a node did not come back green
    └── CommandError         torua.cli.common: a CLI command's failure and exit status

The Python client's errors (:mod:`torua.client.errors`) hang from the same root.
Expected failures inside services (a failed probe) are values, not exceptions.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "BadGateway",
    "BadRequest",
    "ConfigError",
    "Conflict",
    "NotFound",
    "TooLarge",
    "ToruaError",
    "Unavailable",
]


class ToruaError(Exception):
    """Root of every error Torua raises on purpose."""


class ConfigError(ToruaError):
    """A setting that cannot be used; ``str(err)`` is the one line to print."""


class ApiError(ToruaError):
    status = 500
    code = "internal"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class TooLarge(ApiError):
    status = 413
    code = "too_large"


class BadGateway(ApiError):
    status = 502
    code = "node_failed"


class Unavailable(ApiError):
    status = 503
    code = "unavailable"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
