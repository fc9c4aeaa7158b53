"""``python -m torua.bench [--quick] [--out DIR] [--only SECTION,...] [--profile]``.

Runs each section in turn (a failing section is recorded and the others still
run), rewrites results.json and results.md after every section, and prints a
line per measurement as it goes.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from torua.bench import detection, failover, moves, probelag, throughput
from torua.bench.profile import summary_text
from torua.bench.report import write_results
from torua.bench.targets import kept_up
from torua.bench.wrk import require_wrk

SECTIONS = ("throughput", "detection", "probes", "failover", "moves")
BUSY_MACHINE = 0.25  # cores used by other jobs beyond which a run is flagged


def _log(line: str) -> None:
    print(line, flush=True)


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' (uncommitted changes)' if dirty else ''}" if head else "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _machine(wrk: str) -> dict[str, Any]:
    wrk_version = subprocess.run(
        [wrk, "-v"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.splitlines()
    return {
        "nproc": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": wrk_version[0].split(" Copyright")[0] if wrk_version else "unknown",
        "torua commit": _git(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _problems(results: dict[str, Any]) -> list[str]:
    """Errors under load, stderr ERROR lines, undetected nodes, monitors that drowned."""
    found = list(results["section_errors"])
    for section in results.get("throughput", []):
        for r in section["runs"]:
            bad = r["non_2xx"] + r["socket_errors"] + r["timeouts"]
            if bad:
                found.append(
                    f"{section['config']} {r['target']} {r['method']} "
                    f"c={r['concurrency']}: {r['non_2xx']} non-2xx, "
                    f"{r['socket_errors']} socket errors, {r['timeouts']} timeouts"
                )
        for op in ("put", "get") if section["bulk"] else ():
            result = section["bulk"][op]
            if result["errors"] or result["timed_out"]:
                found.append(
                    f"{section['config']} bulk {op}: errors {result['errors']}"
                    f"{', timed out' if result['timed_out'] else ''}"
                )
        for name, problem in section["stderr_tails"].items():
            found.append(
                f"{section['config']} {name} logged {problem['count']} ERROR lines, "
                f"last: {problem['last'][-1][:200]}"
            )
    busy = [
        (f"{section['config']} {r['target']} {r['method']} c={r['concurrency']}", other)
        for section in results.get("throughput", [])
        for r in section["runs"]
        if (other := r.get("cpu_cores", {}).get("other", 0.0)) > BUSY_MACHINE
    ]
    if busy:
        found.append(
            f"{len(busy)} wrk runs shared the machine with over {BUSY_MACHINE} cores of other load "
            f"(up to {max(o for _, o in busy):.2f} cores): their absolute numbers are low"
        )
    for v in results.get("probe_lag", {}).get("variants", []):
        if v.get("other_cpu_cores", 0.0) > BUSY_MACHINE:
            found.append(
                f"probe lag {v['variant']}: {v['other_cpu_cores']:.2f} cores of other load "
                "on the machine during the window"
            )
    for d in results.get("detection", []):
        case = f"detection {d['n']}:{d['k']}"
        if d["undetected"]:
            found.append(f"{case}: {d['undetected']} hung nodes never reported unhealthy")
        if not d["green_before"]:
            found.append(f"{case}: cluster not green before the nodes were hung")
        if d["poll_errors"]:
            found.append(f"{case}: {d['poll_errors']} GET /nodes polls failed")
        if d["coordinator_errors"]:
            found.append(
                f"{case}: coordinator logged {d['coordinator_errors']['count']} "
                f"ERROR lines, last: {d['coordinator_errors']['last'][-1][:200]}"
            )
    for v in results.get("probe_lag", {}).get("variants", []):
        if not v["finished"]:
            found.append(
                f"probe lag {v['variant']}: stopped at its time cap "
                f"({v['watched']} of 1,000 nodes watched)"
            )
        elif not kept_up(v, results["probe_lag"]):
            found.append(
                f"probe lag {v['variant']}: the monitor did not keep up "
                f"({v['probes_per_s']} of 1,000 probes/s ran)"
            )
        if v["marked_unhealthy"]:
            found.append(
                f"probe lag {v['variant']}: {v['marked_unhealthy']} healthy simulated "
                "nodes were marked unhealthy (the prober's own overload)"
            )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m torua.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (about 5 minutes)")
    parser.add_argument("--out", default="bench-results", help="output directory")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections: {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also py-spy flame graphs of a node and the coordinator under GET load "
        "(throughput section), with their top frames",
    )
    parser.add_argument(
        "--profile-out",
        default="bench/results",
        help="where the flame graphs and profile-top.txt go (default bench/results)",
    )
    parser.add_argument(
        "--rows",
        default=None,
        help="throughput: only these runs, e.g. GET:32,PUT:32,bulk (default all)",
    )
    parser.add_argument(
        "--configs",
        default=None,
        help="throughput: only the configurations whose name contains one of these, "
        "e.g. memory or durable (default all)",
    )
    args = parser.parse_args(argv)
    rows = None if args.rows is None else frozenset(r.strip() for r in args.rows.split(","))
    picked = None if args.configs is None else [c.strip() for c in args.configs.split(",")]
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if not only <= set(SECTIONS):
        parser.error(f"--only takes {', '.join(SECTIONS)}")
    wrk = require_wrk()
    out = Path(args.out)
    seconds, bulk_batches = (2.0, 20) if args.quick else (5.0, 100)
    warmup, window = (2.0, 6.0) if args.quick else (5.0, 20.0)
    started = time.monotonic()
    results: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "torua.bench", *(argv or sys.argv[1:])]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": _machine(wrk),
        "section_errors": [],
        "problems": [],
        "duration_s": 0.0,
        "detection_interval_s": detection.INTERVAL,
        "detection_bound_s": detection.FAILURES * detection.INTERVAL + detection.TIMEOUT,
    }

    def section(name: str, key: str, run: Callable[[], Any]) -> None:
        """Run one section; a list result key collects one value per run."""
        if name.split(":")[0] not in only:
            return
        _log(f"== {name}")
        try:
            value = run()
            if isinstance(results.get(key), list):
                results[key].append(value)
            else:
                results[key] = value
        except Exception as exc:  # record it; the other sections still run
            _log(traceback.format_exc())
            results["section_errors"].append(f"{name}: {type(exc).__name__}: {exc}"[:500])
        results["duration_s"] = time.monotonic() - started
        results["machine"]["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        results["problems"] = _problems(results)
        write_results(results, out)

    results["throughput"], results["detection"] = [], []
    for config in throughput.CONFIGS:
        if picked is not None and not any(p in config.name for p in picked):
            continue
        section(
            f"throughput:{config.name}",
            "throughput",
            functools.partial(
                throughput.run_config,
                config,
                seconds=seconds,
                bulk_batches=bulk_batches,
                log=_log,
                profile_to=Path(args.profile_out) if args.profile else None,
                profile_seconds=5.0 if args.quick else 10.0,
                rows=rows,
            ),
        )
    for n, k in detection.CASES:
        section(
            f"detection:{n}:{k}", "detection", functools.partial(detection.run_case, n, k, log=_log)
        )
    section(
        "probes",
        "probe_lag",
        functools.partial(probelag.run_probe_lag, warmup=warmup, window=window, log=_log),
    )
    section(
        "failover",
        "failover",
        functools.partial(failover.run_failover, 3 if args.quick else 10, "10s", log=_log),
    )
    section("moves", "moves", functools.partial(moves.run_moves, log=_log))
    json_path, md_path = write_results(results, out)
    _log(f"wrote {json_path} and {md_path} in {time.monotonic() - started:.0f} s")
    profiles = [p for s in results["throughput"] for p in s.get("profiles", [])]
    if profiles:
        top_path = Path(args.profile_out) / "profile-top.txt"
        top_path.write_text(summary_text(profiles))
        _log(f"wrote flame graphs and {top_path}")
    failed = [t["target"] for t in results["targets"] if t["result"] is False]
    _log(f"targets: {len(results['targets']) - len(failed)} met, {len(failed)} not met")
    return 1 if results["section_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
