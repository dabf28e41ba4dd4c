"""Text for people: one-line messages, and the redaction every layer applies before it shows text.

One pattern finds tokens (`TOKEN`: anything shaped like a JWT, as Entra ID issues them) and one function
hides a URL's password (`hide_password`); the Graph, auth and HTTP errors, the log filter and the
configuration display all use these, so a token or a password is masked the same way everywhere.

Text from the configuration (tenant names) and from Graph (control names, error details) is untrusted:
`printable` keeps a terminal or a text log from obeying it (an ESC sequence that clears the screen, an OSC
8 link, a bidirectional override that reorders what is shown), and `csv_cell` keeps a spreadsheet from
evaluating it as a formula.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DETAIL_LIMIT = 200
TOKEN_MASK = "[redacted]"
PASSWORD_MASK = "***"

# A JWT: base64url header and payload (`eyJ` is `{"`) and a signature, which may be empty (alg none).
TOKEN = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


def redact_tokens(text: str) -> str:
    """`text` with every JWT-shaped string replaced by `[redacted]`."""
    return TOKEN.sub(TOKEN_MASK, text)


def one_line(text: str, *, limit: int = DETAIL_LIMIT) -> str:
    """Printable characters only, whitespace collapsed, tokens redacted, at most `limit` characters."""
    printable = "".join(c if c.isprintable() else " " for c in text[: limit * 4])
    masked = redact_tokens(" ".join(printable.split()))
    return masked if len(masked) <= limit else masked[: limit - 1] + "…"


def human_size(size: float) -> str:
    """A byte count for people, in decimal units: `512 bytes`, `45 kB`, `1.3 MB`, `2.1 GB`, `1.5 TB`.

    Every size shown to people uses it: archive compaction, the migration's disk check, `fetcher db vacuum`."""
    if size < 1000:
        return f"{size:.0f} bytes"
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if size >= 100 or unit == "kB" else f"{size:.1f} {unit}"
    raise AssertionError("unreachable")


def hide_password(url: str) -> str:
    """`url` with the password of its user part replaced by `***` (`scheme://user:***@host/...`).

    Works for database URLs (`postgresql+asyncpg://...`) and proxy URLs alike; a URL that does not
    parse is shown with everything between `://` and the last `@` masked.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return re.sub(r"(://)[^/]*@", rf"\1{PASSWORD_MASK}@", url)
    if password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{PASSWORD_MASK}@{host}"))


# C0 controls, DEL and C1 controls (category Cc), and the bidirectional embeddings, overrides and
# isolates (U+202A-U+202E, U+2066-U+2069) that reorder text on screen ("Trojan Source", CVE-2021-42574).
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROLS_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

# What a configured string may not hold: C0 controls (NUL, ESC, newline, tab...), DEL, C1 controls and lone
# surrogates. PostgreSQL refuses a NUL in text (`invalid byte sequence for encoding "UTF8": 0x00`), so one in
# a tenant's name failed every run; the others would be obeyed by a terminal or break a line of a log.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def control_character(text: str) -> str | None:
    """None when `text` holds no control character or lone surrogate; else which and where, for a message:
    `a control character (\\x00) at character 4`."""
    found = _FORBIDDEN.search(text)
    if found is None:
        return None
    code = ord(found.group())
    kind = "a lone surrogate" if code >= 0xD800 else "a control character"
    return f"{kind} ({_visible(found)}) at character {found.start() + 1}"


# OWASP, CSV Injection: a cell that starts with one of these is read as a formula by Excel, LibreOffice
# Calc or Google Sheets (a tab or a carriage return is skipped and the next character decides).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str, *, lines: bool = False) -> str:
    """`text` with every control character shown as an escape (`\\x1b`, `\\u202e`) instead of obeyed.

    With `lines=True`, newlines and tabs are kept (a multi-line table cell or log record).
    """
    return (_CONTROLS_BUT_LINES if lines else _CONTROLS).sub(_visible, text)


def csv_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet evaluates: text that starts like a formula gets a leading `'`.

    This is OWASP's advice for CSV injection; numbers (int, float) are left as numbers, so a negative
    change stays a negative number. The `defusedcsv` package does the same for `= + - @` but not for a
    leading tab or carriage return, which OWASP lists too.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(cell: str) -> str:
    """The text `csv_cell` made `cell` from: its added `'` removed (a `'` before anything but a formula's
    start is the text's own)."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) else cell
