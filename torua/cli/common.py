"""What every client command shares: the coordinator URL, the token, errors, output.

Every request goes through :class:`torua.Client`, so the commands get its
failover (``--coordinator`` may list several URLs, comma-separated) and its
retries of 503 answers. A failed operation raises :class:`CommandError` or one
of the client's errors; ``run_client_command`` turns either into one line on
stderr and its exit status (1, or 2 for bad usage), so no command ever shows a
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
from rich.console import Console

from torua.client import Client, ResponseError, Retry
from torua.errors import ToruaError

__all__ = [
    "DEFAULT_COORDINATOR",
    "CommandError",
    "ClientFactory",
    "base_url",
    "call",
    "error_line",
    "node_path",
    "open_client",
    "out_console",
    "print_json",
    "progress_console",
]

DEFAULT_COORDINATOR = "http://127.0.0.1:8080"
TIMEOUT = 30.0
RETRY = Retry(total=15.0, when_unreachable=False)
"""503 answers (a copy moving, a leader election) are retried for up to 15 s; a
coordinator that nothing answers for is reported at once, as people expect."""

ClientFactory = Callable[..., Client]


class CommandError(ToruaError):
    """A failed operation: one line on stderr, then exit with ``status``."""

    def __init__(self, message: str, *, status: int = 1) -> None:
        super().__init__(" ".join(message.split()))  # always one line
        self.status = status


def base_url(args: argparse.Namespace) -> str:
    url = args.coordinator or os.environ.get("TORUA_COORDINATOR") or DEFAULT_COORDINATOR
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url  # "127.0.0.1:8080" is what people type
    return url


def open_client(args: argparse.Namespace, *, timeout: float | httpx.Timeout = TIMEOUT) -> Client:
    """A client of the coordinator(s), with ``Authorization`` when TORUA_TOKEN is set."""
    token = os.environ.get("TORUA_TOKEN", "").strip() or None
    try:
        return Client(
            base_url(args), token=token, timeout=timeout, retry=RETRY, user_agent="torua-cli"
        )
    except ValueError as exc:
        raise CommandError(str(exc), status=2) from None


def error_line(error: ResponseError) -> str:
    """The API's error as one readable sentence, with the status and code after it."""
    line = str(error)
    if error.status == 401 and "TORUA_TOKEN" not in line:
        line += "; set TORUA_TOKEN to the cluster's token"
    return line


def call(
    http: Client, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any
) -> httpx.Response:
    """One request; an error answer raises the client's error, any other status
    outside ``ok`` a CommandError."""
    response = http.request(method, path, **kwargs)
    if response.status_code not in ok:
        raise CommandError(f"unexpected answer {response.status_code} to {method} {path}")
    return response


def node_path(node_id: str, suffix: str = "") -> str:
    return f"/nodes/{quote(node_id, safe='')}{suffix}"


def print_json(data: Any) -> None:
    print(json.dumps(data), flush=True)


def out_console() -> Console:
    """Console for stdout: when piped, wide enough that tables keep one row per line."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=200)
    return console


def progress_console() -> Console:
    """Progress bars go to stderr, so ``--json`` output on stdout stays clean."""
    return Console(file=sys.stderr)
