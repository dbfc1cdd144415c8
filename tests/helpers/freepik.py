"""Freepik (Magnific) answers as the provider documents and sends them (docs/integrations.md), for respx."""

from __future__ import annotations

import io

import httpx
import pytest
import respx
from PIL import Image, ImageDraw

BASE = "https://api.freepik.com"
KEY = "fpk-test-3b9d7e51c2a84f06"  # distinctive, so a leak is easy to find
TID = "046b6c7f-0b8a-43b9-b35d-6489e6daee91"
RESULT_PATH = "/v1/ai/beta/images/download/t1/high.png"
IMG_URL = "https://ai-statics.freepik.com/completed_task_image.jpg"


def use_freepik(monkeypatch: pytest.MonkeyPatch, **settings: object) -> None:
    """Freepik providers with a fake key, no in-client waiting; extra PACKSHOT_* settings."""
    from core.providers.registry import reset_providers
    from core.settings import get_settings

    env = {
        "SEGMENTER": "freepik",
        "FREEPIK_API_KEY": KEY,
        "FREEPIK_RETRY_BACKOFF_S": "0",
        "FREEPIK_POLL_INTERVAL_S": "0",
        "FREEPIK_POLL_MAX_INTERVAL_S": "0",
    }
    env.update({name.upper(): str(value) for name, value in settings.items()})
    for name, value in env.items():
        monkeypatch.setenv(f"PACKSHOT_{name}", value)
    get_settings.cache_clear()
    reset_providers()


def cutout_png(size: tuple[int, int], *, alpha: bool = True) -> bytes:
    """Freepik's high_resolution PNG: the product opaque, the rest transparent."""
    width, height = size
    box = (int(width * 0.36), int(height * 0.15), int(width * 0.64), int(height * 0.85))
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(image).rounded_rectangle(box, radius=8, fill=(40, 70, 140, 255))
    buffer = io.BytesIO()
    (image if alpha else image.convert("RGB")).save(buffer, "PNG")
    return buffer.getvalue()


def background_jpeg(size: tuple[int, int] = (2048, 2048)) -> bytes:
    """A Mystic result: a soft beige gradient (JPEG)."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image = Image.merge("RGB", [band.point(lambda v: 200 + v // 8) for band in image.split()])
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def remove_background_ok(base: str = BASE) -> httpx.Response:
    """The documented 200 answer of remove-background."""
    return httpx.Response(
        200,
        json={
            "original": f"{base}/v1/ai/beta/images/original/t1/thumbnail.jpg",
            "high_resolution": f"{base}{RESULT_PATH}",
            "preview": f"{base}/v1/ai/beta/images/download/t1/preview.png",
            "url": f"{base}{RESULT_PATH}",
        },
    )


def mock_remove_background(
    router: respx.MockRouter,
    png: bytes,
    *,
    answers: list[httpx.Response] | None = None,
    base: str = BASE,
) -> tuple[respx.Route, respx.Route]:
    """The POST (``answers`` in order, else one success) and the result download."""
    post = router.post(f"{base}/v1/ai/beta/remove-background")
    if answers:
        post.mock(side_effect=answers)
    else:
        post.mock(return_value=remove_background_ok(base))
    download = router.get(f"{base}{RESULT_PATH}").mock(
        return_value=httpx.Response(
            200, content=png, headers={"content-type": "application/octet-stream"}
        )
    )
    return post, download


def mystic(status: str, generated: list[str] | None = None, **extra: object) -> httpx.Response:
    """A Mystic answer in the documented ``data`` wrapper."""
    data = {"task_id": TID, "status": status, "generated": generated or [], **extra}
    return httpx.Response(200, json={"data": data})


def mock_mystic(
    router: respx.MockRouter,
    *,
    polls: list[httpx.Response] | None = None,
    image: bytes | None = None,
    base: str = BASE,
) -> tuple[respx.Route, respx.Route, respx.Route]:
    """Submit → CREATED, then ``polls`` (default IN_PROGRESS, COMPLETED) for every task."""
    steps = polls or [mystic("IN_PROGRESS"), mystic("COMPLETED", [IMG_URL], has_nsfw=[False])]
    submit = router.post(f"{base}/v1/ai/mystic").mock(return_value=mystic("CREATED"))
    poll = router.get(f"{base}/v1/ai/mystic/{TID}").mock(side_effect=_cycle(steps))
    download = router.get(IMG_URL).mock(
        return_value=httpx.Response(
            200, content=image or background_jpeg(), headers={"content-type": "image/jpeg"}
        )
    )
    return submit, poll, download


def _cycle(steps: list[httpx.Response]) -> object:
    """Answer ``steps`` in order and start again after a terminal status (the next task)."""
    state = {"i": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        response = steps[state["i"] % len(steps)]
        state["i"] += 1
        body = response.json()
        data = body.get("data", body)
        if (data.get("status") or data.get("task_status")) in ("COMPLETED", "FAILED"):
            state["i"] = 0
        return httpx.Response(response.status_code, json=body)

    return answer
