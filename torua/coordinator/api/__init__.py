"""The coordinator's HTTP layer: the Quart app and its route modules, the raw
data route, the JSON views, the metrics, the event stream and the dashboard.

It owns nothing but the translation between HTTP and the services: handlers
parse and validate, call one service, and render a view. It may import every
other part of the coordinator (control, data, nodes, state) and
``torua.http``; nothing below it imports it, so a service never depends on
how it is served. :class:`~torua.coordinator.api.services.Services` is what
the routes are handed.
"""
