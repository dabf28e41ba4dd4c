"""The fields a log line carries beside its message: the command, run and tenant it was logged for.

The scheduler sets them (`bind`) where a run or a tenant's work begins; `Fields`, a logging filter, copies
those in effect onto every record, where the JSON log format shows them. A record's own `extra` values
(e.g. `error_kind`) win. Context variables follow asyncio tasks, so concurrent tenants do not mix.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

FIELDS = ("command", "run_id", "tenant_id", "error_kind")

_current: ContextVar[dict[str, str]] = ContextVar("fetcher_log_fields", default={})  # noqa: B039 (never mutated)


@contextmanager
def bind(**fields: str | None) -> Iterator[None]:
    """Within the block, every log record carries `fields` (None values are left out)."""
    token = _current.set({**_current.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _current.reset(token)


def set_for_process(**fields: str | None) -> None:
    """From now on, in this context and those it starts (asyncio.run's tasks), records carry `fields`."""
    _current.set({**_current.get(), **{k: v for k, v in fields.items() if v is not None}})


def current() -> dict[str, str]:
    return dict(_current.get())


class Fields(logging.Filter):
    """Copies the bound fields onto each record that does not already carry them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _current.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def of(record: logging.LogRecord) -> dict[str, str]:
    """The fields a record carries, in `FIELDS` order."""
    return {name: str(getattr(record, name)) for name in FIELDS if getattr(record, name, None) is not None}
