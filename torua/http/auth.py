"""The cluster token check, shared by coordinator and nodes.

With ``TORUA_TOKEN`` set every route but ``GET /health`` needs it, as a bearer
token or, for the dashboard in a browser, a ``torua_token`` cookie. The token
is compared in constant time and never logged. A browser asking for a page
without the right token gets, with the same 401/403, a small sign-in form
that stores the typed token as that cookie and reloads.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from http.cookies import SimpleCookie
from urllib.parse import unquote

from quart import Quart, Response, request

from torua.errors import ApiError
from torua.http.errors import json_error

__all__ = ["install_token_check", "token_error"]


def token_error(header: Callable[[bytes], bytes | None], token: str | None) -> ApiError | None:
    """The token rule for every route: bearer token or ``torua_token`` cookie.

    None when the request may pass; a 401 without a token, a 403 with a wrong
    one. ``header`` looks a header up by its lower-case name, so the native
    server, the raw ASGI path and Quart all apply this one function.
    """
    if not token:
        return None
    offered: str | None = None
    auth = header(b"authorization")
    if auth is not None and auth[:7].lower() == b"bearer ":
        offered = auth[7:].decode("latin-1")
    else:
        cookie = header(b"cookie")
        if cookie is not None:
            try:
                morsel = SimpleCookie(cookie.decode("latin-1")).get("torua_token")
            except Exception:  # a malformed cookie header offers no token
                morsel = None
            offered = None if morsel is None else unquote(morsel.value)  # the form encodes it
    if offered is None:
        error = ApiError("this cluster needs its token (TORUA_TOKEN)", code="unauthorized")
        error.status = 401
        return error
    if not hmac.compare_digest(offered.encode("utf-8", "surrogateescape"), token.encode()):
        error = ApiError("the token given is not this cluster's token", code="forbidden")
        error.status = 403
        return error
    return None


def _quart_header(name: bytes) -> bytes | None:
    value = request.headers.get(name.decode("latin-1"))
    return None if value is None else value.encode("latin-1", "replace")


def install_token_check(app: Quart, token: str | None) -> None:
    if not token:
        return

    @app.before_request
    async def _check_token() -> Response | None:
        if request.method == "GET" and request.path == "/health":
            return None
        denied = token_error(_quart_header, token)
        if denied is None:
            return None
        if _wants_page():
            if denied.status == 401:
                return _sign_in(401, "This cluster needs its token (TORUA_TOKEN).")
            return _sign_in(403, "That token is not this cluster's token.")
        return json_error(denied.status, denied.code, denied.message)


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
