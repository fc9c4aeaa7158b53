"""Prometheus metrics every Torua app serves: requests, errors, bytes, the process.

``GET /metrics`` on the coordinator and on every node. This module
holds what both share; ``torua.coordinator.api.metrics`` and ``torua.node.metrics``
add collectors computed from their live state at scrape time.

Why a registry per app, never prometheus_client's global ``REGISTRY``: tests
run a coordinator and several nodes in one process, and one global registry
would mix their series (or refuse the second app's metrics as duplicates). The
app keeps its registry in ``app.extensions["torua_metrics"]``.

Why an ASGI wrapper (on ``app.asgi_app``) rather than before/after_request
hooks alone: a before_request hook does not run when an earlier one answers
(the token check's 401), and only the ASGI layer sees the bytes really read
and sent, streamed responses included. The one thing it cannot see, the route,
an after_request hook writes into the ASGI scope: the rule *template*
(``/data/<path:key>``), never the raw path, so no label value comes from the
client. A scan of random paths adds one ``unmatched`` series, and a made-up
method is ``other``: the number of series stays bounded.

Latency is observed when the response starts (status and headers sent): for
an ordinary response that is the whole handler, and a stream (``GET /events``)
counts its time to first byte rather than its lifetime.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from quart import Quart, Response, request

from torua.http.errors import ERROR_HOOK

__all__ = [
    "LATENCY_BUCKETS",
    "METRICS_KEY",
    "REQUEST_METRICS_KEY",
    "ROUTE_SCOPE_KEY",
    "UNMATCHED",
    "RequestMetrics",
    "install_metrics",
    "install_request_metrics",
    "metrics_route",
    "new_registry",
]

METRICS_KEY = "torua_metrics"
"""``app.extensions`` key holding the app's :class:`CollectorRegistry`."""

REQUEST_METRICS_KEY = "torua_request_metrics"
"""``app.extensions`` key holding the app's :class:`RequestMetrics` (the native server's meter)."""

UNMATCHED = "unmatched"
"""The route label of a request no route matched (404, 405)."""

ROUTE_SCOPE_KEY = "torua.route"
"""ASGI scope key for the route template; a raw ASGI handler inside the wrapper sets it too."""

LATENCY_BUCKETS = (5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
"""Seconds; sub-millisecond at the bottom because a loopback GET takes about that."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def new_registry() -> CollectorRegistry:
    """An empty registry with the process collector (memory, CPU, open files)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    return registry


class RequestMetrics:
    """The HTTP metrics of one app, and the per-request bookkeeping."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            "torua_http_request_duration_seconds",
            "Time from request to response start, by method, route template and status class",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.bytes_in = Counter(
            "torua_http_request_bytes",
            "Request body bytes read, by route template",
            ["route"],
            registry=registry,
        )
        self.bytes_out = Counter(
            "torua_http_response_bytes",
            "Response body bytes sent, by route template",
            ["route"],
            registry=registry,
        )
        self.errors = Counter(
            "torua_http_errors",
            'JSON error responses, by their "error" code',
            ["code"],
            registry=registry,
        )

        self._timers: dict[tuple[str, str, int], Any] = {}
        self._ins: dict[str, Any] = {}
        self._outs: dict[str, Any] = {}

    def timer(self, method: str, route: str, status: int) -> Any:
        """The latency child of these labels; cached (``labels()`` locks on every call)."""
        key = (method if method in _METHODS else "other", route, status // 100)
        child = self._timers.get(key)
        if child is None:
            child = self._timers[key] = self.latency.labels(key[0], route, f"{key[2]}xx")
        return child

    def count_in(self, route: str, size: int) -> None:
        child = self._ins.get(route)
        if child is None:
            child = self._ins[route] = self.bytes_in.labels(route)
        child.inc(size)

    def count_out(self, route: str, size: int) -> None:
        child = self._outs.get(route)
        if child is None:
            child = self._outs[route] = self.bytes_out.labels(route)
        child.inc(size)

    def observe(
        self, method: str, route: str, status: int, elapsed: float, received: int, sent: int
    ) -> None:
        """One request answered outside the ASGI wrapper (the native server's data routes)."""
        self.timer(method, route, status).observe(elapsed)
        if received:
            self.count_in(route, received)
        if sent:
            self.count_out(route, sent)

    def count_error(self, code: str) -> None:
        """``json_error``'s hook: codes are literals in the code, so their number is bounded."""
        self.errors.labels(code).inc()

    def wrap(self, app: Any) -> Callable[[Any, Any, Any], Any]:
        """An ASGI app that measures ``app``'s HTTP requests.

        Label children are cached per label tuple (:meth:`timer`): ``labels()``
        validates and locks on every call, which was half of this wrapper's
        cost. The keys are the bounded label values, so the caches stay as
        small as the series.
        """

        async def metered(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = perf_counter()
            received = sent = 0

            async def counting_receive() -> Any:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                return message

            async def counting_send(message: Any) -> None:
                nonlocal sent
                kind = message["type"]
                if kind == "http.response.body":
                    sent += len(message.get("body", b""))
                elif kind == "http.response.start":
                    route = scope.get(ROUTE_SCOPE_KEY, UNMATCHED)
                    elapsed = perf_counter() - started
                    self.timer(scope["method"], route, message["status"]).observe(elapsed)
                await send(message)

            try:
                await app(scope, counting_receive, counting_send)
            finally:
                route = scope.get(ROUTE_SCOPE_KEY, UNMATCHED)
                if received:
                    self.count_in(route, received)
                if sent:
                    self.count_out(route, sent)

        return metered


def install_request_metrics(app: Quart, registry: CollectorRegistry) -> RequestMetrics:
    """Measure every HTTP request of ``app`` and count its JSON errors into ``registry``."""
    metrics = RequestMetrics(registry)
    app.asgi_app = metrics.wrap(app.asgi_app)  # type: ignore[method-assign, assignment]
    app.extensions[ERROR_HOOK] = metrics.count_error
    app.extensions[REQUEST_METRICS_KEY] = metrics

    @app.after_request
    async def _note_route(response: Response) -> Response:
        # Runs for handled errors and early answers (401) too; routing has run by now.
        rule = request.url_rule
        scope: dict[str, Any] = request.scope  # type: ignore[assignment]  # ASGI allows extra keys
        scope[ROUTE_SCOPE_KEY] = rule.rule if rule is not None else UNMATCHED
        return response

    return metrics


def metrics_route(
    app: Quart, registry: CollectorRegistry, collect: Callable[[], None] | None = None
) -> None:
    """Serve ``GET /metrics``; ``collect`` (if given) refreshes anything kept by hand first.

    The format follows the scraper's ``Accept`` header as prometheus_client's
    own exporters do: the classic text format (0.0.4) by default, OpenMetrics
    when asked for.
    """

    @app.get("/metrics")
    async def torua_metrics() -> Response:
        if collect is not None:
            collect()
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(encode(registry), status=200, content_type=content_type)


def install_metrics(
    app: Quart, *collectors: Collector, registry: CollectorRegistry | None = None
) -> CollectorRegistry:
    """Everything an app factory needs: request metrics, ``collectors``, ``GET /metrics``.

    ``registry`` lets a service create the registry before the app, for
    metrics its own components update (the coordinator's probe results).
    """
    registry = registry if registry is not None else new_registry()
    for collector in collectors:
        registry.register(collector)
    install_request_metrics(app, registry)
    metrics_route(app, registry)
    app.extensions[METRICS_KEY] = registry
    return registry
