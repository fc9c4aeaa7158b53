"""The cluster token check (SPEC §7), shared by coordinator and nodes.

With ``TORUA_TOKEN`` set every route but ``GET /health`` needs it, as a bearer
token or, for the dashboard in a browser, a ``torua_token`` cookie. The token
is compared in constant time and never logged. A browser asking for a page
without the right token gets, with the same 401/403, a small sign-in form
that stores the typed token as that cookie and reloads.
"""

from __future__ import annotations

import hmac
from urllib.parse import unquote

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
            cookie = request.cookies.get("torua_token")
            offered = None if cookie is None else unquote(cookie)  # the form percent-encodes
        if offered is None:
            if _wants_page():
                return _sign_in(401, "This cluster needs its token (TORUA_TOKEN).")
            return json_error(401, "unauthorized", "this cluster needs its token (TORUA_TOKEN)")
        if not hmac.compare_digest(offered.encode(), expected):
            if _wants_page():
                return _sign_in(403, "That token is not this cluster's token.")
            return json_error(403, "forbidden", "the token given is not this cluster's token")
        return None


def _wants_page() -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


_SIGN_IN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Torua: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<style>body{font:15px system-ui,sans-serif;max-width:26em;margin:12vh auto;padding:0 1em}
input,button{font:inherit;padding:.4em .6em}input{width:100%;margin:.4em 0 .8em}
.note{color:#b42318}</style></head><body>
<h1>Torua</h1><p class="note" role="alert">{message}</p>
<form id="sign-in"><label for="token">Cluster token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button></form>
<script>
document.getElementById("sign-in").addEventListener("submit", function (event) {
  event.preventDefault();
  var token = document.getElementById("token").value;
  document.cookie = "torua_token=" + encodeURIComponent(token) + "; path=/; SameSite=Strict";
  location.reload();
});
</script></body></html>
"""


def _sign_in(status: int, message: str) -> Response:
    page = _SIGN_IN.replace("{message}", message)
    return Response(
        page,
        status=status,
        content_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )
