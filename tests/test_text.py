"""Text helpers: one-line messages, the one token pattern, the one way to hide a URL's password."""

from __future__ import annotations

from typing import Any

import pytest

from fetcher.text import csv_cell, hide_password, one_line, printable, redact_tokens

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


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[2JALL OK", "\\x1b[2JALL OK"),
        ("a\x07b\x00c\x7fd\x9be", "a\\x07b\\x00c\\x7fd\\x9be"),
        ("evil \u202etxt.exe", "evil \\u202etxt.exe"),
        ("two\nlines\ttab", "two\\x0alines\\x09tab"),
        ("Contoso Ltd — Zürich 🛡", "Contoso Ltd — Zürich 🛡"),
    ],
)
def test_printable_shows_control_characters_as_escapes(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_printable_keeps_lines_when_asked() -> None:
    assert printable("one\n\x1b[31mtwo\tthree", lines=True) == "one\n\\x1b[31mtwo\tthree"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-1+2", "'-1+2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Contoso", "Contoso"),
        ("", ""),
        (-3.5, -3.5),
        (7, 7),
        (None, None),
    ],
)
def test_csv_cells_that_start_like_formulas_are_defused(value: Any, cell: Any) -> None:
    assert csv_cell(value) == cell


def test_human_size_shows_small_sizes_in_kilobytes() -> None:
    from fetcher.text import human_size

    assert [
        human_size(n) for n in (512, 45_300, 325_000, 1_340_000, 250_000_000, 3_200_000_000, 1_500_000_000_000)
    ] == [
        "512 bytes",
        "45 kB",
        "325 kB",
        "1.3 MB",
        "250 MB",
        "3.2 GB",
        "1.5 TB",
    ]
