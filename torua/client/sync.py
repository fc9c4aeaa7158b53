"""``torua.Client``: the blocking client, for scripts, notebooks and the ``torua`` CLI.

::

    from torua import Client, NotFound

    with Client("http://127.0.0.1:8080", token="...") as db:
        db.put("greeting", "hello")
        assert db.get("greeting") == b"hello"
        db.put_many({"a": b"1", "b": b"2"})
        print(db.get_many(["a", "b", "c"]))   # {'a': b'1', 'b': b'2'}: c is missing

One ``httpx.Client`` keeps connections alive to the coordinators; a Client may
be shared by threads. Retries follow :mod:`torua.client.retry`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import httpx

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

__all__ = ["Client"]


class Client:
    """A Torua cluster, through one or more coordinator URLs.

    ``urls``: one URL, several (a list, or one string with commas); the next is
    tried when one cannot be reached or has no leader. ``token``: the cluster's
    ``TORUA_TOKEN``. ``timeout``: seconds for one request (or an
    ``httpx.Timeout``). ``retry``: how long a call keeps trying
    (:class:`~torua.client.retry.Retry`). ``transport``: an httpx transport,
    for tests.
    """

    def __init__(
        self,
        urls: str | Sequence[str] = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float | httpx.Timeout = 10.0,
        retry: Retry | None = None,
        headers: Mapping[str, str] | None = None,
        user_agent: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._endpoints = Endpoints(coordinator_urls(urls))
        self._retry = retry or Retry()
        self._http = httpx.Client(
            headers=client_headers(token, user_agent, headers),
            timeout=timeout,
            transport=transport,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def urls(self) -> tuple[str, ...]:
        return self._endpoints.urls

    @property
    def base_url(self) -> str:
        """The coordinator URL the next request goes to first (the last one that worked)."""
        return self._endpoints.current

    @property
    def headers(self) -> httpx.Headers:
        """Headers sent with every request (``Authorization`` among them)."""
        return self._http.headers

    # -- any route -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """One call to any route, with failover and retries; an answer of 400 or more
        raises its :class:`~torua.client.errors.ResponseError`.

        ``idempotent`` (default: by method) says whether the call may be sent again
        after a connection broke mid-request.
        """
        method = method.upper()
        attempts = Attempts(
            self._endpoints,
            self._retry,
            started=time.monotonic(),
            idempotent=method in IDEMPOTENT if idempotent is None else idempotent,
        )
        options = request_options(content, json, params)
        if timeout is not None:
            options["timeout"] = timeout
        while True:
            url = attempts.url
            error: Exception
            try:
                response = self._http.request(method, url + path, **options)
            except httpx.TransportError as exc:
                failure, error = transport_failure(exc, url)
                wait = attempts.next_wait(failure, now=time.monotonic())
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
                    failure_or_none, now=time.monotonic(), retry_after=error.retry_after
                )
                if wait is None:
                    raise error
            if wait > 0:
                time.sleep(wait)

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> Iterator[httpx.Response]:
        """An open streaming answer (``GET /events``), from the first URL that connects.

        Not retried beyond that: a stream's reader decides when to reconnect.
        Errors while reading the body are httpx's own.
        """
        attempts = Attempts(
            self._endpoints,
            Retry(total=0, when_unreachable=False),
            started=time.monotonic(),
            idempotent=False,
        )
        while True:
            url = attempts.url
            request = self._http.build_request(
                method,
                url + path,
                headers=headers,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
            try:
                response = self._http.send(request, stream=True)
                break
            except httpx.TransportError as exc:
                failure, error = transport_failure(exc, url)
                if attempts.next_wait(failure, now=time.monotonic()) is None:
                    raise error from exc
        try:
            if response.status_code >= 400:
                response.read()
                raise answer_error(response, url)
            yield response
        finally:
            response.close()

    # -- data ------------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        """The value's bytes; :class:`~torua.client.errors.NotFound` when there is none."""
        return self.request("GET", data_path(key)).content

    def get_text(self, key: str, encoding: str = "utf-8") -> str:
        return self.get(key).decode(encoding)

    def put(self, key: str, value: Value) -> None:
        """Store ``value`` (bytes, or a str as UTF-8); returns once every in-sync copy has it."""
        self.request("PUT", data_path(key), content=as_bytes(value))

    def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key is not an error."""
        self.request("DELETE", data_path(key))

    def bulk(self, ops: Iterable[Op]) -> list[Result]:
        """Many operations in as few requests as the coordinator's limits allow; one
        :class:`~torua.client.shape.Result` per operation, in order. Within one request
        every write is applied before any read."""
        ops = list(ops)
        results: list[Result] = []
        for start, end, body in bulk_bodies(ops):
            response = self.request("POST", "/data/_bulk", content=body, idempotent=True)
            results += parse_results(response.content, ops[start:end], url=self.base_url)
        return results

    def put_many(self, items: Mapping[str, Value] | Iterable[tuple[str, Value]]) -> None:
        """Store every pair; raises :class:`~torua.client.errors.BulkError` naming the
        keys that could not be written (the others were)."""
        pairs = items.items() if isinstance(items, Mapping) else items
        self._settle(ops_of("put", pairs))

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The values of the keys that exist; missing keys are left out."""
        found: dict[str, bytes] = {}
        for result in self._settle(ops_of("get", keys)):
            if result.value is not None:
                found[result.op.key] = result.value
        return found

    def delete_many(self, keys: Iterable[str]) -> None:
        self._settle(ops_of("delete", keys))

    def _settle(self, ops: list[Op]) -> list[Result]:
        """Send ``ops``, then again those answered 503, until none or the budget is spent."""
        attempts = Attempts(self._endpoints, self._retry, started=time.monotonic(), idempotent=True)
        done: dict[int, Result] = {}
        pending = list(range(len(ops)))
        while pending:
            results = self.bulk([ops[i] for i in pending])
            for i, result in zip(pending, results, strict=True):
                done[i] = result
            pending = [i for i in pending if done[i].status == 503]
            if pending:
                wait = attempts.next_wait(Failure.UNAVAILABLE, now=time.monotonic())
                if wait is None:
                    break
                time.sleep(wait)
        return raise_failures([done[i] for i in range(len(ops))])
