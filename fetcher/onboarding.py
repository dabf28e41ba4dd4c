"""Getting a configuration right: `fetcher config init` (a starting file from the packaged example) and
`fetcher config check` (a short summary, and with `--online` the real thing: the database and every
tenant's token and first answer, through `fetcher.check`).

The example ships inside the package as `fetcher/config.example.toml`, a link to the repository's
top-level `config.example.toml` that the wheel carries as a file.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from fetcher.config import AuthConfig, Config, Secret
from fetcher.errors import ConfigError, DatabaseError, DatabaseUnavailable, FetcherError

if TYPE_CHECKING:
    from fetcher.check import TenantCheck

EXAMPLE = "config.example.toml"
# From this line on, the example's [alerts] tables are written commented out: their channels' secrets
# would otherwise be required before the first `config check` passes.
ALERTS_MARK = "# Alerts (README: Alerts)"

FILL_IN = (
    "[auth] client_id: your app registration's Application (client) ID",
    "[auth] client_secret: export FETCHER_CLIENT_SECRET=... (or file:PATH; a certificate works too)",
    "[partner] (a GDAP or CSP partner): uncomment it; tenant_id is your own tenant's id, source gdap, contracts "
    'or both; then `fetcher tenants discover --write tenants.csv` and tenants_file = "tenants.csv"',
    "the tenants without [partner]: [[tenants]] tenant_id and name, or a tenants_file you write",
    "[database] url: SQLite securescores.db beside the file unless you change it",
    "[alerts]: commented out; uncomment the rules and channels you want",
)


# The example's GUIDs are one hex digit repeated (client_id 0000..., the tenant 1111..., [partner] 5555...).
PLACEHOLDER_GUID = re.compile(r"\b([0-9a-f])\1{7}-\1{4}-\1{4}-\1{4}-\1{12}\b")


def example_text() -> str:
    """The packaged `config.example.toml`."""
    return resources.files("fetcher").joinpath(EXAMPLE).read_text(encoding="utf-8")


def starting_config(example: str) -> str:
    """The example as a first `fetcher.toml`: every key kept with its comment, the [alerts] part commented out."""
    head, mark, alerts = example.partition(ALERTS_MARK)
    if not mark:
        return example
    lines = (mark + alerts).splitlines()
    commented = [line if not line.strip() or line.lstrip().startswith("#") else f"# {line}" for line in lines]
    return head + "\n".join(commented) + "\n"


def write_starting_config(path: Path) -> None:
    """Write the starting configuration to `path` (mode 0600: it may come to hold a secret).

    Raises ConfigError when `path` exists (it is never overwritten) or cannot be written.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} exists; not overwritten (remove it, or give another PATH)") from None
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror or errno.errorcode.get(error.errno or 0)}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(starting_config(example_text()))


# ------------------------------------------------------------------------------------------- summary


def _secret(name: str, secret: Secret | None) -> str | None:
    if secret is None:
        return None
    return f"{name} {secret.reference} ({'set' if secret.reveal() else 'not read'})"


def _resolved(secret: Secret | None, config: Config) -> Secret | None:
    """`[auth]` holds its secrets by reference: the value is the one a tenant inheriting it resolved."""
    if secret is None or secret.reveal():
        return secret
    for auth in [t.auth for t in config.tenants] + ([config.partner.auth] if config.partner else []):
        for own in (auth.client_secret, auth.certificate_password):
            if own is not None and own.reference == secret.reference and own.reveal():
                return own
    return secret


def _auth(auth: AuthConfig, config: Config) -> str:
    parts = [auth.method, f"client_id {auth.client_id or '-'}"]
    parts += [s for s in (_secret("client_secret", _resolved(auth.client_secret, config)),) if s]
    if auth.certificate_path is not None:
        parts.append(f"certificate_path {auth.certificate_path}")
    parts += [s for s in (_secret("certificate_password", _resolved(auth.certificate_password, config)),) if s]
    if auth.token_file is not None:
        parts.append(f"token_file {auth.token_file}")
    return ", ".join(parts)


