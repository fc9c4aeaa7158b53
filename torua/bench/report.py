"""results.json and results.md: a Markdown table per section and the targets table.

The targets and their verdicts are in :mod:`torua.bench.targets`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torua.bench.targets import ceiling_ratio, find_run, fmt, kept_up, targets

__all__ = ["write_results"]

_NOT_NODES = ("coordinator", "ceiling", "bench", "wrk", "other")


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def _bulk_ratio(section: dict[str, Any], op: str) -> float | None:
    """Keys/s over the ceiling's GET req/s at c=32: one key per request there."""
    ceiling = find_run(section, "ceiling", "GET", 32)
    if ceiling is None or not ceiling["rps"]:
        return None
    return float(section["bulk"][op]["keys_per_s"]) / float(ceiling["rps"])


def _profile_md(sections: list[dict[str, Any]]) -> list[str]:
    profiles = [p for s in sections for p in s.get("profiles", [])]
    if not profiles:
        return []
    out = [
        "## Where the time goes (py-spy, wrk GET c=32, separate unmeasured runs)",
        "",
        "Self time: samples whose innermost frame is the function, of all samples "
        "of the process while it was busy (waiting in the event loop is left out).",
        "",
    ]
    for p in profiles:
        out += [f"### {p['config']}, load {p['load']}: {p['process']} (`{p['svg']}`)", ""]
        if "error" in p:
            out += [f"py-spy: {p['error']}", ""]
        if p.get("top"):
            rows = [[t["function"], t["self_pct"]] for t in p["top"]]
            out += _table(["function (file)", "self %"], rows)
    return out


def _throughput_md(sections: list[dict[str, Any]]) -> list[str]:
    rows = []
    for s in sections:
        for r in s["runs"]:
            errors = r["non_2xx"] + r["socket_errors"] + r["timeouts"]
            cpu = r.get("cpu_cores", {})
            nodes = sum(v for k, v in cpu.items() if k not in _NOT_NODES)
            cores = (cpu.get("coordinator", 0.0), nodes, cpu.get("wrk", 0.0), cpu.get("other", 0.0))
            served_by = cpu.get(r["target"].removeprefix("node "), 0.0)
            rows.append(
                [
                    s["config"],
                    r["target"],
                    r["method"],
                    r["concurrency"],
                    r["keys"],
                    r["rps"],
                    r["p50_ms"],
                    r["p99_ms"],
                    fmt(ceiling_ratio(s, r), 2),
                    errors,
                    "/".join(f"{x:.2f}" for x in cores),
                    fmt(1000.0 * served_by / r["rps"], 2) if r["rps"] else "-",
                ]
            )
    out = [
        "## GET and PUT (wrk)",
        "",
        "CPU = cores used during the run by the coordinator / both nodes / wrk / everything else "
        "on the machine (other jobs: a busy machine makes a run less reliable). CPU ms/req = "
        "CPU time of the process wrk talks to per request, which outside load barely moves. "
        "x ceiling = req/s over the ceiling server's (same method and c, same run).",
        "",
    ]
    headers = [
        *("config", "target", "method", "c", "keys", "req/s", "p50 ms", "p99 ms"),
        *("x ceiling", "errors"),
    ]
    out += _table([*headers, "CPU coord/nodes/wrk/other", "CPU ms/req"], rows)
    bulk_rows = [
        [
            s["config"],
            op,
            s["bulk"][op]["keys"],
            s["bulk"][op]["seconds"],
            s["bulk"][op]["keys_per_s"],
            fmt(_bulk_ratio(s, op), 2),
            sum(s["bulk"][op]["errors"].values()),
        ]
        for s in sections
        if s["bulk"]
        for op in ("put", "get")
    ]
    out += ["## Bulk (POST /data/_bulk, 1,000 ops per request, 4 requests at a time)", ""]
    headers = ["config", "op", "keys", "seconds", "keys/s", "x ceiling GET c=32", "errors"]
    out += _table(headers, bulk_rows)
    mem_rows = [
        [
            s["config"],
            s["peak_rss_mb"].get("coordinator"),
            ", ".join(f"{k} {v}" for k, v in s["peak_rss_mb"].items() if k != "coordinator"),
        ]
        for s in sections
    ]
    out += ["## Peak memory (RSS during the wrk and bulk runs)", ""]
    out += _table(["config", "coordinator MB", "nodes MB"], mem_rows)
    return out


def _detection_md(rows: list[dict[str, Any]], bound: float) -> list[str]:
    table = [
        [
            f"{d['n']}:{d['k']}",
            d["max_s"],
            d["mean_s"],
            d["min_s"],
            f"{d['detected']}/{d['k']}",
            ", ".join(d["false_unhealthy"]) or "none",
            d["coordinator_peak_rss_mb"],
        ]
        for d in rows
    ]
    return [
        "## Failure detection (HEALTH_CHECK_INTERVAL=2s, timeout 1s, 3 failures)",
        "",
        f"Time from SIGSTOP to `unhealthy` in `GET /nodes` (polled every 50 ms). "
        f"F x I + T = {bound:g} s.",
        "",
        *_table(
            [
                "N:K",
                "max s",
                "mean s",
                "min s",
                "detected",
                "healthy marked unhealthy",
                "coordinator peak MB",
            ],
            table,
        ),
    ]


