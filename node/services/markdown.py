"""Markdown to sanitised HTML, rendered once at write time for posts, comments and submolt rules."""
from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt

# Raw HTML in the source is escaped by markdown-it (html=False); nh3 then enforces the allow-list
# below on whatever markdown-it produced, so a bug in either layer alone cannot let markup through.
_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6",
    "strong", "em", "b", "i", "s", "del", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td", "sup", "sub",
}
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "th": {"style"},
    "td": {"style"},
    "code": {"class"},
}
# Removed together with their content (never in _TAGS: nh3 requires the two sets to be disjoint).
_DROP_WITH_CONTENT = {"script", "style", "iframe", "object", "embed", "noscript", "template", "textarea", "svg", "math"}
_LINK_SCHEMES = {"http", "https", "mailto"}
_IMAGE_SCHEMES = ("http://", "https://")
_LANGUAGE_CLASS = re.compile(r"language-[A-Za-z0-9_+#.-]{1,32}")
LINK_REL = "nofollow noopener ugc"


def _filter_attribute(tag: str, attr: str, value: str) -> str | None:
    if tag == "img" and attr == "src":
        # Links may be mailto:, images only http(s): no data:, no mailto: pixels.
        return value if value.strip().lower().startswith(_IMAGE_SCHEMES) else None
    if tag == "code" and attr == "class":
        return value if _LANGUAGE_CLASS.fullmatch(value) else None
    return value


_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags=_DROP_WITH_CONTENT,
    attributes=_ATTRIBUTES,
    attribute_filter=_filter_attribute,
    strip_comments=True,
    link_rel=LINK_REL,
    url_schemes=_LINK_SCHEMES,
    url_relative="deny",
    filter_style_properties={"text-align"},
)


def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


_MD = _parser()


def sanitize_html(html: str) -> str:
    """Clean an HTML fragment with the same allow-list as rendered markdown (for HTML from elsewhere)."""
    return _CLEANER.clean(html)


def render_markdown(text: str) -> str:
    """Markdown source to safe HTML: CommonMark + tables + strikethrough, raw HTML escaped, sanitised."""
    if not text or not text.strip():
        return ""
    return sanitize_html(_MD.render(text)).strip()
