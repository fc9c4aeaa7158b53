"""The pieces both clients build requests and read answers with.

httpx carries the bytes for both: ``httpx.Client`` for the sync client and
``httpx.AsyncClient`` (which runs on Trio) for the async one, so the two share
the same connection pooling, timeouts, proxies and TLS settings, and a user's
``transport=`` (``httpx.MockTransport`` in their tests) works with either. The
project's own Trio transport (``torua.http.wire``) is tuned for coordinator to
node traffic and has no sync side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from torua import __version__
from torua.client.errors import (
    ResponseError,
    Timeout,
    TransportError,
    Unreachable,
    error_from_answer,
)
from torua.client.retry import Failure

__all__ = [
    "DEFAULT_URL",
    "IDEMPOTENT",
    "answer_error",
    "client_headers",
    "coordinator_urls",
    "transport_failure",
]

DEFAULT_URL = "http://127.0.0.1:8080"
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def coordinator_urls(urls: str | Sequence[str]) -> list[str]:
    """Each URL checked and without its trailing ``/``; a str may list several with commas.

    ``127.0.0.1:8080`` gets ``http://`` in front, as people type it.
    """
    items = urls.split(",") if isinstance(urls, str) else list(urls)
    found: list[str] = []
    for item in items:
        text = item.strip().rstrip("/")
        if not text:
            continue
        if "://" not in text:
            text = "http://" + text
        try:
            parsed = httpx.URL(text)
        except (httpx.InvalidURL, ValueError) as exc:
            raise ValueError(f"bad coordinator URL {text!r}: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"bad coordinator URL {text!r}: use http://host:port")
        found.append(text)
    if not found:
        raise ValueError("give at least one coordinator URL")
    return found


def client_headers(
    token: str | None, user_agent: str | None, extra: Mapping[str, str] | None
) -> dict[str, str]:
    headers = {"User-Agent": user_agent or f"torua-client/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(extra or {})
    return headers


def answer_error(response: httpx.Response, url: str) -> ResponseError:
    return error_from_answer(
        response.status_code,
        response.content,
        reason=response.reason_phrase,
        url=url,
        retry_after=response.headers.get("retry-after"),
    )


def transport_failure(exc: httpx.TransportError, url: str) -> tuple[Failure, TransportError]:
    """Whether the request may have reached the server, and the error to raise if final."""
    reason = str(exc) or type(exc).__name__
    not_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    failure = Failure.NOT_SENT if not_sent else Failure.MAYBE_SENT
    if isinstance(exc, httpx.TimeoutException):
        return failure, Timeout(f"{url} did not answer in time ({reason})", url=url, reason=reason)
    return failure, Unreachable(f"cannot reach {url}: {reason}", url=url, reason=reason)


def request_options(
    content: bytes | None, json: Any, params: Mapping[str, str] | None
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if content is not None:
        options["content"] = content
    if json is not None:
        options["json"] = json
    if params:
        options["params"] = params
    return options
