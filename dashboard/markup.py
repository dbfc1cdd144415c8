"""The one rule for putting values into Markdown or HTML: they show as text, never as markup.

SKUs, themes, URLs, keys, error messages and provider names come from outside (webhook
payloads, source servers, provider APIs). Streamlit renders Markdown in ``st.markdown``,
``st.caption``, alerts, widget labels and ``help`` tooltips, and adds its own syntax on top:
``$…$`` (LaTeX), ``:color[…]`` directives, ``:emoji:`` shortcodes, ``:material/icon:``.

Escaping every ASCII punctuation character stops all of that at parse time, but Streamlit
also rewrites the *parsed text* afterwards, where an escape no longer exists: bare URLs,
``www.`` names and e-mail addresses become links (GitHub-flavoured autolinks),
``:material_x:`` and ``:streamlit:`` become icons, ``->`` becomes an arrow. A word that would be
rewritten is shown as inline code instead, where none of this applies: a URL in an error
message reads as code and copies exactly, and it is never a link.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote, urlsplit

__all__ = ["html_text", "md_code", "md_link", "md_text", "safe_href"]

# Every ASCII punctuation character: CommonMark lets any of them be backslash-escaped.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# Words Streamlit rewrites after parsing, whatever their escapes.
_LIVE_WORD = re.compile(
    r"""
    ://                          # scheme://… : autolinks
    | (?:^|[^A-Za-z0-9])www\.    # www.example.com : autolinks
    | [-.\w+]@[-\w]+\.           # user@example.com : e-mail autolinks
    | :[\w+-]+:                  # :smile:, :material_home:, :streamlit: : emoji and icons
    """,
    re.VERBOSE | re.IGNORECASE,
)
# Streamlit's typographic replacements, applied to whole words.
_SYMBOLS = frozenset({"<->", "->", "<-", "--", ">=", "<=", "~="})
_WORDS = re.compile(r"(\s+)")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BACKTICKS = re.compile(r"`+")
_LINK_SCHEMES = ("http", "https")


def _word(word: str) -> str:
    if word in _SYMBOLS or _LIVE_WORD.search(word):
        return md_code(word)
    return _PUNCTUATION.sub(r"\\\1", word)


def md_text(value: object) -> str:
    """``value`` as Markdown that Streamlit shows as exactly that text.

    Every punctuation character is escaped; words Streamlit would turn into a link, an icon or
    a symbol after parsing are shown as inline code. Lines stay lines (hard breaks); blank lines
    and leading indentation, which would start new blocks, are dropped.

    Example:
        >>> md_text("see [docs](x) at $5")
        'see \\\\[docs\\\\]\\\\(x\\\\) at \\\\$5'
        >>> md_text("GET http://cdn.example/a.jpg failed")
        'GET ` http://cdn.example/a.jpg ` failed'
    """
    lines = [line.strip() for line in _LINE_BREAK.split(str(value))]
    return "  \n".join(
        "".join(part if part.isspace() else _word(part) for part in _WORDS.split(line) if part)
        for line in lines
        if line
    )


def md_code(value: object) -> str:
    """``value`` as a Markdown inline code span, whatever backticks it holds.

    The fence is one backtick longer than the longest run inside, and one space pads each
    side (CommonMark strips exactly one), so a value that starts or ends with a backtick is
    shown whole. Line breaks become spaces: a code span cannot hold a blank line.

    Example:
        >>> md_code("a`b")
        '`` a`b ``'
    """
    text = _LINE_BREAK.sub(" ", str(value))
    if not text:
        return ""
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    return f"{fence} {text} {fence}"


def safe_href(url: str) -> str | None:
    """``url`` when a browser may follow it from the page (http or https), else None.

    Example:
        >>> safe_href("https://bucket.example/a.jpg"), safe_href("javascript:alert(1)")
        ('https://bucket.example/a.jpg', None)
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in _LINK_SCHEMES or not parts.netloc:
        return None
    return url.strip()


def md_link(text: object, url: str) -> str:
    """A Markdown link with escaped text; plain escaped text when ``url`` is not http(s).

    The destination is written in angle brackets with spaces and brackets percent-encoded,
    so no character of the URL can end it early.

    Example:
        >>> md_link("Prefect UI", "http://127.0.0.1:4200")
        '[Prefect UI](<http://127.0.0.1:4200>)'
    """
    href = safe_href(url)
    if href is None:
        return md_text(text)
    destination = quote(href, safe="!#$%&'*+,/:;=?@[]~()-._")
    return f"[{md_text(text)}](<{destination}>)"


def html_text(value: object) -> str:
    """``value`` as HTML text or a quoted attribute value (``&``, ``<``, ``>`` and quotes escaped).

    Example:
        >>> html_text('<img src="x">')
        '&lt;img src=&quot;x&quot;&gt;'
    """
    return html.escape(str(value), quote=True)
