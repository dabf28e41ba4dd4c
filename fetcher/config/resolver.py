"""The state every section's checks share while one file is resolved (its folder, the environment,
the purpose, the warnings), and the secret references and files they read."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from fetcher.config.constants import ENV_NAME, GUID, SECRET_MAX_BYTES
from fetcher.config.files import FileProblem, file_problem, read_regular_file
from fetcher.config.model import Purpose
from fetcher.config.secret import Secret
from fetcher.config.shape import FileTable
from fetcher.config.shape_errors import tenant_label
from fetcher.errors import ConfigError

StrEnumT = TypeVar("StrEnumT", bound=StrEnum)


class Resolver:
    """Holds one file's context (its folder, the environment, the purpose) while it is resolved;
    reads its secret references (`env:NAME`, `file:PATH`, literal) and checks the files it names."""

    def __init__(self, path: Path | None, environ: Mapping[str, str], purpose: Purpose) -> None:
        self.path = path
        self.environ = environ
        self.purpose = purpose
        self.base = path.resolve().parent if path else Path.cwd()
        self.warnings: list[str] = []
        self.literals: list[str] = []
        self._resolved: dict[tuple[str, str], Secret] = {}

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"{self.path or 'configuration'}: {message}")

    def resolve_path(self, value: str) -> Path:
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.base / p

    def guid(self, tenant_id: str, where: str) -> str:
        if not GUID.match(tenant_id):
            raise self.fail(f"{where}: tenant_id {tenant_id!r} is not a GUID")
        return tenant_id.lower()

    def choice(self, kind: type[StrEnumT], value: str, where: str) -> StrEnumT:
        try:
            return kind(value)
        except ValueError:
            valid = ", ".join(k.value for k in kind)
            raise self.fail(f"{where} must be one of {valid}, got {value!r}") from None

    def secret(self, reference: str, where: str) -> Secret:
        """Resolve a reference once per place it is written; `where` is "[auth] client_secret "."""
        key = (where, reference)
        if key not in self._resolved:
            self._resolved[key] = self.read_secret(reference, where.rstrip())
        return self._resolved[key]

    def read_secret(self, reference: str, where: str) -> Secret:
        if reference.startswith("env:"):
            return Secret(reference, self.environment(reference, where))
        if reference.startswith("file:"):
            file = self.resolve_path(reference[5:])
            try:
                value = read_regular_file(file, SECRET_MAX_BYTES).decode("utf-8").strip()
            except UnicodeDecodeError:
                raise self.fail(f"{where} = {reference!r}: cannot read {file}: not UTF-8 text") from None
            except FileProblem as problem:
                raise self.fail(f"{where} = {reference!r}: cannot read {file}: {problem}") from None
            if not value:
                raise self.fail(f"{where} = {reference!r}: {file} is empty")
            return Secret(reference, value)
        if not reference:
            raise self.fail(f"{where} is empty")
        self.warnings.append(f"{where} holds a literal secret; prefer env:NAME or file:PATH")
        return Secret("literal value", reference)

    def environment(self, reference: str, where: str) -> str:
        name = reference[4:]
        if not ENV_NAME.match(name):
            raise self.fail(f"{where} = {reference!r}: {name!r} is not an environment variable name")
        value = self.environ.get(name)
        if value is None:
            raise self.fail(f"{where} = {reference!r}: environment variable {name} is not set")
        if not value.strip():
            raise self.fail(f"{where} = {reference!r}: environment variable {name} is empty")
        return value

    def check_file(self, path: Path, limit: int, where: str) -> None:
        """A file another library reads later: it must be a readable regular file of sane size."""
        try:
            info = path.stat()
        except OSError as exc:
            raise self.fail(f"{where}cannot read {path}: {exc.strerror}") from None
        problem = file_problem(info, limit)
        if problem is None and not os.access(path, os.R_OK):
            problem = "permission denied"
        if problem:
            raise self.fail(f"{where}cannot read {path}: {problem}")

    def check_mode(self) -> None:
        """A literal secret in a file that others can read: warn, naming the mode."""
        if not self.literals or self.path is None:
            return
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
        except OSError:
            return
        readers = [who for bit, who in ((stat.S_IRGRP, "its group"), (stat.S_IROTH, "others")) if mode & bit]
        if readers:
            self.warnings.append(
                f"holds a literal secret ({', '.join(dict.fromkeys(self.literals))}) and is readable by "
                f"{' and '.join(readers)} (mode {mode:04o}): chmod 600 {self.path}, or use env:NAME or file:PATH"
            )

    def note_literals(self, file: FileTable) -> None:
        """Literal secrets written in the file, whether or not this purpose reads them."""
        tables = [("[auth] ", file.auth)]
        tables += [
            (f"{tenant_label(t.tenant_id, t.name, f'[[tenants]] #{n}')}: [tenants.auth] ", t.auth)
            for n, t in enumerate(file.tenants, 1)
        ]
        for where, table in tables:
            for key in ("client_secret", "certificate_password"):
                value = getattr(table, key)
                if value and not value.startswith(("env:", "file:")):
                    self.literals.append(f"{where}{key}")
