"""Developer and CI sessions: ``nox`` runs tests, e2e and lint; ``nox -s NAME`` one.

Every session builds its own venv (stdlib ``venv``: uv may not be installed)
with the interpreter running nox, and reuses it on later runs. Test
dependencies come from ``[dependency-groups] test`` in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.needs_version = ">=2025.10.14"  # nox.options.download_python appeared there
nox.options.reuse_venv = "yes"
nox.options.default_venv_backend = "venv"
nox.options.download_python = "never"  # no interpreter can be downloaded on our machines
nox.options.sessions = ["tests", "e2e", "lint"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
TEST_DEPS = nox.project.dependency_groups(PYPROJECT, "test")
LINTED = ["torua", "tests", "examples", "noxfile.py"]


def install_with_tests(session: nox.Session) -> None:
    session.install("-e", ".", *TEST_DEPS)


@nox.session(python=None)
def tests(session: nox.Session) -> None:
    """Unit, property and in-process cluster tests (everything but e2e)."""
    install_with_tests(session)
    session.run(
        "pytest", "-m", "not e2e and not faults and not jepsen and not sim", *session.posargs
    )


@nox.session(python=None)
def e2e(session: nox.Session) -> None:
    """Process-level tests: real coordinator and node processes on loopback."""
    install_with_tests(session)
    session.run("pytest", "-m", "e2e", *session.posargs)


@nox.session(python=None)
def faults(session: nox.Session) -> None:
    """Fault injection under load (TORUA_FAULT_SECONDS, default 60): SIGSTOP/SIGKILL/restart."""
    install_with_tests(session)
    session.run("pytest", "-m", "faults", "-s", *session.posargs)


@nox.session(python=None, default=False)
def jepsen(session: nox.Session) -> None:
    """Linearizability under a seeded nemesis (about a minute by default).

    ``nox -s jepsen -- --seconds 300 --seed 7``; ``-- --help`` lists the options
    (R=1, --memory nodes, a subset of fault kinds). Exits 1 on a violation. Clock
    faults need libfaketime (Debian package faketime), installed here when missing.
    """
    install_with_tests(session)
    session.run(
        "bash",
        "-c",
        "command -v faketime || (apt-get update -qq && apt-get install -y -qq faketime)",
        external=True,
    )
    session.run("python", "-m", "tests.jepsen", *session.posargs)


@nox.session(python=None)
def sim(session: nox.Session) -> None:
    """The whole cluster in one deterministic simulation (docs/simulation.md).

    Without arguments: the simulator's own tests (a seed replays byte for byte;
    a planted bug is found), then the CI block of 200 seeds of 60 simulated
    seconds plus every seed in tests/sim/regressions.txt and known_failures.txt
    (known Torua bugs: reported, not counted), on two workers.
    ``nox -s sim -- --seeds N [--start S] [--hours H]`` runs just those seeds;
    ``-- --replay SEED`` replays one and prints its history.
    """
    install_with_tests(session)
    if session.posargs:
        session.run("python", "-m", "tests.sim", *session.posargs)
        return
    session.run("pytest", "-m", "sim", "tests/sim")
    session.run("python", "-m", "tests.sim", "--seeds", "200", "--seconds", "60")


@nox.session(python=None)
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and the import layering (import-linter).

    The layering contracts are in pyproject.toml ``[tool.importlinter]``.
    """
    session.install("ruff", "import-linter")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)
    session.run("lint-imports")


@nox.session(python=None)
def typecheck(session: nox.Session) -> None:
    """mypy over the package."""
    session.install("-e", ".", "mypy")
    session.run("mypy", "torua")


@nox.session(python=None, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks, when torua.bench exists; not part of the default run.

    ``nox -s bench -- --quick`` for short runs; results in ./bench-results/;
    ``-- --profile`` adds py-spy flame graphs and their top frames in bench/results/.
    """
    if not (Path("torua/bench").is_dir() or Path("torua/bench.py").is_file()):
        session.skip("torua.bench does not exist yet: no benchmarks to run")
    install_with_tests(session)
    session.install("py-spy")  # the flame graphs of --profile; only the bench needs it
    # wrk is the external load generator and etcd serves the failover section
    # (Debian packages); install them when missing
    session.run(
        "bash",
        "-c",
        "command -v wrk && command -v etcd || "
        "(apt-get update -qq && apt-get install -y -qq wrk etcd-server)",
        external=True,
    )
    session.run("python", "-m", "torua.bench", *session.posargs)
