"""The CSV tenants file: columns tenant_id, name, enabled, source_status; each problem names file and line."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fetcher.config.constants import ENABLED_WORDS, GUID, TENANT_COLUMNS, TENANTS_FILE_MAX_BYTES
from fetcher.config.files import FileProblem, read_regular_file
from fetcher.errors import ConfigError
from fetcher.text import control_character, csv_text


@dataclass(frozen=True)
class FileRow:
    """One row of a tenants file under the file's rules; `where` is `file.csv:LINE`."""

    where: str
    tenant_id: str
    name: str
    enabled: bool
    source_status: str


def read_tenant_rows(path: Path) -> Iterator[tuple[str, str, bool, str]]:
    """(tenant_id, name, enabled, source_status) of each row of a CSV tenants file.

    Raises ConfigError naming the file and line of an unreadable or malformed row.
    """
    try:
        text = read_regular_file(path, TENANTS_FILE_MAX_BYTES).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except FileProblem as problem:
        raise ConfigError(f"{path}: cannot read: {problem}") from None
    for row in file_rows(path, text):
        yield row.tenant_id, row.name, row.enabled, row.source_status


def file_rows(path: Path, text: str) -> Iterator[FileRow]:
    """The rows of the tenants file `text`, read by the one rule every reader of the file shares (the
    configuration's `tenants_file` and `tenants discover`'s merge): tenant_id a GUID, lower-cased; the name as
    it was before `tenants discover` wrote it (`'=x` is `=x`: a leading `'` keeps a spreadsheet from running a
    name that starts like a formula); enabled a yes/no word; source_status as written.

    Raises ConfigError naming the file and line of a malformed row.
    """
    for line, row in csv_rows(path, text):
        where = f"{path}:{line}"
        tenant_id = row.get("tenant_id", "")
        if not GUID.match(tenant_id):
            raise ConfigError(f"{where}: tenant_id {tenant_id!r} is not a GUID")
        name = csv_text(row.get("name", ""))
        for column in ("name", "source_status"):
            found = control_character(row.get(column, ""))
            if found:  # a NUL fails every PostgreSQL statement that carries the name; an ESC reaches terminals
                raise ConfigError(f"{where}: tenant {tenant_id.lower()}: {column} holds {found}: remove it")
        yield FileRow(where, tenant_id.lower(), name, enabled_flag(row, where), row.get("source_status", ""))


def enabled_flag(row: Mapping[str, str], where: str) -> bool:
    flag = row.get("enabled", "")
    if flag.lower() not in ENABLED_WORDS:
        raise ConfigError(f"{where}: enabled must be true or false (or yes/no, 1/0), got {flag!r}")
    return ENABLED_WORDS[flag.lower()]


def csv_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(first line, row) for each non-blank row; a malformed file is refused with the line it breaks at.

    `strict` makes the csv module raise on an unbalanced quote instead of swallowing the rest of the
    file into one field; the line given is where the broken row starts.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    columns = _csv_header(path, reader)
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ConfigError(f"{path}:{start}: not valid CSV ({_csv_reason(exc)})") from None
        if len(row) > len(columns):
            raise ConfigError(
                f"{path}:{start}: {len(row)} fields, but the header names {len(columns)} ({', '.join(columns)})"
            )
        if any(v.strip() for v in row):
            yield start, {c: v.strip() for c, v in zip(columns, row, strict=False)}
        start = reader.line_num + 1


def _csv_header(path: Path, reader: Any) -> list[str]:
    try:
        columns = [c.strip() for c in next(reader, [])]
    except csv.Error as exc:
        raise ConfigError(f"{path}:1: not valid CSV ({_csv_reason(exc)})") from None
    if "tenant_id" not in columns:
        raise ConfigError(f"{path}: the first line must name the columns, with tenant_id (and name)")
    for column in columns:
        if column not in TENANT_COLUMNS:
            raise ConfigError(f"{path}: unknown column {column!r} (columns: {', '.join(TENANT_COLUMNS)})")
        if columns.count(column) > 1:
            raise ConfigError(f"{path}: column {column!r} appears twice")
    return columns


def _csv_reason(exc: csv.Error) -> str:
    reason = str(exc)
    if "unexpected end of data" in reason:
        return 'a quoted field opened on this line is never closed: an unbalanced "'
    return reason
