"""The text a reader sees on a web page, and whether a verification code stands in it as a word."""
from __future__ import annotations

import re
from html.parser import HTMLParser

# Elements whose content a reader never sees as text; comments are dropped by the parser.
_HIDDEN = frozenset({"script", "style", "template"})
# Elements that do not break a line: text on either side of them joins into one word.
_INLINE = frozenset({
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "font", "i", "kbd", "mark", "q", "s",
    "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var", "wbr",
})
# What link previews show of a page; JavaScript-rendered posts (Mastodon, Bluesky) carry their text only here.
_DESCRIPTIONS = frozenset({"description", "og:description", "twitter:description"})


def shows_code(text: str, code: str) -> bool:
    """The code appears in the text as a whole token (not inside a longer word), case-insensitively."""
    return re.search(rf"(?<![\w-]){re.escape(code)}(?![\w-])", text, re.IGNORECASE) is not None


def visible_text(html: str) -> str:
    """The text a reader sees: tags, comments, scripts and styles removed, entities decoded."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def close(self) -> None:
        # Markup cut off by the end of the page (an unclosed comment or tag) is no text to a browser; some
        # Python versions hand it to handle_data.
        rest = self.rawdata
        if rest[:1] == "<" and rest[1:2] and (rest[1].isalpha() or rest[1] in "!/?"):
            self.rawdata = ""
        super().close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        else:
            self._tag(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HIDDEN:
            self._tag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag not in _INLINE:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)

    def _tag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._hidden or tag in _INLINE:
            return
        self.parts.append(" ")
        if tag == "meta":
            found = dict(attrs)
            if (found.get("name") or found.get("property") or "").lower() in _DESCRIPTIONS:
                self.parts.extend((found.get("content") or "", " "))
