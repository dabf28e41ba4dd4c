"""The package's source as a whole: no generated code."""

from __future__ import annotations

import ast
from pathlib import Path

import fetcher

PACKAGE = Path(fetcher.__file__).parent
GENERATING = {"exec", "eval", "compile"}


def test_no_module_calls_exec_eval_or_compile() -> None:
    calls = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.func.id}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in GENERATING
    ]

    assert calls == []
