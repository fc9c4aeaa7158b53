"""``drain`` and ``evacuate``: operations that take a while, with a live progress bar.

The bar goes to stderr and only when stderr is a terminal, so ``--json`` on
stdout stays one clean document. Ctrl-C stops the client only: the
coordinator goes on moving copies, and the command says so (exit 130).
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import httpx
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from torua.cli.common import (
    ClientFactory,
    CommandError,
    call,
    node_path,
    out_console,
    print_json,
    progress_console,
)
from torua.client import Client, ClientError

__all__ = ["drain", "evacuate"]

POLL = 0.2  # seconds between progress polls
DRAIN_TIMEOUT = 330.0  # the coordinator waits up to 300 s for a drain, then answers 409


def _progress(quiet: bool) -> Progress:
    console = progress_console()
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("copies"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
    )


def _copies(noun: int) -> str:
    return f"{noun} cop{'y' if noun == 1 else 'ies'}"


def _held(http: Client, node_id: str) -> int | None:
    """How many copies the node holds now, per ``GET /nodes``; None if unknown."""
    for node in call(http, "GET", "/nodes").json().get("nodes", []):
        if node.get("id") == node_id:
            return len(node.get("shards", []))
    return None


def drain(args: argparse.Namespace, http: Client, open_client: ClientFactory) -> int:
    """``POST /nodes/{id}/drain`` blocks until every copy moved; a thread waits for it
    while this one polls ``GET /nodes`` to move the bar."""
    node_id = args.node
    total = _held(http, node_id)
    if total is None:
        raise CommandError(f"no node {node_id!r} in this cluster")
    outcome: dict[str, Any] = {}

    def post() -> None:
        try:
            with open_client(args, timeout=httpx.Timeout(10.0, read=DRAIN_TIMEOUT)) as client:
                outcome["response"] = call(client, "POST", node_path(node_id, "/drain"))
        except Exception as exc:  # handed to the main thread, which reports it
            outcome["error"] = exc

    waiter = threading.Thread(target=post, name="drain", daemon=True)
    waiter.start()
    try:
        with _progress(args.json) as progress:
            task = progress.add_task(f"draining {node_id}", total=total)
            while waiter.is_alive():
                waiter.join(POLL)
                try:
                    held = _held(http, node_id)
                except (httpx.HTTPError, ClientError, CommandError, ValueError):
                    continue  # the drain's own answer decides the outcome
                if held is not None:
                    progress.update(task, completed=max(0, total - held))
            if "response" in outcome and outcome["response"].status_code == 200:
                progress.update(task, completed=total)
    except KeyboardInterrupt:
        raise CommandError(
            f"interrupted; the coordinator goes on draining {node_id}", status=130
        ) from None
    if "error" in outcome:
        raise outcome["error"]
    response: httpx.Response = outcome["response"]
    body = response.json()
    if args.json:
        print_json(body)
    else:
        out_console().print(
            f"drained {node_id}: moved {_copies(int(body.get('moved', 0)))}", highlight=False
        )
    return 0


def evacuate(args: argparse.Namespace, http: Client) -> int:
    """``POST /nodes/{id}/evacuate`` (202), then poll ``GET /nodes/{id}/evacuation``."""
    node_id = args.node
    state = call(http, "POST", node_path(node_id, "/evacuate"), ok=(200, 202)).json()
    try:
        with _progress(args.json) as progress:
            total = int(state.get("total", 0))
            task = progress.add_task(f"evacuating {node_id}", total=total)
            while state.get("state") == "running":
                progress.update(task, completed=int(state.get("moved", 0)))
                time.sleep(POLL)
                state = call(http, "GET", node_path(node_id, "/evacuation")).json()
            if state.get("state") == "done":
                progress.update(task, completed=total)
    except KeyboardInterrupt:
        raise CommandError(
            f"interrupted; the coordinator goes on evacuating {node_id} "
            f"(`torua maintenance off {node_id}` makes it active again)",
            status=130,
        ) from None
    if args.json:
        print_json(state)
    if state.get("state") == "done":
        if not args.json:
            out_console().print(
                f"evacuated {node_id}: moved {state.get('moved', 0)} of "
                f"{_copies(int(state.get('total', 0)))}",
                highlight=False,
            )
        return 0
    if state.get("state") == "failed":
        raise CommandError(
            f"evacuation of {node_id} failed: {state.get('reason') or 'no reason given'}"
        )
    raise CommandError(f"evacuation of {node_id}: unexpected state {state.get('state')!r}")
