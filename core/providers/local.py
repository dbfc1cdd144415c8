"""Local background remover: u2netp (U²-Net-lite) through onnxruntime, model shipped in the package.

Needs the ``local-model`` extra (onnxruntime), imported on first use. One inference session per
model file and process, shared by every ``LocalRemover`` and thread (``run`` is thread-safe).
Pre- and post-processing live in ``imaging.matting``; licences of the model in ``models/NOTICE.md``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.errors import ConfigurationError, InputError
from core.providers.base import Segmentation
from imaging.matting import (
    binary_mask,
    cutout,
    prediction_to_alpha,
    to_model_input,
    zoom_box,
)

__all__ = ["DEFAULT_SHA256", "LocalRemover", "default_model_path"]

DEFAULT_SHA256 = "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8"

# Resolved model path -> (session, sha256 of the file it was loaded from).
_sessions: dict[Path, tuple[Any, str]] = {}
_sessions_lock = threading.Lock()


def default_model_path() -> Path:
    """The u2netp model shipped inside the package."""
    return Path(__file__).resolve().parent / "models" / "u2netp.onnx"


class LocalRemover:
    """Cuts the product out with a U²-Net-family ONNX model on the CPU (cost 0).

    Per image: one whole-image pass, then either a zoomed pass over the product (when the photo
    holds detail the 320×320 input lost, see ``imaging.matting.zoom_box``) or a mirrored pass; a
    guided filter aligns the alpha with the photo's edges, confined to what the whole-image pass
    supports (a second look cannot add a region it left out). About two forward passes per image.

    Args:
        model_path: the ONNX file; ``None`` uses the shipped u2netp.
        expected_sha256: the file's digest, checked when the model is first loaded; ``None``
            skips the check (for a user-supplied model).
        threads: onnxruntime intra-op threads for the session. One is the best throughput when
            images run in parallel; the first remover to load a given file sets it.

    Raises:
        ValueError: if ``threads`` is below 1 or ``expected_sha256`` is not 64 hex digits.
    """

    name = "local"

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        expected_sha256: str | None = DEFAULT_SHA256,
        threads: int = 1,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if expected_sha256 is not None and not _is_sha256(expected_sha256):
            raise ValueError(f"expected_sha256 must be 64 hex digits, got {expected_sha256!r}")
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self.expected_sha256 = expected_sha256.lower() if expected_sha256 else None
        self.threads = threads

    def remove(self, image: Image.Image, *, source_url: str | None = None) -> Segmentation:
        """Segment ``image``; ``source_url`` is not needed by a local model and is ignored.

        Raises:
            ConfigurationError: the model is missing, fails its checksum or cannot be loaded.
            InputError: the image is empty or no product was found in it.
        """
        if image.width < 1 or image.height < 1:
            raise InputError("image is empty")
        started = time.perf_counter()
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        pred = self._predict(rgb)
        box = zoom_box(pred, rgb.size)
        if box is not None:
            alpha = prediction_to_alpha(
                pred, rgb.size, guide=rgb, zoom=(self._predict(rgb.crop(box)), box)
            )
        else:
            mirrored = self._predict(rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
            alpha = prediction_to_alpha(pred, rgb.size, guide=rgb, mirrored=mirrored)
        try:
            product, bbox = cutout(rgb, alpha)
        except ValueError as exc:
            raise InputError(f"no product found in the image: {exc}") from exc
        details: dict[str, object] = {
            "model": self.model_path.stem,
            "ms": round((time.perf_counter() - started) * 1000),
            "zoom": box is not None,
        }
        return Segmentation(
            cutout=product, mask=binary_mask(alpha), bbox=bbox, provider=self.name, details=details
        )

    def _predict(self, image: Image.Image) -> np.ndarray:
        """The model's fused map (first output, channel 0) for ``image``."""
        session = self.session()
        feed = {session.get_inputs()[0].name: to_model_input(image)}
        return np.asarray(session.run(None, feed)[0])[0, 0]

    def session(self) -> Any:
        """The process-wide onnxruntime session for this model file, loaded on first use.

        Raises:
            ConfigurationError: onnxruntime is not installed, the file is missing, its sha256
                differs from ``expected_sha256``, or onnxruntime cannot load it.
        """
        key = self.model_path.resolve()
        with _sessions_lock:
            if key not in _sessions:
                digest = _sha256(key)
                self._check_digest(digest)
                _sessions[key] = (_load(key, self.threads), digest)
            session, digest = _sessions[key]
        self._check_digest(digest)
        return session

    def _check_digest(self, digest: str) -> None:
        if self.expected_sha256 is not None and digest != self.expected_sha256:
            raise ConfigurationError(
                f"model file {self.model_path} has sha256 {digest}, expected "
                f"{self.expected_sha256}: the file is corrupt or not the expected model"
            )


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the segmentation model {path}: {exc}") from exc
    return digest.hexdigest()


def _load(path: Path, threads: int) -> Any:
    try:
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_state
    except ImportError as exc:
        raise ConfigurationError(
            "the local segmenter needs onnxruntime: install the 'local-model' extra "
            "(pip install 'packshot[local-model]')"
        ) from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle pool threads spin by default while they wait for the next operator, taking CPU
    # from the processes beside them (the Prefect server answering the flow, another photo's
    # encodes). Without spinning the model runs as fast on an idle machine (2 threads:
    # 0.124 s against 0.127 s per 320x320 inference).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # onnxruntime's load errors derive from Exception directly, not from OSError/ValueError.
    load_errors = (
        ort_state.Fail,
        ort_state.InvalidArgument,
        ort_state.InvalidGraph,
        ort_state.InvalidProtobuf,
        ort_state.NoSuchFile,
    )
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except load_errors as exc:
        raise ConfigurationError(f"onnxruntime cannot load {path}: {exc}") from exc
