"""What :class:`~torua.Client` and :class:`~torua.AsyncClient` raise, one tree.

    ToruaError                   (torua.errors: the root of everything Torua raises)
    └── ClientError              anything a client call raises on purpose
        ├── TransportError       no answer from any coordinator URL
        │   ├── Unreachable      could not connect, or the connection broke
        │   └── Timeout          no answer within the request's timeout
        ├── ResponseError        an error answer: .status, .code, .message
        │   ├── BadRequest       400
        │   │   └── InvalidKey   400 invalid_key (also raised before sending)
        │   ├── Unauthorized     401 no token given
        │   ├── Forbidden        403 the wrong token
        │   ├── NotFound         404 (a missing key: code key_not_found)
        │   ├── Conflict         409
        │   ├── TooLarge         413
        │   ├── BadGateway       502 a node failed mid-request
        │   └── Unavailable      503 no copy can serve; .retry_after
        │       └── NoLeader     503 no_leader / not_leader (a leader election)
        ├── BulkError            some operations of a bulk call failed: .errors
        └── ProtocolError        an answer that is not what the route promises

``code`` is the server's JSON ``error`` field ("" when the answer had none),
``message`` its sentence, so a program can branch on the class and a person can
read the message. The client's classes are separate from the server's
(``torua.errors.NotFound`` is what a handler raises to *answer* 404): the two
sides share the root only, so ``except ToruaError`` catches both.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from torua.errors import ToruaError

__all__ = [
    "BadGateway",
    "BadRequest",
    "BulkError",
    "ClientError",
    "Conflict",
    "Forbidden",
    "InvalidKey",
    "NoLeader",
    "NotFound",
    "ProtocolError",
    "ResponseError",
    "Timeout",
    "TooLarge",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "Unreachable",
    "error_from_answer",
    "parse_retry_after",
]

LEADER_CODES = frozenset({"no_leader", "not_leader"})
"""503 codes of a coordinator that cannot serve because of a leader election: another
coordinator URL may answer, so the client tries the next one first."""


class ClientError(ToruaError):
    """Root of what the Python client raises."""


class TransportError(ClientError):
    """No coordinator answered; ``url`` is the last one tried, ``reason`` what went wrong."""

    def __init__(self, message: str, *, url: str, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.reason = reason or message


class Unreachable(TransportError):
    """The connection could not be made, or broke before an answer came."""


class Timeout(TransportError):
    """The coordinator took longer than the request's timeout to answer."""


class ResponseError(ClientError):
    """The coordinator answered with an error status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        url: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{message} (HTTP {status}{' ' + code if code else ''})")
        self.status = status
        self.code = code
        self.message = message
        self.url = url
        self.retry_after = retry_after


class BadRequest(ResponseError):
    """400: the request is malformed; sending it again cannot help."""


class InvalidKey(BadRequest):
    """A key that is empty or over 1,024 bytes of UTF-8."""


class Unauthorized(ResponseError):
    """401: the cluster needs its token (``TORUA_TOKEN``) and none was given."""


class Forbidden(ResponseError):
    """403: the token given is not the cluster's."""


class NotFound(ResponseError):
    """404: no such key, node or shard."""


class Conflict(ResponseError):
    """409: the cluster's state does not allow this now."""


class TooLarge(ResponseError):
    """413: a value over the cluster's ``TORUA_MAX_VALUE``, or a body over a limit."""


class BadGateway(ResponseError):
    """502: a node failed while the coordinator waited on it; the outcome is unknown."""


class Unavailable(ResponseError):
    """503: nothing can serve this now; the client already retried within its budget."""


class NoLeader(Unavailable):
    """503 while the coordinators elect a leader; no URL given was the leader in time."""


class BulkError(ClientError):
    """Some operations of a bulk call failed; ``errors`` maps each failed key to its error.

    The other operations took effect (puts and deletes) or were read.
    """

    def __init__(self, errors: Mapping[str, ResponseError]) -> None:
        first_key, first = next(iter(errors.items()))
        more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
        super().__init__(f"{first_key!r}: {first}{more}")
        self.errors = dict(errors)


class ProtocolError(ClientError):
    """A successful answer whose body is not what the route promises (a proxy's page,
    a different service on that port)."""


_BY_STATUS: dict[int, type[ResponseError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    502: BadGateway,
    503: Unavailable,
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header; None when absent or not a number of seconds."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: the client's own backoff decides instead
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def error_from_answer(
    status: int,
    body: bytes,
    *,
    reason: str = "",
    url: str = "",
    retry_after: str | None = None,
) -> ResponseError:
    """The typed error for an error answer, from its JSON ``{"error", "message"}`` body."""
    code = ""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        code = str(data.get("error") or "")
        message = str(data.get("message") or code)
    else:
        message = body[:200].decode("utf-8", "replace")
    message = message or reason or "request failed"
    kind = _BY_STATUS.get(status, ResponseError)
    if status == 400 and code == "invalid_key":
        kind = InvalidKey
    elif status == 503 and code in LEADER_CODES:
        kind = NoLeader
    return kind(status, code, message, url=url, retry_after=parse_retry_after(retry_after))
