"""What every command is given: the options before it, its consoles, its configuration."""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from fetcher.errors import FetcherError, OutputUnwritable, StandardOutputClosed

if TYPE_CHECKING:
    from rich.console import Console

    from fetcher.config import Config, Purpose
    from fetcher.outcome import Observer

log = logging.getLogger("fetcher.cli")


class StandardOutput:
    """Standard output as the fetcher writes it (`sys.stdout` while `fetcher` runs: every command's console,
    click's help and version): a write that fails raises OutputUnwritable (the disk full: one line naming
    standard output, exit 3, as an `--output` file that cannot be written), or StandardOutputClosed when
    the reader of a pipe went away (EPIPE: nothing said, exit 141); the rest of the output is dropped.

    Python's documentation for SIGPIPE (library/signal.html, "Note on SIGPIPE") points the file descriptor at
    /dev/null then: what stays in the stream's buffer is flushed there at exit, with no "Exception ignored".
    """

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.failed = False

    def write(self, text: str) -> int:
        if text == "":  # click's test of a text stream (b"" is refused by the stream): touches no file
            return 0
        if not self.failed:
            try:
                return self.stream.write(text)
            except OSError as error:
                raise self._unwritable(error) from None
        return len(text)

    def flush(self) -> None:
        if not self.failed:
            try:
                self.stream.flush()
            except OSError as error:
                raise self._unwritable(error) from None

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding: the stream's own
        return getattr(self.stream, name)

    def _unwritable(self, error: OSError) -> FetcherError:
        self.failed = True
        _to_devnull(self.stream)
        if error.errno == errno.EPIPE:
            return StandardOutputClosed("the reader of standard output went away")
        return OutputUnwritable(f"cannot write standard output: {error.strerror or error}")


class StandardError:
    """Standard error as the fetcher writes it (`sys.stderr` while `fetcher` runs): a write that fails (`2>/dev/full`,
    `2>&1 | true` once the reader is gone) is dropped, with every write after it, so that the exit status the
    command chose stands: the error line of a usage error (2) raised OSError, and the process ended with 1
    ("some tenants failed"). Nowhere is left to say anything; the descriptor is pointed at /dev/null, so nothing
    fails at exit either."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.failed = False

    def write(self, text: str) -> int:
        if not self.failed:
            try:
                return self.stream.write(text)
            except OSError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.failed:
            try:
                self.stream.flush()
            except OSError:
                self._drop()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding: the stream's own
        return getattr(self.stream, name)

    def _drop(self) -> None:
        self.failed = True
        _to_devnull(self.stream)


def _to_devnull(stream: IO[str]) -> None:
    """Point `stream`'s descriptor at /dev/null: what stays in its buffer is flushed there at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no descriptor (a test's captured output): nothing is flushed at exit
        pass


@dataclass
class Context:
    """Options given before the subcommand."""

    config_path: str | None
    verbosity: int
    log_format: str
    console: Console
    err: Console
    database_url: str | None = None  # once `config()` has loaded it: for errors no command put in words

    def config(self, purpose: Purpose | None = None) -> Config:
        """The configuration, by default for fetching; `Purpose.DATABASE` for commands that never authenticate."""
        from fetcher.config import Purpose, find_config_file, load_config
        from fetcher.output import REDACTOR

        config = load_config(find_config_file(self.config_path), purpose=purpose or Purpose.FETCH)
        auths = [t.auth for t in config.tenants] + ([config.partner.auth] if config.partner else [])
        for auth in auths:
            for secret in (auth.client_secret, auth.certificate_password):
                if secret is not None and secret.reveal():
                    REDACTOR.add(secret.reveal())
        for channel in config.alerts.channels:
            for value in channel.secrets:
                REDACTOR.add(value)
        self.database_url = config.database.url
        for warning in config.warnings:
            log.warning("%s: %s", config.path, warning)
        return config

    def write(self, text: str) -> None:
        """`text` on standard output as it is: not rendered by the console (which drops some control characters)."""
        self.console.file.write(text)
        self.console.file.flush()

    def notice(self, message: str, level: str = "info", *, quiet_too: bool = False, kind: str | None = None) -> None:
        """A line on standard error beside the command's output (`status`'s counts, `report`'s `wrote ...`): in
        text `error: ` or `warning: ` and `message` (an `info` line as it is); with --log-format json a log
        record at `level`, as the error that stops a command is one (`exits.fail`), with `kind` as its
        `error_kind` (every error record has one). Under -q (only warnings and errors) an `info` line is left out
        in both formats, as the JSON log's level leaves it out; `quiet_too`: kept under -q too, whatever its level
        (`migrate -q` chose its lines: a migration is still said)."""
        if self.log_format == "json":
            number = logging.getLevelNamesMapping()[level.upper()]
            extra = {"error_kind": kind} if kind is not None else None
            if quiet_too:
                record = log.makeRecord(log.name, number, "", 0, "%s", (message,), None, extra=extra)
                log.handle(record)  # past -q's level
            else:
                log.log(number, "%s", message, extra=extra)
            return
        if level == "info" and self.verbosity < 0 and not quiet_too:
            return
        prefix = "" if level == "info" else f"{level}: "
        self.err.print(f"{prefix}{message}", markup=False, highlight=False, soft_wrap=True)

    def prompt(self, text: str) -> None:
        """A device-code sign-in's URL and code, on standard error (above any progress bar)."""
        self.err.print(text, markup=False, highlight=False, soft_wrap=True)

    def observer(self) -> Observer:
        from fetcher.output import LogObserver, ProgressObserver

        if self.log_format == "text" and self.err.is_terminal and self.verbosity >= 0:
            return ProgressObserver(self.err)
        return LogObserver()
