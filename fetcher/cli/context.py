"""What every command is given: the options before it, its consoles, its configuration."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from fetcher.config import Config, Purpose
    from fetcher.outcome import Observer

log = logging.getLogger("fetcher.cli")


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

    def prompt(self, text: str) -> None:
        """A device-code sign-in's URL and code, on standard error (above any progress bar)."""
        self.err.print(text, markup=False, highlight=False, soft_wrap=True)

    def observer(self) -> Observer:
        from fetcher.output import LogObserver, ProgressObserver

        if self.log_format == "text" and self.err.is_terminal and self.verbosity >= 0:
            return ProgressObserver(self.err)
        return LogObserver()
