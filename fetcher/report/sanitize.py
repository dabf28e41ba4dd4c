"""Graph's `remediation` HTML, which someone else wrote, made safe to show: nh3 (the Ammonia sanitizer)
for the HTML report, plain text for the text formats.

The allow-list keeps what remediation steps use (paragraphs, lists, emphasis, code, simple tables, links);
everything else goes: scripts and styles with their content, event handlers, `style` attributes, images
and every other element that loads something. Links keep only `https:` targets and are marked
`rel="noopener noreferrer nofollow"`.
"""

from __future__ import annotations

import html
import re

import nh3

TAGS = frozenset(
    {"p", "br", "b", "strong", "i", "em", "u", "code", "pre", "ul", "ol", "li", "a", "span", "div", "blockquote"}
    | {"h3", "h4", "h5", "table", "thead", "tbody", "tr", "th", "td"}
)
ATTRIBUTES = {"a": {"href", "title"}, "td": {"colspan"}, "th": {"colspan"}}
URL_SCHEMES = frozenset({"https"})
# Where a block starts or ends, text needs a space once the tags are gone ("<p>a</p><p>b</p>" is "a b").
_BLOCK = re.compile(r"<(/?(?:p|div|li|ol|ul|br|h[1-6]|tr|td|th|table|pre|blockquote)\b[^>]*)>", re.IGNORECASE)


def remediation_html(untrusted: str) -> str:
    """The remediation as HTML safe to put in a page: only allow-listed tags and attributes survive."""
    return nh3.clean(
        untrusted,
        tags=set(TAGS),
        attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def remediation_text(untrusted: str | None) -> str:
    """The remediation as one line of plain text: no tags, entities decoded, whitespace collapsed."""
    if not untrusted:
        return ""
    stripped = nh3.clean(_BLOCK.sub(r" <\1> ", untrusted), tags=set(), strip_comments=True)
    return " ".join(html.unescape(stripped).split())
