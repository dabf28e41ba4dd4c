"""Configuration (moved here whole; the next commit splits it)."""

from fetcher.config.loader import *  # noqa: F403
