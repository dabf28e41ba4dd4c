"""Configured URLs checked at load with one parser: pydantic-core's, the WHATWG URL standard as browsers
parse it, so a URL that can never be sent to (a space in the host, a bad [IPv6], port 0) is refused in one
line naming its key, not met later as a connection or Entra ID error."""

from __future__ import annotations

import re

from pydantic import HttpUrl, TypeAdapter, ValidationError

from fetcher.text import control_character

_HTTP_URL = TypeAdapter(HttpUrl)  # pydantic-core's parser: the WHATWG URL standard, as browsers parse
_URL_PROBLEMS = {
    "invalid international domain name": "has a host with a character no host name may hold (a space, a %)",
    "invalid IPv6 address": "has a malformed IPv6 address in [ ] (a bracket not closed, or not an address)",
    "invalid port number": "has an invalid port (a port is 1 to 65535)",
    "empty host": "has no host",
}


def url_problem(url: str) -> str | None:
    """Why a configured URL (a webhook, `[graph] base_url` ...) can never be sent to, in a few words that do
    not repeat it (a webhook URL is a secret); None when it parses as an http(s) URL with a host and a port
    from 1 to 65535."""
    found = control_character(url)
    if found:  # the WHATWG parser drops a tab or a newline silently: a URL pasted broken
        return f"holds {found}"
    if not re.match(r"^https?://", url, re.IGNORECASE):
        return "must be an https:// (or http://) URL"
    if re.match(r"^https?:///", url, re.IGNORECASE):  # the WHATWG parser would take the path for the host
        return _URL_PROBLEMS["empty host"]
    try:
        parsed = _HTTP_URL.validate_python(url)
    except ValidationError as error:
        reason = str((error.errors()[0].get("ctx") or {}).get("error", "not a URL"))
        return _URL_PROBLEMS.get(reason, f"is not a valid URL ({reason})")
    if parsed.port == 0:
        return _URL_PROBLEMS["invalid port number"]
    return None
