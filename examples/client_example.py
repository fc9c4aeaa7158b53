"""Torua's Python client, blocking and async, against a running cluster.

Start a cluster (``python -m torua up`` prints its URL and token), then:

    TORUA_TOKEN=<token> python examples/client_example.py [URL[,URL...]]

The coordinator URLs are the argument, else ``TORUA_COORDINATOR``, else
``http://127.0.0.1:8080``; with several, the client fails over between them.
The program writes, reads and deletes keys one at a time and in bulk, with
:class:`torua.Client` and then :class:`torua.AsyncClient`, prints what it did,
and exits 0, or 1 with one line naming the error.
"""

from __future__ import annotations

import os
import sys

import trio

from torua import AsyncClient, Client, NotFound, ToruaError


def blocking(urls: str, token: str | None) -> None:
    with Client(urls, token=token) as db:
        db.put("example/greeting", "hello from torua.Client")  # a str is stored as UTF-8
        db.put("example/binary", bytes([0, 1, 2, 255]))
        print("get", db.get_text("example/greeting"))
        print("get", db.get("example/binary"))
        db.delete("example/greeting")
        try:
            db.get("example/greeting")
        except NotFound as exc:
            print("gone:", exc.code)  # key_not_found

        users = {f"example/user/{i}": f"user {i}" for i in range(100)}
        db.put_many(users)  # one request, however many shards the keys fall in
        back = db.get_many([*users, "example/user/absent"])  # missing keys are left out
        print(f"bulk: wrote {len(users)}, read {len(back)} back")
        db.delete_many([*users, "example/binary"])


async def concurrent(urls: str, token: str | None) -> None:
    async with AsyncClient(urls, token=token) as db:

        async def put(i: int) -> None:
            await db.put(f"example/async/{i}", f"value {i}")

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(put, i)
        values = await db.get_many(f"example/async/{i}" for i in range(20))
        print(f"async: wrote 20 concurrently, read {len(values)} back")
        await db.delete_many(values)


def main() -> int:
    urls = (sys.argv[1] if len(sys.argv) > 1 else None) or os.environ.get(
        "TORUA_COORDINATOR", "http://127.0.0.1:8080"
    )
    token = os.environ.get("TORUA_TOKEN") or None
    try:
        blocking(urls, token)
        trio.run(concurrent, urls, token)
    except ToruaError as exc:  # every client error has this root
        print(f"client_example: {exc}", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
