"""The coordinator's HTTP app: thin handlers over the services, one module per
group of routes.

Handlers validate, call one service method, and render a view; every rule
lives in the services, so the API never holds state of its own.
"""

from __future__ import annotations

from pathlib import Path

from quart_trio import QuartTrio

from torua.coordinator.api.cluster import install_cluster_routes
from torua.coordinator.api.data import install_data_api
from torua.coordinator.api.events import install_event_routes
from torua.coordinator.api.load import install_load_routes
from torua.coordinator.api.metrics import install_coordinator_metrics
from torua.coordinator.api.nodes import install_node_routes
from torua.coordinator.api.operations import install_operation_routes
from torua.coordinator.api.services import Services
from torua.coordinator.api.shards import install_shard_routes
from torua.http.auth import install_token_check
from torua.http.errors import install_error_handlers

__all__ = ["create_coordinator_app"]


def create_coordinator_app(services: Services) -> QuartTrio:
    s = services
    state = s.state
    # The dashboard's files sit beside this module: Quart's static route serves them.
    app = QuartTrio("torua.coordinator", static_folder=str(Path(__file__).parent / "static"))
    app.config["MAX_CONTENT_LENGTH"] = None  # read_limited enforces limits per route
    install_error_handlers(app)
    install_token_check(app, state.settings.token)
    install_data_api(app, s)  # before the metrics wrapper, which counts its requests too
    install_coordinator_metrics(app, state, s.monitor, s.mover, s.metrics)
    install_cluster_routes(app, s)
    install_node_routes(app, s)
    install_shard_routes(app, s)
    install_operation_routes(app, s, s.operations)
    install_event_routes(app, s)  # GET /events (SSE) and GET / (the dashboard)
    install_load_routes(app, s)  # GET /load, GET /dashboard/plots.js
    return app
