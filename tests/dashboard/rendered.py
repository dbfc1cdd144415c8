"""What a reader sees of the dashboard's Markdown, read by an independent CommonMark parser.

AppTest hands back the Markdown *source* of every element. ``shown`` renders it with
markdown-it-py (installed with Rich, which Prefect requires) and returns the visible text, so
tests assert what people see rather than how it is escaped; ``assert_inert`` checks that
rendering a source makes no link, image or HTML, and leaves nothing for Streamlit's own
after-parse rewrites (autolinks, ``:shortcodes:``) outside inline code.
"""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

__all__ = ["assert_inert", "markdown_sources", "render", "shown"]

_COMMONMARK = MarkdownIt("commonmark")
_TAG = re.compile(r"<[^>]+>")
_CODE = re.compile(r"<code>.*?</code>", re.DOTALL)
# What GitHub-flavoured autolinks and Streamlit's shortcodes pick out of parsed text (a clock
# time's ":30:" is no shortcode).
_REWRITTEN = re.compile(r"://|www\.|\w@\w|:(?!\d\d:)[\w+-]+:", re.IGNORECASE)
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)


def _text(rendered: str) -> str:
    return html.unescape(_TAG.sub("", rendered)).strip()


def render(source: str) -> str:
    """Markdown ``source`` as HTML, by the CommonMark reference rules."""
    return _COMMONMARK.render(source)


def shown(source: str) -> str:
    """The text a browser shows for Markdown ``source`` (tags dropped, entities decoded)."""
    return _text(render(source))


def assert_inert(source: str, raw: tuple[str, ...] = ()) -> None:
    """Rendering ``source`` makes no link, image or HTML, and Streamlit finds nothing to rewrite.

    Args:
        source: the Markdown an element was given.
        raw: Streamlit-only syntax from the data (``$x$``, ``:red[x]``), which CommonMark does
            not know: none of it may stand unescaped outside inline code.
    """
    rendered = render(source)
    assert "<a " not in rendered and "<img" not in rendered, (source, rendered)
    outside_code = _text(_CODE.sub("", rendered))
    assert not _REWRITTEN.search(outside_code), (source, outside_code)
    bare = _CODE_SPAN.sub("", source)
    assert not [fragment for fragment in raw if fragment in bare], (source, raw)


def markdown_sources(at: AppTest) -> list[str]:
    """Every string on the page that Streamlit renders as Markdown."""
    sources = [
        node.value
        for kind in ("markdown", "caption", "error", "warning", "info", "success", "title")
        for node in at.get(kind)
    ]
    sources += [link.proto.label for link in at.get("page_link")]
    sources += [caption for image in at.get("image") for caption in image.captions]
    for kind in ("button", "download_button", "link_button"):
        for widget in at.get(kind):
            sources += [widget.proto.label, widget.proto.help]
    return [source for source in sources if source]
