"""The documents under docs/ point only at README sections that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = sorted((ROOT / "docs").glob("*.md"))


def headings() -> list[str]:
    return [line.lstrip("#").strip() for line in README.splitlines() if re.match(r"#{1,6} ", line)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_readme_section_a_document_names_exists(doc: Path) -> None:
    """`(README: Configuration)` and `(README, Memory)` name a heading (its start); `README.md#x` an anchor."""
    text = doc.read_text(encoding="utf-8")
    named = re.findall(r"\(README[:,] ([^),\"]+)", text)
    anchors = re.findall(r"README\.md#([\w-]+)", text)

    assert [n for n in named if not any(h.startswith(n.strip()) for h in headings())] == []
    assert [a for a in anchors if a not in {slug(h) for h in headings()}] == []
