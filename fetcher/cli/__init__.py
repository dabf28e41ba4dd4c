"""The `fetcher` command (moved here whole; the next commit splits it)."""

from fetcher.cli.fetch import __doc__ as __doc__
from fetcher.cli.fetch import main

__all__ = ["main"]
