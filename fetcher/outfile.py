"""The files a command was asked to write: `report --output`, `report --html`, `metrics --output`.

One writer for them all. `write_through` opens the path and writes (what `report` always did): a device
(`/dev/null`, `/dev/full`), a FIFO or `/dev/stdout` gets the bytes, a symbolic link its target.
`replace_atomically` (`metrics`, for node_exporter's textfile collector, which must never read half a file)
writes a temporary file beside a regular file and renames it over it; a link's target is the file replaced
(the link kept), and whatever exists but is not a regular file is written through, never replaced by one.

Every failure is OutputUnwritable naming the path as given (exit 3).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from fetcher.errors import OutputUnwritable


def write_through(path: Path, data: bytes) -> None:
    """Open `path` for writing (created when missing; a link followed) and write `data` to it."""
    try:
        with path.open("wb") as handle:
            handle.write(data)
    except OSError as error:
        raise unwritable(path, error) from None


def replace_atomically(path: Path, data: bytes) -> None:
    """`data` as the regular file at `path` (at a link's target), replaced in one step with mode 0644; a
    device, a FIFO or a folder at `path` is written through instead (a folder: 'Is a directory')."""
    try:
        kind = os.stat(path).st_mode  # follows a link: what the path leads to
    except FileNotFoundError:
        kind = stat.S_IFREG  # to be made (a dangling link: its target)
    except OSError as error:
        raise unwritable(path, error) from None
    if not stat.S_ISREG(kind):
        write_through(path, data)
        return
    try:
        _replace(Path(os.path.realpath(path)), data)
    except OSError as error:
        raise unwritable(path, error) from None


def _replace(target: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def unwritable(path: Path, error: OSError) -> OutputUnwritable:
    return OutputUnwritable(f"cannot write {path}: {error.strerror or error}")
