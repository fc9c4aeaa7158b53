"""The leading term's data route under the native server (torua.ha.native_data).

A data request is claimed only while the term is valid, runs inside the
term's guard, and an answer the term did not outlive is 503 not_leader,
as in the HA dispatcher; metrics and errors count into the term's app.
"""

from __future__ import annotations

import trio

from torua.errors import NotFound, Unavailable
from torua.ha.native_data import LeaderData, NativeAware
from torua.ha.term import Term
from torua.http.errors import ERROR_HOOK
from torua.http.exchange import Reply, Request
from torua.http.metrics import REQUEST_METRICS_KEY
from torua.http.quart_exchange import DATA_ROUTES_KEY, data_routes_of


class _Route:
    template = "/data/<path:key>"

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.release = trio.Event()

    def match(self, method: str, path: str) -> str | None:
        return path[6:] if path.startswith("/data/") else None

    async def handle(self, request: Request, matched: object) -> Reply:
        if matched == "missing":
            raise NotFound("no key", code="key_not_found")
        if matched == "slow":
            self.entered.set()
            await self.release.wait()
        return Reply(200, b"v")


class _Meter:
    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def observe(self, *args: object) -> None:
        self.seen.append(args)


class _App:
    def __init__(self, route: _Route, meter: _Meter, errors: list[str]) -> None:
        self.extensions = {
            DATA_ROUTES_KEY: (route,),
            REQUEST_METRICS_KEY: meter,
            ERROR_HOOK: errors.append,
        }


class _Request:
    method = "GET"
    path = "/data/k"

    def header(self, name: bytes) -> bytes | None:
        return None

    async def body(self, limit: int, what: str) -> bytes:
        return b""


async def test_claimed_only_while_a_valid_term_leads_and_counted_in_its_app() -> None:
    route, meter, errors = _Route(), _Meter(), []
    leading: list[tuple[Term, _App] | None] = [None]
    data = LeaderData(lambda: leading[0])
    assert data.match("GET", "/data/k") is None  # a follower: forwarded through the bridge
    term = Term(1, trio.current_time() + 60)
    leading[0] = (term, _App(route, meter, errors))
    matched = data.match("GET", "/data/k")
    assert matched is not None
    assert (await data.handle(_Request(), matched)).status == 200
    missing = await data.handle(_Request(), data.match("GET", "/data/missing"))
    assert (missing.status, missing.error_code) == (404, "key_not_found")
    data.observe("GET", data.template, 200, 0.001, 0, 1)
    data.count_error("key_not_found")
    assert meter.seen and errors == ["key_not_found"]
    term.end()
    assert data.match("GET", "/data/k") is None


async def test_an_answer_the_term_did_not_outlive_is_503_not_leader() -> None:
    route = _Route()
    term = Term(1, trio.current_time() + 60)
    data = LeaderData(lambda: (term, _App(route, _Meter(), [])))
    matched = data.match("GET", "/data/slow")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(route.entered.wait)
        outcome: list[BaseException] = []

        async def call() -> None:
            try:
                await data.handle(_Request(), matched)
            except Unavailable as exc:
                outcome.append(exc)

        nursery.start_soon(call)
        await route.entered.wait()
        term.end()  # the lease is lost while the read runs
    assert [e.code for e in outcome] == ["not_leader"]  # type: ignore[attr-defined]


async def test_the_dispatcher_wrapper_offers_the_route_and_passes_asgi_through() -> None:
    seen: list[str] = []

    async def asgi(scope: dict, receive: object, send: object) -> None:
        seen.append(scope["type"])

    data = LeaderData(lambda: None)
    app = NativeAware(asgi, data)
    assert data_routes_of(app) == (data,)
    await app({"type": "http"}, None, None)
    assert seen == ["http"]
