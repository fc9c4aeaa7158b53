"""The cluster token check (SPEC §7), shared by coordinator and nodes.

With ``TORUA_TOKEN`` set every route but ``GET /health`` needs it, as a bearer
token or, for the dashboard in a browser, a ``torua_token`` cookie. The token
is compared in constant time and never logged.
"""

from __future__ import annotations

import hmac

from quart import Quart, Response, request

from torua.http.errors import json_error

__all__ = ["install_token_check"]


def install_token_check(app: Quart, token: str | None) -> None:
    if not token:
        return
    expected = token.encode()

    @app.before_request
    async def _check_token() -> Response | None:
        if request.method == "GET" and request.path == "/health":
            return None
        header = request.headers.get("Authorization", "")
        offered = header[7:] if header.lower().startswith("bearer ") else None
        if offered is None:
            offered = request.cookies.get("torua_token")
        if offered is None:
            return json_error(401, "unauthorized", "this cluster needs its token (TORUA_TOKEN)")
        if not hmac.compare_digest(offered.encode(), expected):
            return json_error(403, "forbidden", "the token given is not this cluster's token")
        return None
