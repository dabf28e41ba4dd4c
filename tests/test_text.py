"""Text helpers: one-line messages, the one token pattern, the one way to hide a URL's password."""

from __future__ import annotations

import pytest

from fetcher.text import hide_password, one_line, redact_tokens

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


def test_one_line_masks_control_characters() -> None:
    assert one_line("a\x1b[2Jb\x00c\u2028d") == "a [2Jb c d"


def test_one_line_collapses_whitespace_redacts_tokens_and_truncates() -> None:
    assert one_line(f"a\n b\t{JWT} " + "x" * 300, limit=40) == "a b [redacted] " + "x" * 24 + "…"


@pytest.mark.parametrize(
    "text",
    [JWT, "eyJ0eXAi.eyJhbGci.", "Bearer eyJabcd.efgh1234.sig-_"],
    ids=["signed", "unsigned", "in-a-header"],
)
def test_every_jwt_shape_is_redacted(text: str) -> None:
    assert "eyJ" not in redact_tokens(text)
    assert "[redacted]" in redact_tokens(text)


def test_text_without_tokens_is_left_alone() -> None:
    assert redact_tokens("eyJ is not a token; a.b.c neither") == "eyJ is not a token; a.b.c neither"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+asyncpg://app:s3cret@db.example/scores", "postgresql+asyncpg://app:***@db.example/scores"),
        ("http://me:p%40ss@proxy.example:3128", "http://me:***@proxy.example:3128"),
        ("http://proxy.example:3128", "http://proxy.example:3128"),
        ("http://me@proxy.example:3128", "http://me@proxy.example:3128"),
        ("sqlite+aiosqlite:///securescores.db", "sqlite+aiosqlite:///securescores.db"),
    ],
    ids=["database", "proxy-quoted", "no-user", "user-only", "sqlite"],
)
def test_hide_password_masks_only_the_password(url: str, shown: str) -> None:
    assert hide_password(url) == shown
