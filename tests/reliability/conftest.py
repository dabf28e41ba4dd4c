"""The reliability suite's options and session-wide collectors.

`--kill-seeds N` (or `$RELIABILITY_SEEDS`) sets how many random `kill -9` moments are tried on SQLite
(default 10, what CI runs); `--kill-seeds-postgres N` (or `$RELIABILITY_SEEDS_POSTGRES`) the same on
PostgreSQL (default 3). Every fifth seed kills as the database is opened, the others during the run: more
seeds sample the same stages more often. Every `fetcher` process's output is collected for
`test_secrets.py`, which runs after every other test of the session, and the suite's figures are printed
at the end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.reliability.harness import Transcripts, environ_int, truncate

DEFAULT_KILL_SEEDS = 10
DEFAULT_POSTGRES_KILL_SEEDS = 3
SCAN_MODULE = "test_secrets.py"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reliability")
    group.addoption(
        "--kill-seeds",
        type=int,
        default=None,
        metavar="N",
        help=f"kill -9 moments tried on SQLite (default $RELIABILITY_SEEDS or {DEFAULT_KILL_SEEDS})",
    )
    group.addoption(
        "--kill-seeds-postgres",
        type=int,
        default=None,
        metavar="N",
        help="kill -9 moments tried on PostgreSQL "
        f"(default $RELIABILITY_SEEDS_POSTGRES or {DEFAULT_POSTGRES_KILL_SEEDS})",
    )


def kill_seeds(config: pytest.Config, backend: str) -> int:
    if backend == "sqlite":
        given = config.getoption("--kill-seeds")
        return given if given is not None else environ_int("RELIABILITY_SEEDS", DEFAULT_KILL_SEEDS)
    given = config.getoption("--kill-seeds-postgres")
    return given if given is not None else environ_int("RELIABILITY_SEEDS_POSTGRES", DEFAULT_POSTGRES_KILL_SEEDS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`kill_seed` runs once per seed: SQLite's seeds, then PostgreSQL's."""
    if "kill_seed" not in metafunc.fixturenames:
        return
    params = [
        pytest.param(("sqlite", seed), id=f"sqlite-{seed}") for seed in range(kill_seeds(metafunc.config, "sqlite"))
    ]
    params += [
        pytest.param(("postgres", seed), id=f"postgres-{seed}", marks=pytest.mark.postgres)
        for seed in range(kill_seeds(metafunc.config, "postgres"))
    ]
    metafunc.parametrize("kill_seed", params)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The secrets scan reads what every other test made, so it runs last whatever the order plugins chose."""
    scan = [item for item in items if item.path.name == SCAN_MODULE]
    items[:] = [item for item in items if item.path.name != SCAN_MODULE] + scan


@dataclass
class Figures:
    """What the suite did, for the summary at the end of the session."""

    faults: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)  # by the stage the killed run had reached
    resumed: int = 0
    days_compared: int = 0
    connections_terminated: int = 0


_FIGURES = Figures()
_TRANSCRIPTS = Transcripts()


@pytest.fixture(scope="session")
def figures() -> Figures:
    return _FIGURES


@pytest.fixture(scope="session")
def transcripts() -> Transcripts:
    return _TRANSCRIPTS


@pytest.fixture
def reliability_postgres(postgres_url: str, transcripts: Transcripts) -> Iterator[str]:
    """The session's PostgreSQL database, emptied; scanned for secrets when the test ends, before others empty it."""
    truncate(postgres_url)
    yield postgres_url
    transcripts.scan_database(postgres_url)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    f, write = _FIGURES, terminalreporter.write_line
    if not (f.faults or f.kills):
        return
    terminalreporter.section("reliability figures")
    write(f"faults injected: {sum(f.faults.values())} of {len(f.faults)} kinds")
    write(
        f"runs killed with SIGKILL: {sum(f.kills.values())}, by the stage they had reached: "
        f"{', '.join(f'{stage} {n}' for stage, n in sorted(f.kills.items()))}"
    )
    write(f"killed runs resumed to the simulator's exact truth: {f.resumed}")
    write(f"database connections terminated: {f.connections_terminated}")
    write(
        f"tenant-days compared with the simulator's truth: {f.days_compared} (one missing, extra or different "
        "fails its test)"
    )
    write(
        f"fetcher processes whose every output line was scanned for secrets: {len(_TRANSCRIPTS.entries)}; "
        f"databases scanned: {_TRANSCRIPTS.databases_scanned}"
    )
