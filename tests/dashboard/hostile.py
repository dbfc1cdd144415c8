"""A job whose values carry Markdown, HTML and Streamlit syntax: what escaping is tested with.

Each value holds what used to become markup on some page: a backtick that ends inline code,
images that make the browser load a URL, links, raw HTML, ``$…$`` math, ``:color[…]``
directives, shortcodes that become icons, bare URLs and addresses that become links, and
lines that would start blocks.
"""

from __future__ import annotations

__all__ = ["ERROR", "FIRST_LINE", "RAW", "SKU", "SOURCE"]

SKU = "__EVIL__"  # bold, were its underscores markup
# A backtick in the path used to end the inline code around the source and start an image.
SOURCE = (
    "https://cdn.example/p/a`![x](http://127.0.0.1:9/p.png)`[click](http://evil.test)"
    "<img>$x$:red[r].jpg?token=secret"
)
FIRST_LINE = "`![x](http://127.0.0.1:9/p.png)` [click](http://evil.test) <img src=x> $x$ :red[boom]"
ERROR = (
    f"{FIRST_LINE}\n"
    "GET http://evil.test/a`b failed **bold** :material_warning: :material/home: :streamlit: "
    ":smile: www.evil.test x@evil.test -> done\n"
    "\n"
    "    indented\n"
    "- item"
)
# Streamlit-only syntax CommonMark does not know: it must never stand unescaped.
RAW = ("$x$", ":red[boom]", ":red[r]", "**bold**", ":material/", SKU)
