"""Client commands against a running coordinator (SPEC §2).

Tables (rich) for people, ``--json`` for scripts. Exit status 0 on success,
1 on a failed operation (a missing key too), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.table import Table

__all__ = ["add_client_commands", "run_client_command"]

CLIENT_COMMANDS = ("status", "nodes", "shards", "put", "get", "delete", "rebalance")


def add_client_commands(commands: Any) -> None:
    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text)
        parser.add_argument("--coordinator", default=None,
                            help="coordinator URL (TORUA_COORDINATOR)")
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")
        return parser

    client("status", "cluster state at a glance")
    client("nodes", "list nodes with health and mode")
    client("shards", "the shard map")
    put = client("put", "store a value (VALUE '-' reads stdin)")
    put.add_argument("key")
    put.add_argument("value")
    get = client("get", "print a value, byte for byte")
    get.add_argument("key")
    delete = client("delete", "delete a key")
    delete.add_argument("key")
    client("rebalance", "even out shard copies across nodes")


def _client(args: argparse.Namespace) -> httpx.Client:
    base = (args.coordinator or os.environ.get("TORUA_COORDINATOR")
            or "http://127.0.0.1:8080").rstrip("/")
    headers = {}
    if token := os.environ.get("TORUA_TOKEN"):
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=base, headers=headers, timeout=30.0)


def _fail(response: httpx.Response) -> int:
    try:
        body = response.json()
        message = f"{body.get('error')}: {body.get('message')}"
    except ValueError:
        message = response.text[:200]
    print(f"torua: HTTP {response.status_code} {message}", file=sys.stderr)
    return 1


def _data_path(key: str) -> str:
    return "/data/" + quote(key, safe="").replace(".", "%2E")


def run_client_command(args: argparse.Namespace) -> int:
    console = Console()
    try:
        with _client(args) as http:
            return _dispatch(args, http, console)
    except httpx.HTTPError as exc:
        print(f"torua: cannot reach the coordinator: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, http: httpx.Client, console: Console) -> int:
    command = args.command
    if command == "get":
        response = http.get(_data_path(args.key))
        if response.status_code != 200:
            return _fail(response)
        sys.stdout.buffer.write(response.content)
        if sys.stdout.isatty():
            sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
        return 0
    if command == "put":
        value = sys.stdin.buffer.read() if args.value == "-" else args.value.encode()
        response = http.put(_data_path(args.key), content=value)
        return 0 if response.status_code == 204 else _fail(response)
    if command == "delete":
        response = http.delete(_data_path(args.key))
        return 0 if response.status_code == 204 else _fail(response)
    if command == "rebalance":
        response = http.post("/rebalance")
        if response.status_code != 200:
            return _fail(response)
        moves = response.json()["moves"]
        if args.json:
            print(json.dumps(response.json()))
        else:
            console.print(f"{len(moves)} shard copy moves")
        return 0
    path = {"status": "/cluster/info", "nodes": "/nodes", "shards": "/shards"}[command]
    response = http.get(path)
    if response.status_code != 200:
        return _fail(response)
    data = response.json()
    if args.json:
        print(json.dumps(data))
        return 0
    console.print(_render(command, data))
    return 0


def _render(command: str, data: dict[str, Any]) -> Table:
    if command == "status":
        table = Table(title="Torua cluster")
        table.add_column("field")
        table.add_column("value")
        for name, value in data.items():
            table.add_row(name, str(value))
        return table
    if command == "nodes":
        table = Table(title="Nodes")
        for column in ("id", "addr", "status", "mode", "copies", "primaries", "last check"):
            table.add_column(column)
        for node in data["nodes"]:
            style = {"healthy": "green", "unhealthy": "red"}.get(node["status"], "yellow")
            table.add_row(node["id"], node["addr"], f"[{style}]{node['status']}[/]", node["mode"],
                          str(len(node["shards"])), str(len(node["primary_shards"])),
                          str(node["last_health_check"]))
        return table
    table = Table(title=f"Shards (R={data['replication_factor']})")
    for column in ("shard", "primary", "replicas", "in sync", "state"):
        table.add_column(column)
    for shard in data["shards"]:
        table.add_row(str(shard["shard_id"]), str(shard["primary"]), ", ".join(shard["replicas"]),
                      ", ".join(shard["in_sync"]), shard["state"])
    return table
