"""``watch``: follow ``GET /events`` (Server-Sent Events) and print one line per event.

The wire format (torua/coordinator/api/events.py)::

    id: <n>
    event: <type>
    data: <one line of JSON>
    <blank line>

Lines starting with ``:`` are comments (keepalives). The first event is
``hello`` with a snapshot of the cluster. For people each event is one line:
local time, type, the interesting fields. With ``--json`` each event is its
JSON object on one line, with ``"type"`` added when the payload has none (the
``hello`` snapshot), so a script can dispatch on it. Ctrl-C stops with exit 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from rich.console import Console
from rich.text import Text

from torua.cli.common import CommandError, out_console, print_json
from torua.cli.render import CLUSTER_STYLE, HEALTH_STYLE
from torua.client import Client, TransportError

__all__ = ["SseEvent", "describe", "parse_sse", "watch"]

READ_TIMEOUT = 60.0  # the coordinator sends a keepalive after 15 s of quiet

TYPE_STYLE = {
    "hello": "bold cyan",
    "node_joined": "green",
    "node_removed": "red",
    "health_changed": "yellow",
    "mode_changed": "magenta",
    "shard_moved": "blue",
    "progress": "cyan",
    "config_changed": "yellow",
}


@dataclass(frozen=True, slots=True)
class SseEvent:
    id: str | None
    type: str
    data: str

    def payload(self) -> dict[str, Any]:
        """The data as a JSON object with ``type``; non-JSON data goes under ``data``."""
        try:
            value = json.loads(self.data)
        except ValueError:
            value = {"data": self.data}
        if not isinstance(value, dict):
            value = {"data": value}
        if "type" not in value:
            value = {"type": self.type, **value}
        return value


RECONNECT_DELAY = 2.0  # as the server's `retry:` field asks
RECONNECT_FOR = 30.0


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Events from the lines of a text/event-stream (the WHATWG rules that matter here)."""
    event_id: str | None = None
    kind = ""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield SseEvent(event_id, kind or "message", "\n".join(data))
            kind, data = "", []
            continue
        if line.startswith(":"):
            continue  # comment: keepalive
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            kind = value
        elif field == "id" and "\0" not in value:
            event_id = value
        # "retry" and unknown fields are ignored


def _arrow(old: Any, new: Any) -> str:
    return f"{old or '-'} -> {new or '-'}"


def describe(payload: dict[str, Any]) -> str:
    """The interesting fields of one event, as a short phrase."""
    kind = payload.get("type")
    get = payload.get
    if kind == "hello":
        cluster = get("cluster") or {}
        return (
            f"cluster {cluster.get('cluster_state', '?')}, "
            f"{cluster.get('healthy_nodes', '?')}/{cluster.get('total_nodes', '?')} nodes "
            f"healthy, {cluster.get('assigned_shards', '?')}/"
            f"{cluster.get('total_shards', '?')} shards assigned"
        )
    if kind == "node_joined":
        return f"{get('node_id')} at {get('addr')}{' (rejoined)' if get('rejoined') else ''}"
    if kind in ("health_changed", "mode_changed"):
        reason = f": {get('reason')}" if get("reason") else ""
        return f"{get('node_id')} {_arrow(get('old'), get('new'))}{reason}"
    if kind == "node_removed":
        return str(get("node_id"))
    if kind == "shard_moved":
        copy = "primary" if get("primary") else "replica"
        return (
            f"shard {get('shard_id')} {copy} {_arrow(get('source'), get('target'))}"
            f" ({get('reason')})"
        )
    if kind == "progress":
        return f"{get('node_id')} {get('moved')}/{get('total')} copies, {get('state')}"
    if kind == "config_changed":
        config = get("config") or {}
        return ", ".join(f"{k}={v}" for k, v in config.items())
    rest = {k: v for k, v in payload.items() if k not in ("type", "at")}
    return json.dumps(rest, separators=(",", ":"), default=str)


def _line(payload: dict[str, Any]) -> Text:
    at = payload.get("at")
    stamp = datetime.fromtimestamp(at if isinstance(at, int | float) else time.time())
    kind = str(payload.get("type"))
    line = Text(stamp.strftime("%H:%M:%S.%f")[:-3] + " ", style="dim")
    line.append(f"{kind:<15}", style=TYPE_STYLE.get(kind, "bold"))
    line.append(" ")
    text = describe(payload)
    style = ""
    if kind == "hello":
        style = CLUSTER_STYLE.get(str((payload.get("cluster") or {}).get("cluster_state")), "")
    elif kind == "health_changed":
        style = HEALTH_STYLE.get(str(payload.get("new")), "")
    line.append(text, style=style)
    return line


def _emit(event: SseEvent, as_json: bool, console: Console) -> None:
    payload = event.payload()
    if as_json:
        print_json(payload)
    else:
        console.print(_line(payload), soft_wrap=True, highlight=False)


def watch(args: argparse.Namespace, http: Client) -> int:
    """Follow /events, reconnecting as EventSource does when a stream ends.

    The coordinator ends idle streams (its read timeout) and every stream when
    it restarts; a new stream starts with a fresh ``hello`` snapshot. Gives up
    once the coordinator has been unreachable for RECONNECT_FOR seconds.
    """
    console = out_console()
    seen = 0
    timeout = httpx.Timeout(10.0, read=READ_TIMEOUT)
    unreachable_since: float | None = None
    connected = False
    while True:
        try:
            with http.stream(
                "GET", "/events", headers={"Accept": "text/event-stream"}, timeout=timeout
            ) as response:
                if response.status_code != 200:  # errors (4xx, 5xx) raised already
                    raise CommandError(f"unexpected answer {response.status_code} to /events")
                unreachable_since, connected = None, True
                for event in parse_sse(response.iter_lines()):
                    _emit(event, args.json, console)
                    seen += 1
                    if args.count and seen >= args.count:
                        return 0
        except KeyboardInterrupt:
            return 0
        except (httpx.ReadTimeout, httpx.RemoteProtocolError):
            pass  # a stream that went quiet or away: connect again
        except (httpx.TransportError, TransportError):
            if not connected:
                raise  # never reached it at all: the usual one-line "cannot reach" error
            now = time.monotonic()
            unreachable_since = unreachable_since or now
            if now - unreachable_since > RECONNECT_FOR:
                raise CommandError(
                    f"the coordinator has been unreachable for {RECONNECT_FOR:.0f}s "
                    f"(after {seen} events)"
                ) from None
        print("torua: event stream ended; reconnecting", file=sys.stderr)
        try:
            time.sleep(RECONNECT_DELAY)
        except KeyboardInterrupt:
            return 0
