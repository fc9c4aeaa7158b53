"""A client of a running Torua cluster, over plain HTTP with httpx on Trio.

Start a cluster (``python -m torua up`` prints its URL and token), then:

    TORUA_TOKEN=<token> python examples/http_client.py [COORDINATOR_URL]

The coordinator URL is the argument, else ``TORUA_COORDINATOR``, else
``http://127.0.0.1:8080``. The program prints the cluster info and the nodes,
puts, reads back and deletes a few keys, and exits 0, or 1 on any failure.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import quote

import httpx
import trio

KEYS = {
    "example/greeting": b"hello from http_client.py",
    "example/unicode key \u00e9\u00e8": "caf\u00e9".encode(),
    "example:binary": bytes([0, 1, 2, 255]),
}


class ClusterError(Exception):
    """The coordinator answered with an error (its JSON ``error`` and ``message``)."""


def data_path(key: str) -> str:
    # Any character may appear in a key; percent-encode it all, "/" included.
    return "/data/" + quote(key, safe="")


def check(response: httpx.Response, *expected: int) -> httpx.Response:
    if response.status_code not in expected:
        try:
            body = response.json()
            detail = f"{body.get('error')}: {body.get('message')}"
        except ValueError:
            detail = response.text[:200]
        request = response.request
        where = f"{request.method} {request.url.path}"
        raise ClusterError(f"{where} -> {response.status_code} {detail}")
    return response


async def run(http: httpx.AsyncClient) -> None:
    info = check(await http.get("/cluster/info"), 200).json()
    print("cluster info:")
    for name, value in info.items():
        print(f"  {name:<20} {value}")

    nodes = check(await http.get("/nodes"), 200).json()["nodes"]
    print(f"nodes ({len(nodes)}):")
    for node in nodes:
        print(
            f"  {node['id']:<6} {node['addr']:<24} {node['status']:<10} {node['mode']:<8} "
            f"copies={len(node['shards'])} primaries={len(node['primary_shards'])}"
        )

    for key, value in KEYS.items():
        check(await http.put(data_path(key), content=value), 204)
        print(f"put    {key!r} ({len(value)} bytes)")
    for key, value in KEYS.items():
        got = check(await http.get(data_path(key)), 200).content
        if got != value:
            raise ClusterError(f"{key!r} read back {got!r}, expected {value!r}")
        print(f"get    {key!r} -> {got!r}")
    for key in KEYS:
        check(await http.delete(data_path(key)), 204)
        check(await http.get(data_path(key)), 404)
        print(f"delete {key!r} (now 404)")
    print("ok")


async def main(coordinator: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=coordinator, headers=headers, timeout=10.0) as http:
        try:
            await run(http)
        except ClusterError as exc:
            print(f"http_client: {exc}", file=sys.stderr)
            return 1
        except httpx.HTTPError as exc:
            print(f"http_client: cannot reach {coordinator}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    url = (sys.argv[1] if len(sys.argv) > 1 else None) or os.environ.get(
        "TORUA_COORDINATOR", "http://127.0.0.1:8080"
    )
    sys.exit(trio.run(main, url.rstrip("/"), os.environ.get("TORUA_TOKEN") or None))
