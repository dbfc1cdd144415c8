"""Values from outside reach every page as text: no link, image, HTML, math or icon.

The hostile job's SKU, source URL and error message carry Markdown, HTML and Streamlit syntax;
each page is checked as the browser would read it (``tests.dashboard.rendered``).
"""

from __future__ import annotations

import html
import re

import pytest
from streamlit.testing.v1 import AppTest

from core.urls import redact_url
from dashboard.htmlviews import Link, table_html
from dashboard.markup import html_text, md_code, md_link, md_text, safe_href
from tests.dashboard.hostile import ERROR, FIRST_LINE, RAW, SKU, SOURCE
from tests.dashboard.rendered import assert_inert, markdown_sources, render, shown


def _from_data(at: AppTest) -> list[str]:
    """The page's Markdown sources that carry any of the hostile job's values."""
    markers = ("EVIL", "evil.test", "127.0.0.1:9")
    return [source for source in markdown_sources(at) if any(m in source for m in markers)]


def _html(at: AppTest) -> str:
    return " ".join(node.value for node in at.get("html"))


def test_job_page_shows_sku_source_and_error_as_text(app, hostile_job):
    at = app(job=str(hostile_job))
    sources = _from_data(at)
    for source in sources:
        assert_inert(source, RAW)
    texts = [shown(source) for source in sources]
    assert f"{SKU} · default" in texts[0], "the title"
    source = redact_url(SOURCE)
    assert "?token=***" in source and "<img>$x$:red[r].jpg" in source
    assert sum(f"source {source} · started" in text for text in texts) == 1, "the caption"
    assert f"Source {source}" in texts, "the Original tab"
    error = shown(at.error[0].value)
    assert error.startswith("Failed in composite · ProviderUnavailable\n")
    assert ERROR.replace("\n\n    ", "\n") + " (4 attempts)" in error, "every line, as text"
    # The step table is HTML: its error cell is escaped text.
    html = _html(at)
    assert "<img" not in html and "<a " not in html
    assert html_text(f"ProviderUnavailable: {FIRST_LINE}") in html


def test_job_table_and_failures_list_show_the_error_as_text(app, hostile_job):
    at = app()
    sources = _from_data(at)
    for source in sources:
        assert_inert(source, RAW)
    labels = [shown(link.proto.label) for link in at.get("page_link")]
    assert labels.count(SKU) == 1 and labels.count(f"{SKU} · default") == 1
    assert any(text.value == FIRST_LINE for text in at.text), "failures list: plain text"
    # The table's error column: the first line (short enough to show whole).
    cell = f"composite · ProviderUnavailable: {FIRST_LINE}"
    assert cell in [shown(source) for source in sources]


def test_jobs_page_shows_the_error_as_text(app, hostile_job):
    at = app()
    at.switch_page("app_pages/jobs.py").run()
    sources = _from_data(at)
    assert any(
        shown(source).startswith("composite · ProviderUnavailable: `![x]") for source in sources
    )
    for source in sources:
        assert_inert(source, RAW)


def test_a_job_id_typed_in_the_address_bar_is_shown_as_text(app):
    typed = "`![x](http://127.0.0.1:9/p.png)` [click](http://evil.test)"
    at = app(job=typed)
    assert_inert(at.error[0].value)
    assert shown(at.error[0].value).startswith(f"{typed} is not a job id")


@pytest.mark.parametrize(
    "value",
    [
        "a`b ``c",
        "[click](http://evil.test) ![x](http://127.0.0.1:9/p.png) <img src=x>",
        "$x$ :red[r] :smile: :material/home: :material_home: :streamlit: <- -> --",
        "http://evil.test www.evil.test (www.evil.test) x@evil.test mailto:x@evil.test",
        "# h\n- item\n1. item\n> quote\n---\n| a | b |\n~~s~~ *e* _e_ &amp; \\ end\\",
        "12:30:45",
    ],
)
def test_md_text_shows_exactly_the_value_and_nothing_else(value):
    source = md_text(value)
    assert_inert(source, (*RAW, "~~s~~", "*e*", "_e_"))
    lines = [line.strip() for line in value.splitlines() if line.strip()]
    assert shown(source) == "\n".join(lines)


@pytest.mark.parametrize("value", ["plain", "a`b", "``", "`start", "end`", " padded ", "a\n\nb"])
def test_md_code_holds_any_backticks(value):
    code = re.fullmatch(r"<p><code>(.*)</code></p>\n", render(md_code(value)), re.DOTALL)
    assert code is not None and html.unescape(code[1]) == value.replace("\n", " ")


def test_links_only_for_http_urls():
    assert safe_href("javascript:alert(1)") is None and safe_href("file:///etc/passwd") is None
    assert safe_href("https://bucket.example/a.jpg?X-Amz-Signature=1") is not None
    assert md_link("run", "javascript:alert(1)") == "run"
    link = md_link("open [x]", "http://127.0.0.1:4200/runs/a)b <c>")
    assert link == "[open \\[x\\]](<http://127.0.0.1:4200/runs/a)b%20%3Cc%3E>)"
    html = table_html(
        ["download"], [[Link("file", "javascript:alert(1)")], [Link("ok", "https://s3.example/a")]]
    )
    assert "javascript" not in html and '<a href="https://s3.example/a"' in html
