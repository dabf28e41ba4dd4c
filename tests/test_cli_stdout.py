"""Standard output that cannot be written: one line and exit 3, as an `--output` file; standard output whose
reader went away: nothing said, exit 141, as git (fetcher.cli.context)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

from tests.test_cli import SECRET, write_config


@contextmanager
def full_disk() -> Iterator[IO[bytes]]:
    with open("/dev/full", "wb") as sink:
        yield sink


@contextmanager
def closed_pipe() -> Iterator[int]:
    """A pipe whose reader is gone (`fetcher report | head -1` once head has quit): writes fail with EPIPE."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        yield writer
    finally:
        os.close(writer)


@pytest.mark.parametrize("sink", [full_disk, closed_pipe], ids=["disk-full", "closed-pipe"])
@pytest.mark.parametrize(
    "command", [["status"], ["report"], ["report", "--format", "csv"], ["-q", "metrics"]], ids=" ".join
)
def test_standard_output_that_cannot_be_written_is_one_line_and_exit_3_or_silence_and_141(
    tmp_path: Path, migrated_then: Callable[..., str], sink: Callable[[], object], command: list[str]
) -> None:
    """No traceback, no "Exception ignored" at exit: the cause, naming standard output, as `--output` says it;
    a closed pipe (`fetcher report | head -1`) nothing at all, exit 128 + SIGPIPE as a shell reports git's."""
    config = write_config(tmp_path)
    migrated_then("sqlite")

    with sink() as stdout:  # type: ignore[attr-defined]
        done = fetcher("--config", str(config), *command, stdout=stdout, cwd=tmp_path)

    assert (done.returncode, done.stderr) == EXPECTED[sink]


EXPECTED: dict[object, tuple[int, str]] = {
    full_disk: (3, "error: cannot write standard output: No space left on device\n"),
    closed_pipe: (141, ""),
}


def fetcher(*args: str, stdout: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`fetcher ARGS` with standard output on `stdout`, its standard error kept; run in `cwd` with the secret set."""
    return subprocess.run(
        [sys.executable, "-m", "fetcher", *args],
        stdout=stdout,  # type: ignore[arg-type]
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "SECRET": SECRET},
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("sink", [full_disk, closed_pipe], ids=["disk-full", "closed-pipe"])
@pytest.mark.parametrize(
    "args",
    [["--version"], ["--help"], ["report", "--help"], ["tenants", "--help"], ["tenants", "discover", "-h"]],
    ids=" ".join,
)
def test_help_and_version_that_cannot_be_written_end_as_every_command(
    sink: Callable[[], object], args: list[str]
) -> None:
    """Written by click before any command runs, still one line and exit 3 (silence and 141), no traceback."""
    with sink() as stdout:  # type: ignore[attr-defined]
        done = fetcher(*args, stdout=stdout)

    assert (done.returncode, done.stderr) == EXPECTED[sink]


def test_with_json_logs_a_version_that_cannot_be_written_is_one_json_record() -> None:
    with full_disk() as stdout:
        done = fetcher("--log-format", "json", "--version", stdout=stdout)

    record = json.loads(done.stderr)
    assert (done.returncode, record["level"], record["error_kind"], record["message"]) == (
        3,
        "error",
        "output_unwritable",
        "cannot write standard output: No space left on device",
    )


@pytest.mark.parametrize("sink", [full_disk, closed_pipe], ids=["disk-full", "closed-pipe"])
@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["report", "--bogus"], 2),
        (["nosuch"], 2),
        (["--config", "/nonexistent/fetcher.toml", "report"], 2),
        (["--log-format", "json", "--config", "/nonexistent/fetcher.toml", "report"], 2),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else str(value),
)
def test_standard_error_that_cannot_be_written_changes_no_exit_status(
    sink: Callable[[], object], args: list[str], code: int
) -> None:
    """A usage or configuration error is 2 with `2>/dev/full` or `2>&1 | true` too (the error line's write
    raised, and the process ended with 1, "some tenants failed")."""
    with sink() as stderr:  # type: ignore[attr-defined]
        done = subprocess.run(
            [sys.executable, "-m", "fetcher", *args],
            stdout=subprocess.DEVNULL,
            stderr=stderr,  # type: ignore[arg-type]
            timeout=120,
            check=False,
        )

    assert done.returncode == code


@pytest.mark.parametrize("command", [["report"], ["-q", "metrics"]], ids=" ".join)
@pytest.mark.parametrize("path", ["/dev/stdout", "/proc/self/fd/1"])
def test_output_to_standard_output_by_name_whose_reader_went_away_is_silence_and_141(
    tmp_path: Path, migrated_then: Callable[..., str], command: list[str], path: str
) -> None:
    """`--output /dev/stdout | true` said `error: cannot write /dev/stdout: Broken pipe`, exit 3, where plain
    standard output is silence and 141."""
    config = write_config(tmp_path)
    migrated_then("sqlite")

    with closed_pipe() as stdout:
        done = fetcher("--config", str(config), *command, "--output", path, stdout=stdout, cwd=tmp_path)

    assert (done.returncode, done.stderr) == (141, "")
