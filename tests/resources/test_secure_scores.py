"""The secureScores resource: its fetch, admit and save wired together; its archive replayed as fetched."""

from __future__ import annotations

from datetime import UTC, datetime

from fetcher.resources.secure_scores import replay_context
from fetcher.store.archive import pack

TODAY = datetime.now(UTC).date()


def test_replay_context_restores_the_partial_flag() -> None:
    raw = pack(
        {"a": 1},
        tenant_id="t",
        score_date=TODAY,
        fetched_at=datetime(2026, 1, 1, tzinfo=UTC),
        run_id="r",
        warning='199 - "Microsoft/SecureScore/500/12"',
    )

    context = replay_context(raw)

    warning = '199 - "Microsoft/SecureScore/500/12"'
    assert (context.partial, context.warning_text, context.run_id) == (True, warning, "r")
    assert not replay_context(raw._replace(warning=None)).partial
