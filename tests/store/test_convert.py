"""How much free disk migration 0011 asks for before it starts (its batches: test_migration_0011.py)."""

from __future__ import annotations

import pytest

from fetcher.store.convert import space_needed

MB = 1_000_000


@pytest.mark.parametrize(
    ("dialect", "needed"),
    [
        # SQLite reuses each batch's freed pages: about a batch's new rows and twice its log.
        ("sqlite", 25 * MB),
        # PostgreSQL frees the old table only when it is dropped: half of it for the new rows, and the log.
        ("postgresql", 520 * MB),
    ],
)
def test_the_space_asked_for_follows_how_each_database_frees_pages(dialect: str, needed: int) -> None:
    """1 GB of old rows, 1,000,000 rows, batches of 10,000 (10 MB)."""
    assert space_needed(dialect, 1000 * MB, 1_000_000, 10_000) == needed


def test_a_table_smaller_than_a_batch_counts_as_one_batch() -> None:
    assert space_needed("sqlite", 10 * MB, 100, 50_000) == 25 * MB
    assert space_needed("sqlite", 0, 0, 50_000) == 0
