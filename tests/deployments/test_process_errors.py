"""What `packshot process` prints on stderr when a job fails: one line for bad input, never
Prefect's traceback of the failed run (unless `-v`); a bug keeps its traceback.

The command runs as a subprocess, as a user runs it: Prefect's console handler writes to the
process's real stderr, which an in-process runner does not capture. The session's Prefect test
server (``PREFECT_API_URL``) serves every run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployments.cli import app
from tests.helpers.http_server import Reply, Script, serve
from tests.helpers.images import bomb_png, jpeg_bytes, product_photo, truncated_jpeg

pytestmark = pytest.mark.xdist_group("prefect")

_MAIN = "from deployments.entry import main; main()"


@pytest.fixture(autouse=True)
def _server(prefect_server: str) -> str:
    return prefect_server


def _packshot(
    *args: str, before: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``packshot process ARGS`` in a fresh interpreter; ``before`` runs first (to plant a bug)."""
    command = [sys.executable, "-c", f"{before}\n{_MAIN}", "process", *args]
    environ = os.environ | (env or {})
    return subprocess.run(
        command, capture_output=True, text=True, timeout=170, check=False, env=environ
    )


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


def test_the_flow_runs_with_the_collector_on_and_what_start_up_loaded_frozen(
    tmp_path: Path,
) -> None:
    """The command imports with garbage collection off (core.heap); its steps run with it on.
    A planted failure in the first step reports what the step saw."""
    photo = tmp_path / "a.jpg"
    photo.write_bytes(jpeg_bytes(product_photo()))
    plant = (
        "import gc, importlib\n"
        "def sniff(data):\n"
        "    raise RuntimeError(f'collecting={gc.isenabled()} frozen={gc.get_freeze_count() > 0}')\n"
        "importlib.import_module('tasks.download').sniff = sniff"
    )
    result = _packshot(str(photo), "--sku", "GC-1", before=plant)
    assert result.returncode == 1, result.stderr
    assert _lines(result.stderr)[-1] == (
        "error in download: RuntimeError: collecting=True frozen=True"
    )


def test_failed_download_without_sha256_is_one_line(tmp_path: Path) -> None:
    """Without --sha256 the photo is fetched before the job exists; a 404 is still one line,
    and the ``[...]`` in its URL is printed as it is, not taken for markup."""
    script = Script()  # no routes: every path answers 404
    with serve(script) as base:
        result = _packshot(f"{base}/[bold]x[/bold]/[red].jpg", "--sku", "GONE-1")
    assert result.returncode == 2, result.stderr
    assert _lines(result.stderr) == [
        f"error: InputError: image host answered HTTP 404 for {base}/[bold]x[/bold]/[red].jpg"
    ]
    assert "Traceback" not in result.stdout + result.stderr
    assert script.hits == {"/[bold]x[/bold]/[red].jpg": 1}


def test_refused_private_address_without_sha256_is_one_line(tmp_path: Path) -> None:
    script = Script()
    script.add("/a.jpg", Reply(200, jpeg_bytes(product_photo())))
    with serve(script) as base:
        result = _packshot(
            f"{base}/a.jpg", "--sku", "PRIV-1", env={"PACKSHOT_ALLOW_PRIVATE_SOURCES": "false"}
        )
    assert result.returncode == 2, result.stderr
    lines = _lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: InputError: image URL "), lines
    assert "private" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert script.hits == {}


def test_usage_errors_print_brackets_literally(tmp_path: Path) -> None:
    missing = tmp_path / "[red]photo[/red].jpg"
    result = CliRunner().invoke(app, ["process", str(missing), "--sku", "X"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: no such file: {missing}"
