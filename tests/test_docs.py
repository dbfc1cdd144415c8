"""The documentation in the repository stays true to the repository.

- Every relative link of README.md, CONTRIBUTING.md and docs/*.md resolves: the file exists, and a
  ``#fragment`` names a heading of it (GitHub's anchor rule).
- Every ``PACKSHOT_*`` variable the docs name is a setting of ``core.settings.Settings`` (or one of
  the few test and benchmark variables below, each still read where it says).
- No file of the project cites documents that live outside it (the former shared notes).
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path

import pytest

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`]*`")
# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis.
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_VARIABLE = re.compile(r"\bPACKSHOT_[A-Z0-9_]*[A-Z0-9]_?")

# Variables the docs name that are not settings: each is read by the file given, and only there.
NOT_SETTINGS = {
    "PACKSHOT_TEST_PG_URL": "tests/helpers/postgres.py",
    "PACKSHOT_REQUIRE_PG": "tests/helpers/postgres.py",
    "PACKSHOT_SEGMENTATION_DATA": "benchmarks/segmentation.py",
}

# Names of the notes that used to live outside the repository, split so this file does not match.
_OUTSIDE = re.compile(
    "|".join(
        re.escape(name)
        for name in (
            "../" + "shared",
            "design" + ".md",
            "external-apis" + ".md",
            "prefect-notes" + ".md",
            "performance" + ".md",
            "style" + ".md",
            "image-flow" + ".md",
        )
    )
)
_SKIP_DIRS = {
    ".git",
    ".venv",
    ".packshot",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "__pycache__",
    "node_modules",
    "test-artifacts",
}
_TEXT_SUFFIXES = {
    ".py",
    ".md",
    ".toml",
    ".yaml",
    ".yml",
    ".cfg",
    ".ini",
    ".txt",
    ".example",
    ".mako",
}
_TEXT_NAMES = {"Makefile", "run", ".gitignore"}


def _outside_fences(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines outside fenced code blocks."""
    lines: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    kept = "".join(
        ch
        for ch in text
        if ch in " -_" or unicodedata.category(ch)[0] in "LN"  # letters and numbers
    )
    return kept.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every heading anchor of a Markdown file, duplicates numbered as GitHub does."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _outside_fences(path):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def link_problems(path: Path, root: Path = ROOT) -> list[str]:
    """Relative links of ``path`` whose file or heading does not exist (code spans ignored)."""
    problems = []
    for number, line in _outside_fences(path):
        for target in _LINK.findall(_INLINE_CODE.sub("", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                continue  # http:, https:, mailto:
            file_part, _, fragment = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(root)}:{number}: {target}"
            if not resolved.exists():
                problems.append(f"{where}: no such file")
            elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
                problems.append(f"{where}: no heading #{fragment} in {resolved.name}")
    return problems


def _settings_variables() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias if isinstance(alias, str) else f"PACKSHOT_{name.upper()}")
    return names


def test_docs_exist() -> None:
    assert (ROOT / "docs" / "architecture.md") in DOCS
    assert len(DOCS) >= 7, [p.name for p in DOCS]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    problems = link_problems(path)
    assert not problems, "\n".join(problems)


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Some title\n\n## Part `two`\n", encoding="utf-8")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Doc\n\n[fine](other.md#part-two) [self](#doc) [web](https://example.com/x.md)\n"
        "[gone](missing.md) ![pic](img/none.png) [bad anchor](other.md#nope)\n"
        "```\n[in code](ignored.md)\n```\n`[inline](ignored.md)`\n",
        encoding="utf-8",
    )
    problems = link_problems(doc, root=tmp_path)
    assert [p.split(": ", 2)[1:] for p in problems] == [
        ["missing.md", "no such file"],
        ["img/none.png", "no such file"],
        ["other.md#nope", "no heading #nope in other.md"],
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Freepik (Magnific)", "freepik-magnific"),
        ("prefect.yaml", "prefectyaml"),
        ("The server's database", "the-servers-database"),
        (
            "What may import what (enforced by tests/test_architecture.py)",
            "what-may-import-what-enforced-by-teststest_architecturepy",
        ),
        ("Where to go `next`", "where-to-go-next"),
    ],
)
def test_slug_follows_github(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_docs_name_only_real_settings() -> None:
    known = _settings_variables()
    unknown = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), start=1):
            for name in _VARIABLE.findall(line):
                if name.endswith("_"):  # a family written as PACKSHOT_PRICE_*_USD
                    ok = any(k.startswith(name) for k in known)
                else:
                    ok = name in known or name in NOT_SETTINGS
                if not ok:
                    unknown.append(f"{path.relative_to(ROOT)}:{number}: {name}")
    assert not unknown, "\n".join(unknown)


@pytest.mark.parametrize("name", sorted(NOT_SETTINGS))
def test_variables_outside_settings_are_still_read(name: str) -> None:
    reader = NOT_SETTINGS[name]
    assert name in (ROOT / reader).read_text(encoding="utf-8"), f"{reader} no longer reads {name}"
    assert name not in _settings_variables(), f"{name} is a setting now: drop it from NOT_SETTINGS"


def _project_files() -> list[Path]:
    files = []
    stack = [ROOT]
    while stack:
        folder = stack.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                if entry.name not in _SKIP_DIRS:
                    stack.append(entry)
            elif entry.suffix in _TEXT_SUFFIXES or entry.name in _TEXT_NAMES:
                files.append(entry)
    return sorted(files)


def test_nothing_cites_documents_outside_the_repository() -> None:
    citing = []
    for path in _project_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            match = _OUTSIDE.search(line)
            if match:
                citing.append(f"{path.relative_to(ROOT)}:{number}: {match.group()}")
    assert not citing, "\n".join(citing)
