"""A secret and where it came from (`env:NAME`, `file:PATH` or a literal); its text form is always redacted."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Secret:
    """A secret value and where it came from; shown only as its reference."""

    reference: str
    value: str = field(repr=False, compare=False)

    def __str__(self) -> str:
        return f"<secret from {self.reference}>"

    def __repr__(self) -> str:
        return f"Secret({self.reference!r})"

    def reveal(self) -> str:
        return self.value


def reference_only(value: str) -> Secret:
    """A secret not read: an env:/file: reference keeps its name, a literal is never copied."""
    return Secret(value, "") if value.startswith(("env:", "file:")) else Secret("literal value", "")