def placeholders(config: Config) -> list[str]:
    """The example's placeholder GUIDs (`config init` writes them) still in `config`: one line each, naming
    the field and what to put there."""
    example = {match.group(0) for match in PLACEHOLDER_GUID.finditer(example_text())}
    what = "is a placeholder from the example (`config init`): put"
    lines = []
    if config.auth.client_id in example:
        lines.append(f"[auth] client_id {config.auth.client_id} {what} your app registration's Application (client) ID")
    if config.partner is not None and config.partner.tenant_id in example:
        lines.append(f"[partner] tenant_id {config.partner.tenant_id} {what} your own (the partner's) tenant id")
    for t in config.tenants:
        if t.tenant_id in example:
            lines.append(f"tenant_id {t.tenant_id} ({t.name!r}) {what} a customer's tenant id, or remove it")
        if t.auth.client_id in example and t.auth.client_id != config.auth.client_id:
            lines.append(f"[tenants.auth] client_id {t.auth.client_id} of tenant {t.tenant_id} {what} its app's ID")
    return lines


def database_folder_problem(config: Config) -> str | None:
    """One line when the SQLite file's folder is missing (or not a folder): no command makes it, so `run` and
    `migrate` would refuse; None when it is there (or the database is not a SQLite file)."""
    path = config.database.sqlite_path
    if path is None or path.parent.is_dir():
        return None
    said = "is not a folder" if path.parent.exists() else "does not exist"
    return f"the database's folder {path.parent} {said}: check [database] url, or create the folder"


def summary_lines(config: Config, *, verbose: bool = False, online: bool = False) -> list[str]:
    """What `fetcher config check` prints: counts, endpoints, database, which secrets are set (never a value).

    With `online`, the header says only what has passed so far (the file), not "OK" above failures; with a
    placeholder of the example left (`placeholders`) or the database's folder missing, not "OK" either."""
    enabled = len(config.enabled_tenants)
    own = [t for t in config.tenants if t.auth != config.auth]
    graph = config.graph
    verdict = "OK"
    if placeholders(config):
        verdict = "valid, but the example's placeholders are still in it (above)"
    elif database_folder_problem(config) is not None:
        verdict = "valid, but the database's folder is missing (above)"
    lines = [
        f"{config.path or 'configuration'}: {'valid; the online checks follow' if online else verdict}",
        _tenants_line(config, enabled),
        f"  database: {config.database.display_url}",
        f"  graph:    {graph.base_url} (cloud {graph.cloud}); Entra ID {graph.authority_host}"
        + (f"; proxy {graph.display_proxy}" if graph.display_proxy else ""),
        f"  auth:     {_auth(config.auth, config)}"
        + (f"; {len(own)} tenant(s) with their own [tenants.auth]" if own else ""),
    ]
    if config.partner is not None:
        lines.append(f"  partner:  {config.partner.tenant_id}, source {config.partner.source}")
    lines += list(_other_secrets(config))
    if config.alerts.rules or config.alerts.channels:
        lines.append(f"  alerts:   {len(config.alerts.rules)} rule(s), {len(config.alerts.channels)} channel(s)")
    if verbose:
        lines += [
            f"  tenant {t.tenant_id} {t.name!r}{'' if t.enabled else ' (disabled)'}: {_auth(t.auth, config)}"
            for t in config.tenants
        ]
    return lines


def _tenants_line(config: Config, enabled: int) -> str:
    """The summary's tenants line; with `tenants_source = "partner"` the tenants are the partner's customers,
    discovered by `run` (or `config check --online`), and the configured ones only name or disable some."""
    where = f" (tenants_file {config.tenants_file})" if config.tenants_file else ""
    if config.tenants_source == "partner":
        return (
            f'  tenants:  discovered at the partner\'s (tenants_source = "partner"); {len(config.tenants)} '
            f"configured here to name or disable some{where}; `--online` or `fetcher tenants discover` lists them"
        )
    return f"  tenants:  {len(config.tenants)} configured, {enabled} enabled{where}"


