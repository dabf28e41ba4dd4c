"""The effective configuration as plain data for showing (`config check --format json`), secrets by reference."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from fetcher.config.model import Config
from fetcher.config.secret import Secret


def redacted(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data, secrets shown by reference only."""

    def plain(value: Any) -> Any:
        if isinstance(value, Secret):
            return str(value)
        if isinstance(value, Path):
            return str(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    data = plain(config)
    data["database"]["url"] = config.database.display_url
    data["graph"]["proxy"] = config.graph.display_proxy
    data["path"] = str(config.path) if config.path else None
    return typing.cast(dict[str, Any], data)
