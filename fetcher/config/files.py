"""Reading a referenced file safely: a regular file of bounded size, checked on the open descriptor."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class FileProblem(Exception):
    """Why a referenced file was not read (its text is the reason, without the path)."""


def file_problem(info: os.stat_result, limit: int) -> str | None:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in kinds if test(info.st_mode)), "not a regular file")
        return f"it is {kind}, not a regular file"
    if info.st_size > limit:
        return f"it is {info.st_size:,} bytes, more than the {limit:,} allowed here"
    return None


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; raises FileProblem otherwise.

    The file is opened without blocking (a FIFO would wait for a writer) and checked on the open
    descriptor, so a path swapped between a check and the read cannot slip through.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise FileProblem(exc.strerror or str(exc)) from None
    try:
        problem = file_problem(os.fstat(fd), limit)
        if problem:
            raise FileProblem(problem)
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileProblem(f"it is more than the {limit:,} bytes allowed here")
    return data
