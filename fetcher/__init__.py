"""securescore-fetcher: Microsoft Secure Score history for many tenants, in your own SQL database."""

from __future__ import annotations

__version__ = "0.1.0"
