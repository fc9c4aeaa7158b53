"""What every client command shares: the coordinator URL, the token, errors, output.

A failed operation raises :class:`CommandError`; ``run_client_command`` turns
it into one line on stderr and its exit status (1, or 2 for bad usage), so no
command ever shows a traceback.
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

ClientFactory = Callable[..., httpx.Client]


class CommandError(Exception):
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


def open_client(
    args: argparse.Namespace, *, timeout: float | httpx.Timeout = TIMEOUT
) -> httpx.Client:
    """An HTTP client for the coordinator, with ``Authorization`` when TORUA_TOKEN is set."""
    headers = {"User-Agent": "torua-cli"}
    if token := os.environ.get("TORUA_TOKEN", "").strip():
        headers["Authorization"] = f"Bearer {token}"
    try:
        return httpx.Client(base_url=base_url(args), headers=headers, timeout=timeout)
    except (httpx.InvalidURL, ValueError) as exc:
        raise CommandError(f"bad coordinator URL {base_url(args)!r}: {exc}", status=2) from None


def error_line(response: httpx.Response) -> str:
    """The API's error as one readable sentence, with the status and code after it."""
    code = ""
    try:
        body = response.json()
        message = str(body.get("message") or body.get("error") or "")
        code = str(body.get("error") or "")
    except (ValueError, AttributeError):
        message = response.text[:200]
    message = message or response.reason_phrase or "request failed"
    line = f"{message} (HTTP {response.status_code}{' ' + code if code else ''})"
    if response.status_code == 401 and "TORUA_TOKEN" not in line:
        line += "; set TORUA_TOKEN to the cluster's token"
    return line


def call(
    http: httpx.Client, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any
) -> httpx.Response:
    """One request; any status outside ``ok`` becomes a CommandError."""
    response = http.request(method, path, **kwargs)
    if response.status_code not in ok:
        raise CommandError(error_line(response))
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
