"""How much free disk migrations 0011 and 0014 ask for before they start or resume (their batches:
test_migration_0011.py, test_migration_0014.py)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from fetcher.store.convert import DAY_KEYS, MoveOptions, check_resumed, space_needed

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


@pytest.mark.parametrize(
    ("rows", "said"),
    [
        (0, "migration 0014 resumed: no rows left to move; no disk check"),
        (3, "free for the day keys (resumed: 3 rows left to move); disk check skipped (--skip-disk-check"),
    ],
    ids=["nothing left", "rows left"],
)
def test_a_resumed_move_says_its_disk_line_for_what_is_left(
    caplog: pytest.LogCaptureFixture, rows: int, said: str
) -> None:
    """The README's promise of one line either way holds for a resumed migration too."""
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE control_score_rows (n INTEGER)")
        for n in range(rows):
            conn.exec_driver_sql(f"INSERT INTO control_score_rows VALUES ({n})")
        with caplog.at_level("INFO", logger="fetcher.store.convert"):
            check_resumed(conn, MoveOptions(check_disk=False), DAY_KEYS, "for the day keys")
    engine.dispose()

    lines = [r.getMessage() for r in caplog.records if r.name == "fetcher.store.convert"]
    assert len(lines) == 1
    assert said in lines[0]
