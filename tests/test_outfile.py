"""The files commands write (`fetcher.outfile`): a regular file replaced whole, anything else written through."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fetcher.errors import OutputUnwritable
from fetcher.outfile import replace_atomically, write_through
from tests.test_cli import SECRET, write_config


def test_the_file_is_replaced_whole_and_no_temporary_is_left(tmp_path: Path) -> None:
    target = tmp_path / "securescore.prom"
    target.write_text("old\n")
    replace_atomically(target, b"new\n# EOF\n")
    assert ([p.name for p in tmp_path.iterdir()], target.read_bytes(), oct(target.stat().st_mode & 0o777)) == (
        ["securescore.prom"],
        b"new\n# EOF\n",
        "0o644",
    )


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664], ids=oct)
def test_a_replaced_file_keeps_its_mode_and_through_a_link_its_target_s(tmp_path: Path, mode: int) -> None:
    """A tenants file kept 0600 or group-readable stays so (the replacement was 0644, whatever the file was)."""
    target = tmp_path / "tenants.csv"
    target.write_bytes(b"old\n")
    os.chmod(target, mode)
    link = tmp_path / "link.csv"
    link.symlink_to(target)

    replace_atomically(target, b"new\n")
    replace_atomically(link, b"newer\n")

    assert (target.stat().st_mode & 0o7777, target.read_bytes()) == (mode, b"newer\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another owner needs root")
def test_a_file_replaced_as_root_keeps_its_owner_and_group(tmp_path: Path) -> None:
    """A group-readable file of another user's, rewritten by root's cron, stays theirs (it became root's)."""
    target = tmp_path / "tenants.csv"
    target.write_bytes(b"old\n")
    os.chown(target, 4321, 4322)
    os.chmod(target, 0o640)

    replace_atomically(target, b"new\n")

    info = target.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (4321, 4322, 0o640)


def test_a_new_file_is_0644_whatever_the_umask(tmp_path: Path) -> None:
    """node_exporter's collector runs as another user: a new `.prom` file is readable by it."""
    previous = os.umask(0o077)
    try:
        replace_atomically(tmp_path / "securescore.prom", b"# EOF\n")
    finally:
        os.umask(previous)

    assert (tmp_path / "securescore.prom").stat().st_mode & 0o7777 == 0o644


def test_a_file_in_a_missing_folder_is_refused_as_this_machine_s_problem_exit_3(tmp_path: Path) -> None:
    """The textfile collector's folder missing is the host's state, not a usage error (it was exit 2)."""
    target = tmp_path / "missing" / "securescore.prom"

    with pytest.raises(OutputUnwritable) as refused:
        replace_atomically(target, b"# EOF\n")

    assert (str(refused.value), refused.value.exit_code) == (f"cannot write {target}: No such file or directory", 3)


def test_a_link_keeps_being_a_link_and_its_target_is_replaced(tmp_path: Path) -> None:
    """A link into the collector's folder (or out of it) stays a link; the file it names gets the text."""
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "securescore.prom"
    target.write_bytes(b"old\n")
    link = tmp_path / "securescore.prom"
    link.symlink_to(target)

    replace_atomically(link, b"new\n")

    assert (link.is_symlink(), os.readlink(link), target.read_bytes()) == (True, str(target), b"new\n")
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["securescore.prom"]


@pytest.mark.parametrize("write", [replace_atomically, write_through], ids=["replace", "through"])
def test_a_fifo_is_written_through_and_stays_a_fifo(tmp_path: Path, write: object) -> None:
    fifo = tmp_path / "metrics.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader waiting, as `cat fifo` would be
    try:
        write(fifo, b"# EOF\n")  # type: ignore[operator]
        got = os.read(reader, 100)
    finally:
        os.close(reader)
    assert (fifo.is_fifo(), got) == (True, b"# EOF\n")


def test_a_device_is_written_through_not_replaced(tmp_path: Path) -> None:
    """`/dev/null` reached by a link (so a failing version replaces only the link, never the device)."""
    link = tmp_path / "null"
    link.symlink_to("/dev/null")

    replace_atomically(link, b"# EOF\n")

    assert (link.is_symlink(), Path("/dev/null").is_char_device(), list(tmp_path.iterdir())) == (True, True, [link])


def _metrics(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = write_config(tmp_path)
    command = [sys.executable, "-m", "fetcher", "--config", str(config)]
    env = {**os.environ, "SECRET": SECRET}
    subprocess.run([*command, "migrate"], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)
    return subprocess.run(
        [*command, *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=120
    )


def test_metrics_output_to_a_full_device_is_one_line_and_exit_3_as_report_s(tmp_path: Path) -> None:
    """`metrics --output /dev/full` (here through a link): the device is written, the disk-full error said; it
    was exit 0 with the device node (or the link) replaced by a regular file."""
    link = tmp_path / "full"
    link.symlink_to("/dev/full")

    done = _metrics(tmp_path, "metrics", "--output", str(link))

    assert (done.returncode, done.stderr, link.is_symlink()) == (
        3,
        f"error: cannot write {link}: No space left on device\n",
        True,
    )


@pytest.mark.parametrize("command", [["metrics", "--output"], ["report", "--output"], ["report", "--html"]])
def test_an_empty_file_name_is_a_usage_error(tmp_path: Path, command: list[str]) -> None:
    """It was the current folder: `cannot write .: Device or resource busy` (metrics) or `Is a directory`, exit 3."""
    done = _metrics(tmp_path, *command, "")

    assert done.returncode == 2
    assert "an empty file name" in done.stderr