def _other_secrets(config: Config) -> Iterator[str]:
    if config.graph.proxy is not None:
        yield f"  secret:   {_secret('[graph] proxy', config.graph.proxy)}"
    if config.database.people_salt is not None:
        yield f"  secret:   {_secret('[database] people_salt', config.database.people_salt)}"
    for channel in config.alerts.channels:
        for key, secret in (("url", channel.url), ("password", channel.password)):
            shown = _secret(f"[alerts.channels] {channel.name} {key}", secret)
            if shown:
                yield f"  secret:   {shown}"


# -------------------------------------------------------------------------------------------- online


@dataclass(frozen=True)
class OnlineResult:
    """What `config check --online` found: the database's line and, with `tenants_source = "partner"`, the
    discovery's (None: fine), and every tenant's verdict."""

    database_problem: str | None
    revision: str
    checks: Sequence[TenantCheck]
    discovery_problem: str | None = None
    database_missing: str | None = None  # a SQLite file not created yet (fine: the first run creates it)
    discovery_exit_code: int = 0  # the discovery error's (4: Entra ID or Graph gave no customer list; 2: config)

    @property
    def exit_code(self) -> int:
        """A failed discovery's code (4 as `run`, or 2 for a configuration error), else 0 when all pass, else 1."""
        if self.discovery_problem is not None:
            return self.discovery_exit_code
        return 0 if self.ok else 1

    @property
    def ok(self) -> bool:
        problems = (self.database_problem, self.discovery_problem)
        return problems == (None, None) and all(check.ok for check in self.checks)

    def lines(self, *, verbose: bool = False) -> list[str]:
        """One line per failure with its fix (with `verbose`, the passing ones too)."""
        from fetcher.check import check_line

        database = self.database_problem or self.database_missing or f"ok, schema at revision {self.revision}"
        shown = self.database_problem or self.database_missing or verbose
        lines = [f"database: {database}"] if shown else []
        lines += [f"discovery: {self.discovery_problem}"] if self.discovery_problem else []
        lines += [check_line(check) for check in self.checks if verbose or not check.ok]
        return lines


async def check_online(config: Config, now: datetime) -> OnlineResult:
    """The database connects and its schema is current; with `tenants_source = "partner"` the customer list
    comes (`fetcher.partner`); each enabled tenant gets a token and one day."""
    # Imported here: `config init` and an offline `config check` need no HTTP or SQL machinery.
    from fetcher.check import check_tenants
    from fetcher.partner import with_customers_now, with_discovered_tenants
    from fetcher.store.engine import create_engine, ensure_schema, head_revision, sqlite_file

    folder = database_folder_problem(config)
    if folder is not None:  # said as it is: nothing is created here, so not create_engine's "cannot create"
        raise DatabaseUnavailable(folder)
    engine = create_engine(config.database)
    problem: str | None = None
    missing: str | None = None
    watched = sqlite_file(engine)
    try:
        if watched is not None and not watched.path.exists():  # a new setup: nothing to check, nothing created
            missing = f"not created yet at {watched.path}: the first run (or `fetcher migrate`) creates it"
        else:
            await ensure_schema(engine, create=False)
    except DatabaseError as error:
        problem = str(error)
    finally:
        await engine.dispose()
    discovery: str | None = None
    discovery_exit_code = 0
    try:
        if problem is None and missing is None:  # discovery keeps its list in the database
            config, _ = await with_discovered_tenants(config, now)
        elif missing is not None:
            config = await with_customers_now(config)  # asked now, kept nowhere
    except FetcherError as error:
        discovery, discovery_exit_code = str(error), error.exit_code
    checks = await check_tenants(config, config.enabled_tenants)
    return OnlineResult(problem, head_revision(), checks, discovery, missing, discovery_exit_code)
