"""Every error leaves a Torua process as JSON ``{"error", "message"}``, never a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterable
from typing import Any

from quart import Quart, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from torua.errors import ApiError, BadRequest, TooLarge, Unavailable

__all__ = ["ERROR_HOOK", "install_error_handlers", "json_error", "read_json", "read_limited"]

log = logging.getLogger(__name__)

ERROR_HOOK = "torua_error_hook"
"""``app.extensions`` key of an optional ``hook(code)`` that sees every JSON error (metrics)."""

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
}


def json_error(status: int, code: str, message: str, **headers: str) -> Response:
    response = jsonify({"error": code, "message": message})
    response.status_code = status
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    hook = current_app.extensions.get(ERROR_HOOK)
    if hook is not None:
        hook(code)
    return response


def install_error_handlers(app: Quart) -> None:
    @app.errorhandler(ApiError)
    async def _api_error(err: ApiError) -> Response:
        headers = {"Retry_After": str(err.retry_after)} if isinstance(err, Unavailable) else {}
        return json_error(err.status, err.code, err.message, **headers)

    @app.errorhandler(HTTPException)
    async def _http_error(err: HTTPException) -> Response:
        status = err.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        if status == 404:
            message = f"no route {request.method} {request.path}"
        elif status == 405:
            message = f"method {request.method} is not allowed on {request.path}"
        elif status == 413:
            message = "request body is too large"
        else:
            message = err.description or code
        return json_error(status, code, message)

    @app.errorhandler(Exception)
    async def _unexpected(err: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal", "internal error; see the server log")


DRAIN_LIMIT = 64 * 1024 * 1024


async def collect_within(chunks: AsyncIterable[bytes], limit: int, what: str) -> bytes:
    """A body's pieces joined, or 413 once they pass ``limit`` bytes.

    An oversized body is read to its end (up to DRAIN_LIMIT) before the 413 is
    sent, because a client still writing its body never reads an early answer.
    Every server's body reading goes through here, so the rule is written once.
    """
    kept: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size <= limit:
            kept.append(chunk)
        elif size > DRAIN_LIMIT:
            break
    if size > limit:
        raise TooLarge(f"{what} are limited to {limit} bytes")
    return kept[0] if len(kept) == 1 else b"".join(kept)


async def read_limited(limit: int, what: str) -> bytes:
    """The Quart request's body, or 413 once it is known to exceed ``limit`` bytes."""
    length = request.content_length
    if length is not None and length > DRAIN_LIMIT:
        raise TooLarge(f"{what} are limited to {limit} bytes")
    return await collect_within(request.body, limit, what)


async def read_json(max_bytes: int = 1024 * 1024) -> dict[str, Any]:
    """The request's JSON object, or a 400/413 that names what is wrong."""
    raw = await read_limited(max_bytes, "JSON bodies")
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON: {exc}", code="malformed_json") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", code="malformed_json")
    return data
