"""The files a command was asked to write: `report --output`, `report --html`, `metrics --output`,
`tenants discover --write`.

One writer for them all. `write_through` opens the path and writes: a device (`/dev/null`, `/dev/full`), a FIFO
or `/dev/stdout` gets the bytes, a symbolic link its target. `replace_atomically` (every command:
node_exporter's textfile collector must never read half a file, a run may read the tenants file meanwhile, and
a report that failed on a full disk must leave the previous one whole, not truncated) writes a temporary file
beside a regular file and renames it over it; a link's target is the file replaced (the link kept), and
whatever exists but is not a regular file is written through, never replaced by one. The file replaced keeps
its mode (a tenants file at 0600 or 0640) and, where this user may give them, its owner and group, as an editor
or `sponge` keeps them. A new file is 0644, whatever the umask (the collector runs as another user).

Every failure is OutputUnwritable naming the path as given (exit 3), but for a broken pipe that is this process's
standard output (`--output /dev/stdout | true`): StandardOutputClosed, silence and 141, as for plain standard output.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from fetcher.errors import OutputUnwritable, StandardOutputClosed


def write_through(path: Path, data: bytes) -> None:
    """Open `path` for writing (created when missing; a link followed) and write `data` to it."""
    try:
        with path.open("wb") as handle:
            handle.write(data)
    except OSError as error:
        if error.errno == errno.EPIPE and _is_standard_output(path):
            raise StandardOutputClosed("the reader of standard output went away") from None
        raise unwritable(path, error) from None


def _is_standard_output(path: Path) -> bool:
    """Whether `path` (`/dev/stdout`, `/proc/self/fd/1`, a FIFO's name) is the pipe this process's standard
    output writes to: its reader gone, the command ends in silence (141), as `fetcher report | true` does."""
    try:
        named, ours = os.stat(path), os.fstat(1)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (ours.st_dev, ours.st_ino)


def replace_atomically(path: Path, data: bytes) -> None:
    """`data` as the regular file at `path` (at a link's target), replaced in one step, its mode kept (a new
    file: 0644); a device, a FIFO or a folder at `path` is written through instead (a folder: 'Is a directory')."""
    try:
        existing: os.stat_result | None = os.stat(path)  # follows a link: what the path leads to
    except FileNotFoundError:
        existing = None  # to be made (a dangling link: its target)
    except OSError as error:
        raise unwritable(path, error) from None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        write_through(path, data)
        return
    try:
        _replace(Path(os.path.realpath(path)), data, existing)
    except OSError as error:
        raise unwritable(path, error) from None


def _replace(target: Path, data: bytes, existing: os.stat_result | None) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if existing is None:
            os.chmod(temporary, 0o644)
        else:
            with contextlib.suppress(PermissionError):  # another's file, not as root: ours, with its mode
                os.chown(temporary, existing.st_uid, existing.st_gid)
            os.chmod(temporary, stat.S_IMODE(existing.st_mode))  # after chown, which clears set-id bits
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def unwritable(path: Path, error: OSError) -> OutputUnwritable:
    return OutputUnwritable(f"cannot write {path}: {error.strerror or error}")
