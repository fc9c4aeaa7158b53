"""The benchmark's targets: ratios measured within one run, and their verdicts.

The targets (from the data-path and benchmarks issues) are ratios within one
run, so a slow or busy machine moves both sides of each ratio together.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["ceiling_ratio", "find_run", "fmt", "kept_up", "targets"]

NODE_GET_CEILING = 0.5  # a node's direct GET against the ceiling server
COORDINATOR_GET_CEILING = 0.17  # GET through the coordinator against the ceiling
DURABLE_PUT_RATIO = 0.5
BULK_KEYS_PER_S = {"R=2 durable": 50_000}
BULK_KEYS_PER_S_DEFAULT = 10_000
P99_MS = 20.0  # every row at c=32
PROBE_P99_MS = 50.0
PROBE_CPU_CORES = 0.5


def fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def find_run(section: dict[str, Any], target: str, method: str, c: int) -> dict[str, Any] | None:
    for run in section["runs"]:
        if run["target"].startswith(target) and run["method"] == method and run["concurrency"] == c:
            return run
    return None


def ceiling_ratio(section: dict[str, Any], run: dict[str, Any]) -> float | None:
    """``run``'s req/s over the ceiling server's, same method and concurrency, same run."""
    ceiling = find_run(section, "ceiling", run["method"], run["concurrency"])
    if ceiling is None or not ceiling["rps"]:
        return None
    return float(run["rps"]) / float(ceiling["rps"])


def kept_up(variant: dict[str, Any], section: dict[str, Any]) -> bool:
    """Finished within its time cap and ran at least 95% of the scheduled probes."""
    due = section["nodes"] / section["interval_s"]
    rate = variant["probes_per_s"]
    return bool(variant["finished"] and rate is not None and rate >= 0.95 * due)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target: what, measured, required, PASS/FAIL."""
    rows: list[dict[str, Any]] = []

    def add(what: str, measured: str, required: str, ok: bool | None) -> None:
        rows.append({"target": what, "measured": measured, "required": required, "result": ok})

    by_config = {s["config"]: s for s in results.get("throughput", []) if s.get("targets", True)}
    for name, section in by_config.items():
        ceiling = find_run(section, "ceiling", "GET", 32)
        for target, required in (
            ("node", NODE_GET_CEILING),
            ("coordinator", COORDINATOR_GET_CEILING),
        ):
            run = find_run(section, target, "GET", 32)
            if run and ceiling and ceiling["rps"]:
                ratio = run["rps"] / ceiling["rps"]
                add(
                    f"{target} GET c=32 / ceiling GET c=32 ({name})",
                    f"{ratio:.2f} ({run['rps']:.0f} / {ceiling['rps']:.0f} req/s)",
                    f">= {required}",
                    ratio >= required,
                )
        slow = [r for r in section["runs"] if r["concurrency"] == 32 and r["target"] != "ceiling"]
        if slow:
            worst = max(slow, key=lambda r: r["p99_ms"])
            add(
                f"p99 of every c=32 row ({name})",
                f"worst {worst['p99_ms']:.1f} ms ({worst['target']} {worst['method']})",
                f"< {P99_MS:g} ms",
                worst["p99_ms"] < P99_MS,
            )
    memory, durable = by_config.get("R=1 memory"), by_config.get("R=2 durable")
    if memory and durable:
        for c in (32, 1):
            a, b = (
                find_run(durable, "coordinator", "PUT", c),
                find_run(memory, "coordinator", "PUT", c),
            )
            if a and b and b["rps"]:
                ratio = a["rps"] / b["rps"]
                add(
                    f"R=2 durable PUT / R=1 memory PUT, coordinator c={c}",
                    f"{ratio:.2f} ({a['rps']:.0f} / {b['rps']:.0f} req/s)",
                    f">= {DURABLE_PUT_RATIO}",
                    ratio >= DURABLE_PUT_RATIO,
                )
    for name, section in by_config.items():
        floor = BULK_KEYS_PER_S.get(name, BULK_KEYS_PER_S_DEFAULT)
        for op in ("put", "get") if section["bulk"] else ():
            rate = section["bulk"][op]["keys_per_s"]
            add(
                f"bulk {op} keys/s through the coordinator ({name})",
                f"{rate:,.0f}",
                f">= {floor:,}",
                rate >= floor,
            )
    detection = {(d["n"], d["k"]): d for d in results.get("detection", [])}
    base = detection.get((20, 1))
    interval = results.get("detection_interval_s", 2.0)
    for k in (10, 5):
        case = detection.get((20, k))
        if base and case and base["max_s"] is not None and case["max_s"] is not None:
            delta = case["max_s"] - base["max_s"]
            add(
                f"detection max, 20:{k} minus 20:1",
                f"{delta:+.2f} s ({case['max_s']:.2f} vs {base['max_s']:.2f} s)",
                f"<= {interval:g} s (one interval)",
                delta <= interval and not case["undetected"],
            )
    if detection:
        false = sorted({n for d in detection.values() for n in d["false_unhealthy"]})
        add(
            "healthy nodes marked unhealthy during detection runs",
            ", ".join(false) if false else "none",
            "none",
            not false,
        )
    for variant in results.get("probe_lag", {}).get("variants", []):
        p99, cpu = variant["lag_p99_ms"], variant["cpu_cores"]
        ok = kept_up(variant, results["probe_lag"]) and p99 < PROBE_P99_MS and cpu < PROBE_CPU_CORES
        add(
            f"probe lag, 1,000 nodes at 1 s: {variant['variant']}",
            f"p99 {fmt(p99)} ms, {fmt(cpu, 2)} cores",
            f"p99 < {PROBE_P99_MS:g} ms, < {PROBE_CPU_CORES} cores",
            ok,
        )
    return rows
