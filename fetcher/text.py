"""Text for people: one-line messages, and the redaction every layer applies before it shows text.

One pattern finds tokens (`TOKEN`: anything shaped like a JWT, as Entra ID issues them) and one function
hides a URL's password (`hide_password`); the Graph, auth and HTTP errors, the log filter and the
configuration display all use these, so a token or a password is masked the same way everywhere.
"""

from __future__ import annotations

import re
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
