"""``python -m tests.sim --seeds N [--start S] [--hours H | --seconds T]``

Runs N seeds (from S) plus every seed in ``regressions.txt`` and
``known_failures.txt`` (seeds a Torua bug still fails: reported, not counted),
on two worker
processes by default; prints simulated hours per wall second; for each
failing seed prints the seed, the fault log, the shortest failing history and
the last warnings Torua logged, and exits 1. ``--replay SEED`` runs one seed
in this process and prints its whole history.

Set-iteration order of strings depends on ``PYTHONHASHSEED``; a seed must
replay the same on every run, so the runner re-executes itself with it fixed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import trio

from .plants import PLANTS
from .run import SeedResult, SimConfig, run_seed

HASH_SEED = "0"
REGRESSIONS = Path(__file__).with_name("regressions.txt")
KNOWN = Path(__file__).with_name("known_failures.txt")


def seeds_in(path: Path) -> list[int]:
    """One seed a line; ``#`` starts a comment."""
    seeds = []
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            seeds.append(int(text))
    return seeds


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__)
    parser.add_argument("--seeds", type=int, default=200, help="how many seeds (default 200)")
    parser.add_argument("--start", type=int, default=0, help="the first seed (default 0)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, default=60.0, help="simulated seconds a seed")
    length.add_argument("--hours", type=float, help="simulated hours a seed")
    parser.add_argument(
        "--coordinators",
        default="mix",
        help="1, or N > 1 for HA coordinators on the fake etcd, or mix (the default: "
        "every fourth seed runs three HA coordinators)",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--plant", choices=sorted(PLANTS), help="run with a bug planted")
    parser.add_argument(
        "--no-regressions",
        action="store_true",
        help="skip regressions.txt and known_failures.txt (seeds in the range still run)",
    )
    parser.add_argument("--replay", type=int, help="run one seed here, print its history")
    parser.add_argument("--dump", type=Path, help="with --replay: write the history here")
    parser.add_argument(
        "--log", action="store_true", help="with --replay: Torua's log (INFO) on stderr"
    )
    parser.add_argument("--dump-dir", type=Path, help="write each seed's history to DIR/SEED.txt")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    if os.environ.get("PYTHONHASHSEED") != HASH_SEED:
        os.environ["PYTHONHASHSEED"] = HASH_SEED
        os.execv(sys.executable, [sys.executable, "-m", "tests.sim", *argv])
    args = parse(argv)
    seconds = args.hours * 3600 if args.hours is not None else args.seconds

    def config(seed: int) -> SimConfig:
        if args.coordinators == "mix":
            coordinators = 3 if seed % 4 == 3 else 1
        else:
            coordinators = int(args.coordinators)
        return SimConfig(seed, seconds=seconds, plant=args.plant, coordinators=coordinators)

    if args.replay is not None:
        if args.log:
            log_to_stderr()
        return replay(config(args.replay), args.dump)
    seeds = list(range(args.start, args.start + args.seeds))
    if not args.no_regressions:
        seeds += [s for s in seeds_in(REGRESSIONS) + seeds_in(KNOWN) if s not in seeds]
    known = set(seeds_in(KNOWN))  # a known failure in the range is still known
    configs = [config(seed) for seed in seeds]
    started = time.monotonic()
    failed: list[SeedResult] = []
    known_failed: list[int] = []
    simulated = cpu = 0.0
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        for done, result in enumerate(pool.map(quiet_run, configs, chunksize=1), 1):
            simulated += result.simulated
            cpu += result.cpu
            if args.dump_dir is not None:
                args.dump_dir.mkdir(parents=True, exist_ok=True)
                (args.dump_dir / f"{result.seed}.txt").write_bytes(result.history_bytes())
            if not result.ok and result.seed in known:
                known_failed.append(result.seed)
                print(f"seed {result.seed}: known failure (known_failures.txt)", flush=True)
            elif not result.ok:
                failed.append(result)
                print(report(result), flush=True)
            elif result.seed in known:
                print(
                    f"seed {result.seed} (known_failures.txt) passes now: "
                    "move it to regressions.txt"
                )
            if done % 10 == 0 or done == len(configs):
                wall = time.monotonic() - started
                print(
                    f"{done}/{len(configs)} seeds, {len(failed)} failed, "
                    f"{simulated / 3600:.2f} simulated hours in {wall:.0f}s wall: "
                    f"{simulated / 3600 / wall:.3f} simulated hours per wall second "
                    f"({simulated / wall:.1f} simulated seconds per wall second; "
                    f"{simulated / cpu:.1f} per CPU second)",
                    flush=True,
                )
    if known_failed:
        print(f"known failures (not counted): {' '.join(map(str, sorted(known_failed)))}")
    if failed:
        print(f"FAILED seeds: {' '.join(str(r.seed) for r in failed)}")
        return 1
    return 0


def quiet_run(config: SimConfig) -> SeedResult:
    return run_seed(config)


def report(result: SeedResult) -> str:
    lines = [f"=== seed {result.seed} FAILED (replay: python -m tests.sim --replay {result.seed})"]
    lines += [f"  {failure}" for failure in result.failures]
    lines.append("  fault log:")
    lines += [f"    {line}" for line in result.faults]
    if result.shortest:
        lines.append("  shortest failing history (the key's ops up to the first violation):")
        lines += [f"    {line}" for line in result.shortest]
    if result.warnings:
        lines.append("  last warnings logged:")
        lines += [f"    {line}" for line in result.warnings]
    return "\n".join(lines)


def log_to_stderr() -> None:
    """Every INFO line, stamped with simulated time (it may change how the seed
    schedules: log records allocate objects, and Trio orders some wake-ups by
    object identity)."""

    class Stamped(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                at = f"{trio.current_time():9.3f}"
            except RuntimeError:
                at = "        -"
            sys.stderr.write(f"{at} {record.name}: {record.getMessage()}\n")

    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(Stamped())


def replay(config: SimConfig, dump: Path | None) -> int:
    result = run_seed(config)
    text = result.history_bytes()
    if dump is not None:
        dump.write_bytes(text)
    else:
        sys.stdout.write(text.decode() + "\n")
    if not result.ok:
        print(report(result))
        return 1
    print(f"seed {config.seed} passed: {result.ops} ops in {result.simulated:.1f} simulated s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
