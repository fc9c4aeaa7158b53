"""``python -m tests.jepsen [--seconds S] [--seed N] ...``: exit 1 on a violation.

Exit status: 0 linearizable and healed, 1 a linearizability violation, 3 the
cluster did not heal or a key could not be read back (no violation seen).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import trio

from .cluster import FAKETIME_LIB, ClusterOptions
from .nemesis import FAULT_KINDS
from .runner import RunOptions, run


def parse(argv: list[str]) -> tuple[RunOptions, bool]:
    parser = argparse.ArgumentParser(prog="python -m tests.jepsen", description=__doc__)
    parser.add_argument("--seconds", type=float, default=40.0, help="fault phase length")
    parser.add_argument("--seed", type=int, default=11)  # jumps the clock both ways
    parser.add_argument("--clients", type=int, default=7)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--replicas", "-r", type=int, default=2)
    parser.add_argument("--memory", action="store_true", help="in-memory nodes")
    parser.add_argument(
        "--faults",
        default=",".join(FAULT_KINDS),
        help=f"comma-separated fault kinds (default all: {','.join(FAULT_KINDS)})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir even on success")
    args = parser.parse_args(argv)
    kinds = tuple(k for k in args.faults.split(",") if k)
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown:
        parser.error(f"unknown fault kinds: {sorted(unknown)}")
    if any("clock" in k for k in kinds) and not FAKETIME_LIB.exists():
        parser.error(f"{FAKETIME_LIB} is missing: apt-get install faketime, or drop clock faults")
    cluster = ClusterOptions(nodes=args.nodes, replicas=args.replicas, memory=args.memory)
    options = RunOptions(
        seed=args.seed,
        seconds=args.seconds,
        clients=args.clients,
        keys=args.keys,
        cluster=cluster,
        kinds=kinds,
    )
    return options, args.keep


def main(argv: list[str] | None = None) -> int:
    options, keep = parse(sys.argv[1:] if argv is None else argv)
    workdir = Path(tempfile.mkdtemp(prefix=f"torua-jepsen-{options.seed}-"))
    result = trio.run(run, options, workdir)
    print(result.report(), flush=True)
    if result.passed and not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"logs and data: {workdir}")
    if result.violations:
        return 1
    return 0 if result.passed else 3


if __name__ == "__main__":
    sys.exit(main())
