"""Standard output that cannot be written: one line and exit 3, as an `--output` file (fetcher.cli.context)."""

from __future__ import annotations

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
def test_standard_output_that_cannot_be_written_is_one_line_and_exit_3(
    tmp_path: Path, migrated_then: Callable[..., str], sink: Callable[[], object], command: list[str]
) -> None:
    """No traceback, no "Exception ignored" at exit: the cause, naming standard output, as `--output` says it."""
    config = write_config(tmp_path)
    migrated_then("sqlite")

    with sink() as stdout:  # type: ignore[attr-defined]
        done = subprocess.run(
            [sys.executable, "-m", "fetcher", "--config", str(config), *command],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "SECRET": SECRET},
            timeout=120,
            check=False,
        )

    cause = "No space left on device" if sink is full_disk else "Broken pipe"
    assert (done.returncode, done.stderr) == (3, f"error: cannot write standard output: {cause}\n")
