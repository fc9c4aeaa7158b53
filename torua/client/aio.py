"""``torua.AsyncClient``: the same calls as :class:`torua.Client`, for Trio programs.

::

    import trio
    from torua import AsyncClient

    async def main() -> None:
        async with AsyncClient(["http://10.0.0.1:8080", "http://10.0.0.2:8080"]) as db:
            await db.put("greeting", "hello")
            print(await db.get("greeting"))

    trio.run(main)

It runs on ``httpx.AsyncClient``, which speaks Trio natively, and waits with
``trio.sleep`` on ``trio.current_time``, so retries run on a test's virtual
clock too. As usual in Trio, bound a call's total time with ``trio.fail_after``
around it; the per-request ``timeout`` is the constructor's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx
import trio

from torua.client.base import (
    DEFAULT_URL,
    IDEMPOTENT,
    answer_error,
    client_headers,
    coordinator_urls,
    request_options,
    transport_failure,
)
from torua.client.retry import Attempts, Endpoints, Failure, Retry, classify_status
from torua.client.shape import (
    Op,
    Result,
    Value,
    as_bytes,
    bulk_bodies,
    data_path,
    ops_of,
    parse_results,
    raise_failures,
)

__all__ = ["AsyncClient"]


class AsyncClient:
    """A Torua cluster from Trio; the arguments are :class:`torua.Client`'s."""

    def __init__(
        self,
        urls: str | Sequence[str] = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float | httpx.Timeout = 10.0,
        retry: Retry | None = None,
        headers: Mapping[str, str] | None = None,
        user_agent: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._endpoints = Endpoints(coordinator_urls(urls))
        self._retry = retry or Retry()
        self._http = httpx.AsyncClient(
            headers=client_headers(token, user_agent, headers),
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def urls(self) -> tuple[str, ...]:
        return self._endpoints.urls

    @property
    def base_url(self) -> str:
        """The coordinator URL the next request goes to first (the last one that worked)."""
        return self._endpoints.current

    @property
    def headers(self) -> httpx.Headers:
        return self._http.headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """One call to any route, with failover and retries; an answer of 400 or more
        raises its :class:`~torua.client.errors.ResponseError`."""
        method = method.upper()
        attempts = Attempts(
            self._endpoints,
            self._retry,
            started=trio.current_time(),
            idempotent=method in IDEMPOTENT if idempotent is None else idempotent,
        )
        options = request_options(content, json, params)
        while True:
            url = attempts.url
            error: Exception
            try:
                response = await self._http.request(method, url + path, **options)
            except httpx.TransportError as exc:
                failure, error = transport_failure(exc, url)
                wait = attempts.next_wait(failure, now=trio.current_time())
                if wait is None:
                    raise error from exc
            else:
                if response.status_code < 400:
                    return response
                error = answer_error(response, url)
                failure_or_none = classify_status(error.status, error.code)
                if failure_or_none is None:
                    raise error
                wait = attempts.next_wait(
                    failure_or_none, now=trio.current_time(), retry_after=error.retry_after
                )
                if wait is None:
                    raise error
            await trio.sleep(wait)

    async def get(self, key: str) -> bytes:
        """The value's bytes; :class:`~torua.client.errors.NotFound` when there is none."""
        return (await self.request("GET", data_path(key))).content

    async def get_text(self, key: str, encoding: str = "utf-8") -> str:
        return (await self.get(key)).decode(encoding)

    async def put(self, key: str, value: Value) -> None:
        """Store ``value`` (bytes, or a str as UTF-8); returns once every in-sync copy has it."""
        await self.request("PUT", data_path(key), content=as_bytes(value))

    async def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key is not an error."""
        await self.request("DELETE", data_path(key))

    async def bulk(self, ops: Iterable[Op]) -> list[Result]:
        """As :meth:`torua.Client.bulk`."""
        ops = list(ops)
        results: list[Result] = []
        for start, end, body in bulk_bodies(ops):
            response = await self.request("POST", "/data/_bulk", content=body, idempotent=True)
            results += parse_results(response.content, ops[start:end], url=self.base_url)
        return results

    async def put_many(self, items: Mapping[str, Value] | Iterable[tuple[str, Value]]) -> None:
        """As :meth:`torua.Client.put_many`."""
        pairs = items.items() if isinstance(items, Mapping) else items
        await self._settle(ops_of("put", pairs))

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The values of the keys that exist; missing keys are left out."""
        results = await self._settle(ops_of("get", keys))
        return {r.op.key: r.value for r in results if r.value is not None}

    async def delete_many(self, keys: Iterable[str]) -> None:
        await self._settle(ops_of("delete", keys))

    async def _settle(self, ops: list[Op]) -> list[Result]:
        """Send ``ops``, then again those answered 503, until none or the budget is spent."""
        attempts = Attempts(
            self._endpoints, self._retry, started=trio.current_time(), idempotent=True
        )
        done: dict[int, Result] = {}
        pending = list(range(len(ops)))
        while pending:
            results = await self.bulk([ops[i] for i in pending])
            for i, result in zip(pending, results, strict=True):
                done[i] = result
            pending = [i for i in pending if done[i].status == 503]
            if pending:
                wait = attempts.next_wait(Failure.UNAVAILABLE, now=trio.current_time())
                if wait is None:
                    break
                await trio.sleep(wait)
        return raise_failures([done[i] for i in range(len(ops))])
