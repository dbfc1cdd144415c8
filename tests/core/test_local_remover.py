"""core.providers.local: the shipped u2netp model through onnxruntime, end to end."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.errors import ConfigurationError, InputError
from core.providers.base import BackgroundRemover
from core.providers.local import DEFAULT_SHA256, LocalRemover, default_model_path

pytest.importorskip("onnxruntime")


def disc_scene(size, box):
    """A dark disc on a light, slightly graded background, and its exact mask."""
    ramp = np.linspace(0, 18, size[0], dtype=np.float32)[None, :, None]
    background = np.clip(np.array([236, 233, 228], np.float32) - ramp, 0, 255)
    image = Image.fromarray(np.broadcast_to(background, (size[1], size[0], 3)).astype(np.uint8))
    truth = Image.new("L", size, 0)
    ImageDraw.Draw(image).ellipse(box, fill=(38, 42, 58))
    ImageDraw.Draw(truth).ellipse(box, fill=255)
    return image, np.asarray(truth) > 127


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.fixture
def model_copy(tmp_path):
    """A copy of the shipped model at a path no other test has loaded."""
    path = tmp_path / "model.onnx"
    shutil.copyfile(default_model_path(), path)
    return path


def test_shipped_model_matches_the_pinned_digest():
    digest = hashlib.sha256(default_model_path().read_bytes()).hexdigest()
    assert digest == DEFAULT_SHA256
    assert isinstance(LocalRemover(), BackgroundRemover)


def test_dark_disc_on_light_background_is_segmented():
    image, truth = disc_scene((400, 300), (120, 70, 280, 230))
    result = LocalRemover().remove(image)
    mask = np.asarray(result.mask)
    assert result.mask.mode == "L" and result.mask.size == image.size
    assert set(np.unique(mask)) == {0, 255}
    assert iou(mask == 255, truth) > 0.9
    assert result.bbox == result.mask.getbbox()
    left, top, right, bottom = result.bbox
    assert result.cutout.mode == "RGBA"
    assert right - left <= result.cutout.width < image.width
    assert bottom - top <= result.cutout.height < image.height
    assert result.provider == "local" and result.cost_usd == 0
    assert result.details["model"] == "u2netp" and isinstance(result.details["ms"], int)
    assert result.details["zoom"] is False  # small photo: mirrored second pass instead


def test_small_product_in_a_large_photo_gets_a_zoomed_pass():
    image, truth = disc_scene((1600, 1200), (700, 420, 1020, 740))
    result = LocalRemover().remove(image.convert("RGBA"))
    assert result.details["zoom"] is True
    assert result.mask.size == image.size
    assert iou(np.asarray(result.mask) == 255, truth) > 0.9


def test_one_session_per_model_file_shared_by_removers():
    first, second = LocalRemover(), LocalRemover(threads=2)
    assert first.session() is second.session()


def test_concurrent_first_use_builds_one_session(model_copy, monkeypatch):
    import onnxruntime

    real = onnxruntime.InferenceSession
    built: list[object] = []

    def counting_session(*args, **kwargs):
        time.sleep(0.05)  # widen the window in which a racing thread could build a second one
        session = real(*args, **kwargs)
        built.append(session)
        return session

    monkeypatch.setattr(onnxruntime, "InferenceSession", counting_session)
    removers = [LocalRemover(model_copy) for _ in range(4)]
    sessions: list[object] = []
    start = threading.Barrier(len(removers))  # all four ask at the same moment

    def first_use(remover: LocalRemover) -> None:
        start.wait()
        sessions.append(remover.session())

    threads = [threading.Thread(target=first_use, args=(r,)) for r in removers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    assert all(session is built[0] for session in sessions)


def test_wrong_digest_is_a_configuration_error(model_copy):
    with pytest.raises(ConfigurationError, match="sha256"):
        LocalRemover(model_copy, expected_sha256="0" * 64).session()
    # Also when the file's session already exists for another remover.
    LocalRemover(model_copy).session()
    with pytest.raises(ConfigurationError, match="sha256"):
        LocalRemover(model_copy, expected_sha256="f" * 64).session()


def test_user_model_may_skip_the_digest_check(model_copy):
    # Another model file that still loads: the shipped one plus an unknown protobuf field (#99).
    model_copy.write_bytes(model_copy.read_bytes() + b"\x98\x06\x01")
    image, truth = disc_scene((256, 256), (64, 64, 192, 192))
    result = LocalRemover(model_copy, expected_sha256=None).remove(image)
    assert iou(np.asarray(result.mask) == 255, truth) > 0.9  # loaded and used, digest unchecked
    with pytest.raises(ConfigurationError, match="sha256"):
        LocalRemover(model_copy).session()  # the pinned digest still guards the same file


def test_missing_or_broken_model_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read"):
        LocalRemover(tmp_path / "absent.onnx", expected_sha256=None).session()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ConfigurationError, match="cannot load"):
        LocalRemover(broken, expected_sha256=None).session()


def test_bad_arguments():
    with pytest.raises(ValueError):
        LocalRemover(threads=0)
    with pytest.raises(ValueError):
        LocalRemover(expected_sha256="abc")
    with pytest.raises(InputError):
        LocalRemover().remove(Image.new("RGB", (0, 0)))
