"""Flame graphs of the processes under load, with py-spy, and their top frames.

py-spy samples a running Python process from outside (it reads the
process's memory, so the process needs no change and no restart); the bench
runs it on the coordinator and a node while wrk sends GETs, writes an SVG
flame graph per process, and summarises py-spy's collapsed stacks as the
functions with the most *self* time: where the CPU actually goes, which the
flame graph shows as the widest tops of its towers.

py-spy comes from PyPI (``nox -s bench`` installs it). It needs to attach to
another process (ptrace rights: root, or ``kernel.yama.ptrace_scope=0``);
when it is missing or cannot attach, the bench says why and carries on.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Recording", "find_py_spy", "start_recording", "top_frames"]

TOP = 15
RATE = 250  # samples per second: enough for a few seconds of load, little overhead
_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME_LINE = re.compile(r":\d+\)$")


def find_py_spy() -> str | None:
    """py-spy on PATH, or next to this interpreter (a venv not activated)."""
    found = shutil.which("py-spy")
    if found:
        return found
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else None


def _frame(frame: str) -> str:
    """``fn (path/to/file.py:12)`` -> ``fn (file.py)``: one entry per function."""
    name, _, where = frame.partition(" (")
    if not where:
        return frame
    file = _FRAME_LINE.sub(")", "(" + where)
    return f"{name} ({file[1:-1].rsplit('/', 1)[-1]})"


def top_frames(collapsed: str, top: int = TOP) -> tuple[int, list[tuple[str, int]]]:
    """(samples, the ``top`` functions by self samples) from collapsed stacks.

    Each collapsed line is ``outer;...;inner COUNT``; the innermost frame is
    where that CPU time was spent.
    """
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        stack, count = match.group(1), int(match.group(2))
        total += count
        own[_frame(stack.rsplit(";", 1)[-1])] += count
    return total, own.most_common(top)


@dataclass
class Recording:
    """Two py-spy processes on one pid: one writes the SVG, one the collapsed stacks."""

    name: str
    svg: Path
    raw: Path
    procs: list[subprocess.Popen[bytes]]
    errors: list[Path]

    def finish(self, within: float) -> dict[str, Any]:
        """Wait for py-spy to end; the result for results.json (with ``error`` on failure)."""
        failed = []
        for proc, err in zip(self.procs, self.errors, strict=True):
            try:
                code = proc.wait(timeout=within)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = -9
            if code != 0:
                failed.append(f"exit {code}: {err.read_text(errors='replace').strip()[-300:]}")
            err.unlink(missing_ok=True)
        result: dict[str, Any] = {"process": self.name, "svg": str(self.svg)}
        if not self.raw.exists():
            result["error"] = "; ".join(failed) or "py-spy wrote no samples"
            return result
        samples, frames = top_frames(self.raw.read_text(errors="replace"))
        result["samples"] = samples
        result["top"] = [
            {"function": name, "self_pct": round(100.0 * count / samples, 1) if samples else 0.0}
            for name, count in frames
        ]
        if failed:
            result["error"] = "; ".join(failed)
        return result


def start_recording(
    py_spy: str, name: str, pid: int, seconds: float, out: Path, stem: str
) -> Recording:
    """Start sampling ``pid`` for ``seconds`` (returns at once; :meth:`Recording.finish`)."""
    out.mkdir(parents=True, exist_ok=True)
    svg, raw = out / f"{stem}.svg", out / f"{stem}.collapsed.txt"
    procs, errors = [], []
    for fmt, target in (("flamegraph", svg), ("raw", raw)):
        target.unlink(missing_ok=True)
        err = out / f".{stem}.{fmt}.stderr"
        with err.open("wb") as stderr:
            procs.append(
                subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(max(1, round(seconds))),
                        "--rate",
                        str(RATE),
                        "--nonblocking",
                        "--format",
                        fmt,
                        "--output",
                        str(target),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            )
        errors.append(err)
    return Recording(name, svg, raw, procs, errors)


def summary_text(profiles: list[dict[str, Any]]) -> str:
    """The top frames of every recording, as plain text (bench/results/profile-top.txt)."""
    lines = []
    for p in profiles:
        lines.append(f"== {p['config']}, load: {p['load']}, process: {p['process']}")
        if "top" in p:
            lines.append(f"   {p.get('samples', 0)} samples; self time by function:")
            lines += [f"   {t['self_pct']:5.1f}%  {t['function']}" for t in p["top"]]
        if "error" in p:
            lines.append(f"   py-spy: {p['error']}")
        lines.append("")
    return "\n".join(lines)
