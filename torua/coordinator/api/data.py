"""The client data routes: ``/data/{key}`` and the bulk API.

Single keys take the raw-ASGI fast path (:class:`DataApi`, also run by the
native server); the Quart routes here answer the same way for requests that
reach the app, so every server gives the same answers.
"""

from __future__ import annotations

from quart import Quart, Response, jsonify

from torua.coordinator.api.data_route import DataApi, checked_key
from torua.coordinator.api.services import Services
from torua.coordinator.data.bulk import BulkBody, run_bulk
from torua.http.quart_exchange import QuartRequest, install_data_routes, quart_reply
from torua.http.validate import parse_body
from torua.limits import BULK_BODY_BYTES

__all__ = ["install_data_api"]


def install_data_api(app: Quart, s: Services) -> None:
    state = s.state
    data_api = DataApi(s.router, token=state.settings.token, max_value=state.settings.max_value)
    # The client data path skips Quart (native server, or raw ASGI inside the metrics wrapper).
    install_data_routes(app, data_api)

    async def data_reply(key: str) -> Response:
        return quart_reply(await data_api.handle(QuartRequest(), key))

    app.route("/data/<path:key>", methods=["GET", "PUT", "DELETE"])(data_reply)

    @app.post("/data/_bulk")
    async def bulk() -> Response:
        body = await parse_body(BulkBody, max_bytes=BULK_BODY_BYTES)
        return jsonify({"results": await run_bulk(state, s.router, s.nodes, body)})

    @app.route("/data/", methods=["GET", "PUT", "DELETE"])
    @app.route("/data", methods=["GET", "PUT", "DELETE"])
    async def empty_key() -> Response:
        checked_key("")  # the data route's own rule, and its message
        raise AssertionError("checked_key refuses an empty key")