def _probe_md(section: dict[str, Any]) -> list[str]:
    rows = [
        [
            v["variant"],
            "yes" if kept_up(v, section) else "NO",
            v["probes_per_s"],
            v["lag_p50_ms"],
            v["lag_p99_ms"],
            v["lag_max_ms"],
            v["skipped_ticks"],
            fmt(v["cpu_cores"], 2),
            fmt(v["server_cpu_cores"], 2),
            fmt(v.get("other_cpu_cores"), 2),
            v["loop_lag_p99_ms"],
            f"{v['ok']}/{v['failed']}",
            v["marked_unhealthy"],
            ", ".join(f"{k} {n}" for k, n in sorted(v["statuses_at_end"].items())),
        ]
        for v in section["variants"]
    ]
    return [
        f"## Probe-schedule lag ({section['nodes']:,} nodes, interval {section['interval_s']:g} s,"
        f" timeout {section['timeout_s']:g} s, {section['window_s']:g} s window after "
        f"{section['warmup_s']:g} s warm-up)",
        "",
        "Lag = probe start - its scheduled tick. CPU = this process's user+system time / wall "
        "(1.0 = one core); the HTTP servers run in another process; other CPU = the rest of the "
        "machine (other jobs). Kept up = finished and ran at least 95% of the scheduled probes.",
        "",
        *_table(
            [
                "variant",
                "kept up",
                "probes/s",
                "lag p50 ms",
                "lag p99 ms",
                "lag max ms",
                "skipped ticks",
                "CPU cores",
                "servers' CPU",
                "other CPU",
                "loop lag p99 ms",
                "probes ok/failed",
                "marked unhealthy",
                "statuses at end",
            ],
            rows,
        ),
    ]


def _failover_md(failover: dict[str, Any]) -> list[str]:
    summary = failover["failover_s"] or {}
    out = [
        "## Coordinator failover (SIGKILL of the leader under writes)",
        "",
        f"Three coordinators on etcd, TORUA_LEADER_TTL={failover['ttl']}: from the kill to the "
        f"first write acknowledged through a follower. min {summary.get('min')} s, median "
        f"{summary.get('median')} s, max {summary.get('max')} s; lost writes "
        f"{failover['lost_writes']}.",
        "",
    ]
    rows = [
        [
            r["run"],
            r["failover_s"],
            r["acked_writes"],
            r["lost_writes"],
            r["in_flight_at_kill"],
            r["failed_during_failover"],
        ]
        for r in failover["runs"]
    ]
    return out + _table(
        ["run", "failover s", "acked writes", "lost", "in flight at the kill", "during failover"],
        rows,
    )


def _moves_md(move: dict[str, Any]) -> list[str]:
    out = [
        "## One shard move (durable, R = 1, drain into a new node)",
        "",
        f"{move['keys']} keys of 100 bytes; bytes as the nodes counted them on the export "
        "and import routes; CPU seconds per process during the drain.",
        "",
    ]
    return out + _table(
        ["drain s", "copy s", "keys/s", "export MB", "import MB", "MB/s", "CPU s"],
        [
            [
                move["drain_s"],
                move["copy_s"],
                move["keys_per_s"],
                round(move["export_bytes"] / 1e6, 2),
                round(move["import_bytes"] / 1e6, 2),
                move["export_mb_per_s"],
                ", ".join(f"{name} {cpu}" for name, cpu in move["cpu_s"].items()),
            ]
        ],
    )


def _markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    out = [
        "# Torua benchmarks",
        "",
        f"`{results['command']}` - {results['started']} - {results['duration_s']:.0f} s"
        f"{' (quick)' if results['quick'] else ''}",
        "",
    ]
    out += _table(["machine", ""], [[k, v] for k, v in machine.items()])
    out += ["## Targets", ""]
    out += _table(
        ["target", "measured", "required", "result"],
        [
            [t["target"], t["measured"], t["required"], _verdict(t["result"])]
            for t in results["targets"]
        ],
    )
    if results.get("throughput"):
        out += _throughput_md(results["throughput"])
        out += _profile_md(results["throughput"])
    if results.get("detection"):
        out += _detection_md(results["detection"], results["detection_bound_s"])
    if results.get("probe_lag"):
        out += _probe_md(results["probe_lag"])
    if results.get("failover"):
        out += _failover_md(results["failover"])
    if results.get("moves"):
        out += _moves_md(results["moves"])
    if results["problems"]:
        out += ["## Problems seen", ""] + [f"- {p}" for p in results["problems"]] + [""]
    return "\n".join(out)


def write_results(results: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    results["targets"] = targets(results)
    json_path, md_path = out / "results.json", out / "results.md"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    md_path.write_text(_markdown(results))
    return json_path, md_path
