"""Rich tables for people: ``status``, ``nodes``, ``shards``, ``maintenance``, ``rebalance``.

Values from the API go into :class:`rich.text.Text`, never into markup, so a
node id or a reason can never be read as a style tag.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

__all__ = [
    "ago",
    "duration",
    "maintenance_table",
    "moves_table",
    "nodes_table",
    "shards_table",
    "status_table",
    "styled",
]

CLUSTER_STYLE = {"green": "bold green", "yellow": "bold yellow", "red": "bold red"}
HEALTH_STYLE = {"healthy": "green", "unhealthy": "bold red", "unknown": "yellow"}
MODE_STYLE = {
    "active": "green",
    "maintenance": "yellow",
    "evacuating": "magenta",
    "draining": "magenta",
}
SHARD_STYLE = {
    "active": "green",
    "relocating": "cyan",
    "recovering": "yellow",
    "incomplete": "yellow",
    "unassigned": "bold red",
}


def styled(value: Any, styles: dict[str, str]) -> Text:
    text = "-" if value is None else str(value)
    return Text(text, style=styles.get(text, ""))


def duration(seconds: float | None) -> str:
    """``42.1s``, ``3m05s``, ``2h07m``, ``3d04h``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def ago(stamp: str | None, now: float | None = None) -> str:
    """An RFC 3339 time as ``0.4s ago``; ``never`` for null."""
    if not stamp:
        return "never"
    try:
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return stamp
    return f"{duration(max(0.0, (time.time() if now is None else now) - at))} ago"


def _counts(values: list[str], styles: dict[str, str]) -> Text:
    text = Text()
    for i, (value, n) in enumerate(sorted(Counter(values).items())):
        if i:
            text.append(", ")
        text.append(f"{n} {value}", style=styles.get(value, ""))
    return text


def _key_value_table(title: str) -> Table:
    table = Table(title=title, show_header=False, box=box.ROUNDED, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    return table


def status_table(
    info: dict[str, Any], nodes: list[dict[str, Any]], shards: dict[str, Any]
) -> Table:
    table = _key_value_table("Torua cluster")
    table.add_row("state", styled(info.get("cluster_state"), CLUSTER_STYLE))
    healthy, total = info.get("healthy_nodes", 0), info.get("total_nodes", 0)
    node_line = Text(
        f"{healthy}/{total} healthy", style="green" if total and healthy == total else "yellow"
    )
    if nodes:
        node_line.append("  (").append_text(_counts([n["mode"] for n in nodes], MODE_STYLE)).append(
            ")"
        )
    table.add_row("nodes", node_line)
    assigned, count = info.get("assigned_shards", 0), info.get("total_shards", 0)
    shard_line = Text(
        f"{assigned}/{count} assigned, R={shards.get('replication_factor', '?')}",
        style="" if assigned == count else "red",
    )
    if shards.get("shards"):
        shard_line.append("  (").append_text(
            _counts([s["state"] for s in shards["shards"]], SHARD_STYLE)
        ).append(")")
    table.add_row("shards", shard_line)
    copies = sum(len(n.get("shards", [])) for n in nodes)
    table.add_row("copies", str(copies))
    table.add_row("cluster id", str(info.get("cluster_id", "-")))
    table.add_row(
        "coordinator", f"v{info.get('coordinator_version', '?')}, up {duration(info.get('uptime'))}"
    )
    if info.get("epoch"):  # several coordinators: who leads, and which one answered
        table.add_row("leader", f"{info.get('leader') or 'none (election under way)'}")
        table.add_row("epoch", f"{info['epoch']}  (this coordinator: {info.get('role')})")
    return table


def nodes_table(nodes: list[dict[str, Any]]) -> Table:
    healthy = sum(n["status"] == "healthy" for n in nodes)
    table = Table(
        title="Nodes",
        box=box.ROUNDED,
        title_justify="left",
        caption=f"{len(nodes)} nodes, {healthy} healthy",
        caption_justify="left",
    )
    table.add_column("id", style="bold", no_wrap=True)
    table.add_column("addr", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("mode", no_wrap=True)
    table.add_column("copies", justify="right")
    table.add_column("primaries", justify="right")
    table.add_column("last check", justify="right", no_wrap=True)
    now = time.time()
    for node in sorted(nodes, key=lambda n: n["id"]):
        status = styled(node["status"], HEALTH_STYLE)
        if failures := node.get("consecutive_failures"):
            status.append(f" ({failures} failed)", style="red")
        for check in node.get("checks") or ():
            if check.get("state") in ("warning", "critical"):
                color = "yellow" if check["state"] == "warning" else "red"
                status.append(f"\n{check['name']} {check['state']}", style=color)
        copies = str(len(node.get("shards", [])))
        if node.get("capacity") is not None:
            copies += f"/{node['capacity']}"
        mode = styled(node["mode"], MODE_STYLE)
        if shutdown := node.get("shutdown"):  # a planned restart, or away within its delay
            mode.append(f" (shutdown: {shutdown})", style="yellow")
        table.add_row(
            node["id"],
            node.get("addr", ""),
            status,
            mode,
            copies,
            str(len(node.get("primary_shards", []))),
            ago(node.get("last_health_check"), now),
        )
    return table


def shards_table(data: dict[str, Any]) -> Table:
    replication = data.get("replication_factor", 0)
    shards = data.get("shards", [])
    table = Table(
        title=f"Shards ({data.get('num_shards', len(shards))} shards, R={replication})",
        box=box.ROUNDED,
        title_justify="left",
        caption_justify="left",
        caption=_counts([s["state"] for s in shards], {}).plain,
    )
    table.add_column("shard", justify="right")
    table.add_column("primary", style="bold")
    table.add_column("replicas")
    table.add_column("in sync")
    table.add_column("state")
    table.add_column("req/s", justify="right")
    for shard in shards:
        in_sync = shard.get("in_sync", [])
        sync_style = "green" if len(in_sync) >= replication else "yellow" if in_sync else "red"
        table.add_row(
            str(shard["shard_id"]),
            Text(shard["primary"] or "-", style="" if shard["primary"] else "red"),
            ", ".join(shard.get("replicas", [])) or "-",
            Text(f"{', '.join(in_sync) or '-'} ({len(in_sync)}/{replication})", style=sync_style),
            _shard_state(shard),
            "-" if shard.get("rate") is None else f"{shard['rate']:.1f}",
        )
    return table


def _shard_state(shard: dict[str, Any]) -> Text:
    """The state, and why the shard is short of copies when it is."""
    state = styled(shard["state"], SHARD_STYLE)
    if reason := shard.get("reason"):
        state.append(f"\n{reason}", style="yellow")
    return state


def maintenance_table(modes: dict[str, str]) -> Table:
    table = Table(box=box.ROUNDED)
    table.add_column("node", style="bold")
    table.add_column("mode")
    for node_id, mode in modes.items():
        table.add_row(node_id, styled(mode, MODE_STYLE))
    return table


def moves_table(moves: list[dict[str, Any]]) -> Table:
    table = Table(box=box.ROUNDED, title=f"{len(moves)} copy moves", title_justify="left")
    for column in ("shard", "copy", "from", "to", "reason"):
        table.add_column(column)
    for move in moves:
        table.add_row(
            str(move["shard_id"]),
            "primary" if move.get("primary") else "replica",
            move.get("source") or "-",
            move.get("target") or "-",
            move.get("reason") or "",
        )
    return table
