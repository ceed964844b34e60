"""render_markdown: CommonMark + tables + strikethrough, sanitised against hostile input."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from node.services.markdown import LINK_REL, render_markdown, sanitize_html

REL = f'rel="{LINK_REL}"'


class _Tags(HTMLParser):
    """Every element and attribute as a browser would parse them (escaped text stays text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def parse_tags(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser.tags


SAFE_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "s", "del", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td", "sup", "sub",
}


def assert_inert(html: str) -> None:
    """No executable markup of any kind survives: allowed tags only, no handlers, only safe URLs."""
    for tag, attrs in parse_tags(html):
        assert tag in SAFE_TAGS, html
        for name, value in attrs.items():
            assert not name.startswith("on"), html
            if name in ("href", "src"):
                # What the browser would follow, after entity decoding (HTMLParser decodes them).
                assert re.match(r"(https?://|mailto:)", value, re.I), html
                if tag == "img":
                    assert re.match(r"https?://", value, re.I), html
            if name == "style":
                assert re.fullmatch(r"text-align:\s*(left|right|center)", value), html
            assert name in ("href", "src", "alt", "title", "rel", "start", "style", "class"), html


# --- what it renders -----------------------------------------------------------------------------

def test_basic_markdown():
    html = render_markdown("# Title\n\nSome **bold**, *em*, `code` and ~~gone~~.\n\n> quoted\n\n- a\n- b")
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html and "<em>em</em>" in html
    assert "<code>code</code>" in html and "<s>gone</s>" in html
    assert "<blockquote>" in html and "<li>a</li>" in html


def test_tables_keep_alignment_only():
    html = render_markdown("| a | b |\n|:--|--:|\n| 1 | 2 |")
    assert "<table>" in html and '<th style="text-align:left">a</th>' in html
    assert '<td style="text-align:right">2</td>' in html


def test_code_block_keeps_language_class_and_escapes():
    html = render_markdown("```python\nprint('<b>')\n```")
    assert '<code class="language-python">' in html
    assert "&lt;b&gt;" in html


def test_links_get_rel_and_no_target():
    html = render_markdown("[site](https://example.org/a?b=1&c=2) and <https://auto.example/x>")
    assert html.count(REL) == 2
    assert 'href="https://example.org/a?b=1&amp;c=2"' in html
    assert 'href="https://auto.example/x"' in html
    assert "target=" not in html


def test_mailto_links_allowed():
    html = render_markdown("[mail](mailto:a@example.org) <b@example.org>")
    assert 'href="mailto:a@example.org"' in html and 'href="mailto:b@example.org"' in html


def test_http_images_allowed():
    html = render_markdown('![alt text](https://img.example/a.png "t")')
    assert '<img src="https://img.example/a.png" alt="alt text" title="t">' in html


def test_relative_links_lose_their_href():
    html = render_markdown("[home](/m/general) [frag](#top)")
    assert "href" not in html and "home" in html


def test_empty_input():
    assert render_markdown("") == "" and render_markdown("  \n ") == ""


# --- hostile input -------------------------------------------------------------------------------

HOSTILE = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<img src="https://ok.example/a.png" onerror="alert(1)">',
    "<svg onload=alert(1)>",
    "<iframe src=javascript:alert(1)></iframe>",
    "<style>body{display:none}</style>",
    '<a href="javascript:alert(1)">x</a>',
    "<div><b><i>unclosed <script>alert(1)",
    "<<script>script>alert(1)<</script>/script>",
    "[click](javascript:alert(1))",
    "[click](jAvAsCrIpT:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](&#x6A;avascript&#58;alert(1))",
    "[click](java&#09;script:alert(1))",
    "[click]( javascript:alert(1) )",
    "[click](<javascript:alert(1)>)",
    "[click](vbscript:msgbox(1))",
    "[click](VBScript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![img](javascript:alert(1))",
    "![img](JaVaScRiPt:alert(1))",
    "![img](&#106;avascript:alert(1))",
    "![img](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![img](data:image/png;base64,iVBORw0KGgo=)",
    "![img](mailto:x@example.org)",
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    "[ref]\n\n[ref]: javascript:alert(1)",
    '[x](https://ok.example "title\\" onmouseover=\\"alert(1)")',
    "```js\" onmouseover=\"alert(1)\nx\n```",
    "<a href='https://ok.example' onclick='alert(1)' target=_blank>x</a>",
    "| h |\n|---|\n| <img src=x onerror=alert(1)> |",
    "<!-- <script>alert(1)</script> -->",
    "<form action=https://evil.example><input name=x></form>",
]


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_markdown_renders_inert(source):
    assert_inert(render_markdown(source))


def test_raw_html_is_shown_as_text_not_markup():
    html = render_markdown("<script>alert(1)</script>")
    assert html == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"


def test_javascript_link_is_not_a_link():
    for source in ("[click](javascript:alert(1))", "[click](&#106;avascript:alert(1))", "[c](jAvAsCrIpT:x)"):
        assert "<a" not in render_markdown(source)


def test_data_image_is_dropped_but_alt_kept():
    html = render_markdown("![kitten](data:image/png;base64,iVBORw0KGgo=)")
    assert "src=" not in html and 'alt="kitten"' in html


# The sanitiser is the second layer: give it hostile HTML directly, as if markdown-it had let it through.
HOSTILE_HTML = [
    '<a href="jAvAsCrIpT:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href="&#x6A;&#x61;vascript:alert(1)">x</a>',
    '<a href=" \tjava\nscript:alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    '<img src="javascript:alert(1)">',
    '<img src="data:image/png;base64,AAAA">',
    '<img src="https://ok.example/a.png" onerror="alert(1)" onload="alert(2)">',
    '<div onclick="alert(1)"><p style="background:url(javascript:alert(1))">x</p></div>',
    '<td style="text-align:left;background:url(javascript:alert(1))">x</td>',
    "<script>alert(1)</script><style>*{}</style><iframe src=x></iframe><object data=x></object>",
    "<svg><script>alert(1)</script></svg><math><mi>x</mi></math>",
    '<a href="https://ok.example" target="_blank" rel="opener">x</a>',
    "<b><i>unclosed",
    '<code class="language-js x" onmouseover="y">z</code>',
]


@pytest.mark.parametrize("html", HOSTILE_HTML)
def test_sanitizer_layer_alone(html):
    out = sanitize_html(html)
    assert_inert(out)
    assert "style=" not in out or re.fullmatch(r'.*style="text-align:\s*\w+".*', out, re.S), out
    assert "target=" not in out and "opener" not in out.replace("noopener", "")


def test_sanitizer_closes_nested_unclosed_tags():
    assert sanitize_html("<b><i>unclosed") == "<b><i>unclosed</i></b>"


def test_every_link_gets_rel_even_without_href():
    out = sanitize_html('<a href="https://ok.example" rel="me">a</a><a>b</a>')
    assert out.count(REL) == 2 and 'rel="me"' not in out
