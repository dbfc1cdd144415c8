"""What `packshot process` prints on stderr when a job fails: one line for bad input, never
Prefect's traceback of the failed run (unless `-v`); a bug keeps its traceback.

The command runs as a subprocess, as a user runs it: Prefect's console handler writes to the
process's real stderr, which an in-process runner does not capture. The session's Prefect test
server (``PREFECT_API_URL``) serves every run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.images import bomb_png, jpeg_bytes, product_photo, truncated_jpeg

pytestmark = pytest.mark.xdist_group("prefect")

_MAIN = "from deployments.cli import main; main()"


@pytest.fixture(autouse=True)
def _server(prefect_server: str) -> str:
    return prefect_server


def _packshot(*args: str, before: str = "") -> subprocess.CompletedProcess[str]:
    """``packshot process ARGS`` in a fresh interpreter; ``before`` runs first (to plant a bug)."""
    command = [sys.executable, "-c", f"{before}\n{_MAIN}", "process", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=170, check=False)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


BAD_FILES: dict[str, tuple[Callable[[], bytes], str]] = {
    "not_an_image.jpg": (lambda: b"this is plain text, not a photo", "not an image"),
    "empty.jpg": (lambda: b"", "empty|not an image"),
    "truncated.jpg": (truncated_jpeg, "unreadable|truncated"),
    "bomb.png": (bomb_png, "pixels"),
    "tiny.jpg": (lambda: jpeg_bytes(product_photo((150, 120))), "at least 200"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_prints_one_line_and_exits_2(name: str, tmp_path: Path) -> None:
    make, message = BAD_FILES[name]
    photo = tmp_path / name
    photo.write_bytes(make())
    result = _packshot(str(photo), "--sku", "BAD-1")
    assert result.returncode == 2, result.stderr
    lines = _lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert re.match(r"error in (download|remove_background): InputError: ", lines[0]), lines[0]
    assert re.search(message, lines[0], re.I), lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert "FAILED" in result.stdout  # the step table still says what happened


def test_verbose_shows_prefects_account_of_bad_input(tmp_path: Path) -> None:
    photo = tmp_path / "not_an_image.jpg"
    photo.write_bytes(b"plain text")
    result = _packshot(str(photo), "--sku", "BAD-V", "-v")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "InputError" in result.stderr
    assert _lines(result.stderr)[-1].startswith("error in download: InputError: ")


def test_a_bug_keeps_its_traceback(tmp_path: Path) -> None:
    """An exception the pipeline never raises on purpose is shown in full, not as one line."""
    photo = tmp_path / "a.jpg"
    photo.write_bytes(jpeg_bytes(product_photo()))
    # ``tasks.download`` is also the name of the task the package exports: take the module.
    plant = "import importlib\nimportlib.import_module('tasks.download').sniff = lambda d: 1 / 0"
    result = _packshot(str(photo), "--sku", "BUG-1", before=plant)
    assert result.returncode == 1, result.stderr
    assert "Traceback" in result.stderr and "ZeroDivisionError" in result.stderr
    assert _lines(result.stderr)[-1].startswith("error in download: ZeroDivisionError")
