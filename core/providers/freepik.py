"""Freepik (Magnific) providers: cloud background removal and Mystic AI backgrounds.

``freepik`` (remover) hands Freepik a URL of the photo, downloads the ``high_resolution`` PNG
at once (its URL lives five minutes), takes the alpha as the product's matte and cuts the
*source* pixels with it, exactly like the local remover. ``freepik-mystic`` (generator)
renders a variant's prompt by text to image: submit a task, poll it with backoff until it
completes or fails, download the image at once, crop it to the requested square. Variants
without a prompt (and themes that forbid AI, whose prompts the step removes) are rendered by
the local gradient renderer, and the details say so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from PIL import Image, ImageOps

from core.clients.freepik import FreepikClient, MysticTask, new_http_client
from core.errors import ConfigurationError, InputError, ProviderRejected, ProviderUnavailable
from core.pricing import ENDPOINTS, mystic_endpoint, price_usd
from core.providers.base import BackgroundGenerator, GeneratedBackground, Segmentation
from core.urls import redact_url
from imaging.codec import InvalidImage, decode, sniff
from imaging.matting import binary_mask, cutout

if TYPE_CHECKING:
    import httpx

    from core.settings import Settings
    from core.themes import BackgroundVariant

__all__ = ["FreepikRemover", "MysticGenerator", "new_freepik_client"]

_MAX_RESULT_PIXELS = 60_000_000  # Freepik documents ≤ 25 MP; leave room, refuse bombs
_ASPECT_TOLERANCE = 0.02
_DONE = ("COMPLETED", "FAILED")

NO_SOURCE_URL = (
    "Freepik fetches the photo itself and needs an http(s) URL of a JPG or PNG of at most "
    "20 MB; this job has none (the source is a local file or another format, and the object "
    "store cannot hand out public URLs). Use an S3 store (presigned URLs), an http(s) JPG/PNG "
    "source, or PACKSHOT_SEGMENTER=freepik,local to fall back to the local model"
)


def new_freepik_client(
    settings: Settings,
    *,
    http: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> FreepikClient:
    """The API client configured by ``settings`` (base URL, header, timeouts, retries).

    Raises:
        ConfigurationError: ``PACKSHOT_FREEPIK_API_KEY`` is not set.
    """
    if settings.freepik_api_key is None:
        raise ConfigurationError(
            "PACKSHOT_FREEPIK_API_KEY is not set, but a Freepik provider is configured "
            "(PACKSHOT_SEGMENTER / PACKSHOT_BACKGROUNDS)"
        )
    if http is None:
        http = new_http_client(
            settings.freepik_base_url,
            connect_timeout_s=settings.freepik_connect_timeout_s,
            read_timeout_s=settings.freepik_read_timeout_s,
        )
    return FreepikClient(
        http,
        api_key=settings.freepik_api_key,
        auth_header=settings.freepik_auth_header,
        max_retries=settings.freepik_max_retries,
        backoff_s=settings.freepik_retry_backoff_s,
        max_retry_after_s=settings.freepik_max_retry_after_s,
        sleep=sleep,
    )


class FreepikRemover:
    """Background removal by ``POST /v1/ai/beta/remove-background``.

    Args:
        client: the API client.
        price_usd: what one call costs (recorded on the step).
        max_download_bytes: largest result PNG accepted.
    """

    name = "freepik"

    def __init__(self, client: FreepikClient, *, price_usd: float, max_download_bytes: int) -> None:
        self.client = client
        self.price_usd = price_usd
        self.max_download_bytes = max_download_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> FreepikRemover:
        """Build from settings (the registry's factory)."""
        return cls(
            new_freepik_client(settings),
            price_usd=price_usd(settings, "remove-background"),
            max_download_bytes=settings.freepik_max_download_bytes,
        )

    def remove(self, image: Image.Image, *, source_url: str | None = None) -> Segmentation:
        """Segment ``image``; Freepik fetches the same photo from ``source_url``.

        Raises:
            ProviderRejected: no http(s) ``source_url``; Freepik refused the request; the
                result is not a PNG with alpha, or its shape differs from the source.
            ProviderUnavailable / ProviderRateLimited: transient, after in-client retries.
            ConfigurationError: the key, credits or plan were refused.
            InputError: Freepik found no product (the alpha is empty).
        """
        if not source_url or urlsplit(source_url).scheme not in ("http", "https"):
            raise ProviderRejected(NO_SOURCE_URL)
        started = time.perf_counter()
        answer = self.client.remove_background(source_url)
        result = self.client.download(answer.high_resolution, max_bytes=self.max_download_bytes)
        alpha, result_size = _alpha_from_png(result.data, image.size)
        try:
            product, bbox = cutout(image, alpha)
        except ValueError as exc:
            raise InputError(f"Freepik found no product in the image: {exc}") from exc
        details: dict[str, object] = {
            "endpoint": "remove-background",
            "source": redact_url(source_url),
            "requests": answer.attempts + result.attempts,
            "result_size": list(result_size),
            "ms": round((time.perf_counter() - started) * 1000),
        }
        return Segmentation(
            cutout=product,
            mask=binary_mask(alpha),
            bbox=bbox,
            provider=self.name,
            cost_usd=self.price_usd,
            details=details,
        )


def _alpha_from_png(data: bytes, size: tuple[int, int]) -> tuple[Image.Image, tuple[int, int]]:
    """The result's alpha at the source ``size``, and the result's own size."""
    if sniff(data) != "png":
        raise ProviderRejected(f"Freepik's result is not a PNG (first bytes {data[:8].hex()})")
    try:
        result = decode(data, max_pixels=_MAX_RESULT_PIXELS, min_side=1)
    except InvalidImage as exc:
        raise ProviderRejected(f"Freepik's result PNG is unreadable: {exc}") from exc
    if result.mode != "RGBA":
        raise ProviderRejected("Freepik's result PNG has no transparency (no alpha channel)")
    alpha = result.getchannel("A")
    if alpha.size != size:
        source_ratio, result_ratio = size[0] / size[1], alpha.width / alpha.height
        if abs(result_ratio / source_ratio - 1) > _ASPECT_TOLERANCE:
            raise ProviderRejected(
                f"Freepik's cutout is {alpha.width}×{alpha.height} but the source is "
                f"{size[0]}×{size[1]}: different shape (orientation or crop)"
            )
        alpha = alpha.resize(size, Image.Resampling.BILINEAR)
    return alpha, result.size


class MysticGenerator:
    """Backgrounds by Mystic text to image (``POST /v1/ai/mystic``, then polling).

    Args:
        client: the API client.
        prices: USD per image by endpoint (``mystic-1k`` …).
        local: renders variants without a prompt.
        poll_interval_s / poll_max_interval_s: first and longest wait between polls (×1.5).
        deadline_s: total time allowed for one task.
        max_download_bytes: largest generated image accepted.
        sleep / clock: how to wait and to read monotonic time (tests pass fakes).
    """

    name = "freepik-mystic"

    def __init__(
        self,
        client: FreepikClient,
        *,
        prices: Mapping[str, float],
        local: BackgroundGenerator,
        poll_interval_s: float = 2.0,
        poll_max_interval_s: float = 5.0,
        deadline_s: float = 300.0,
        max_download_bytes: int = 100_000_000,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.prices = dict(prices)
        self.local = local
        self.poll_interval_s = poll_interval_s
        self.poll_max_interval_s = max(poll_max_interval_s, poll_interval_s)
        self.deadline_s = deadline_s
        self.max_download_bytes = max_download_bytes
        self._sleep = sleep
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> MysticGenerator:
        """Build from settings (the registry's factory)."""
        from core.providers.gradient import GradientGenerator

        return cls(
            new_freepik_client(settings),
            prices={name: price_usd(settings, name) for name in ENDPOINTS if "mystic" in name},
            local=GradientGenerator(),
            poll_interval_s=settings.freepik_poll_interval_s,
            poll_max_interval_s=settings.freepik_poll_max_interval_s,
            deadline_s=settings.freepik_mystic_deadline_s,
            max_download_bytes=settings.freepik_max_download_bytes,
        )

    def generate(self, variant: BackgroundVariant, size: int, *, seed: int) -> GeneratedBackground:
        """Render ``variant``'s prompt at ``size`` × ``size``; no prompt → local gradient.

        Mystic takes no seed: ``seed`` only reaches the local renderer, and a variant with its
        own ``seed`` asks Mystic for ``fixed_generation`` (same settings, same image).

        Raises:
            ProviderRejected: the task FAILED, completed without images, or was refused.
            ProviderUnavailable: the deadline passed, or transient errors outlasted retries.
            ConfigurationError: the key, credits or plan were refused.
        """
        if not variant.prompt:
            return self._local(variant, size, seed)
        endpoint = mystic_endpoint(variant.resolution)
        if endpoint not in self.prices:
            raise ConfigurationError(f"no price for {endpoint}; set PACKSHOT_PRICE_*_USD")
        started = self._clock()
        task = self.client.create_mystic_task(_payload(variant))
        task, polls, requests = self._wait(task, started)
        result = self.client.download(task.generated[0], max_bytes=self.max_download_bytes)
        image = _square(result.data, size)
        details: dict[str, object] = {
            "endpoint": endpoint,
            "task_id": task.task_id,
            "model": variant.model,
            "aspect_ratio": variant.aspect_ratio,
            "polls": polls,
            "requests": requests + result.attempts,
            "ms": round((self._clock() - started) * 1000),
        }
        return GeneratedBackground(
            image=image, provider=self.name, cost_usd=self.prices[endpoint], details=details
        )

    def _local(self, variant: BackgroundVariant, size: int, seed: int) -> GeneratedBackground:
        rendered = self.local.generate(variant, size, seed=seed)
        reason = "variant has no prompt (or its theme does not allow AI): rendered locally"
        return GeneratedBackground(
            image=rendered.image,
            provider=rendered.provider,
            cost_usd=rendered.cost_usd,
            details={**rendered.details, "fallback": reason},
        )

    def _wait(self, task: MysticTask, started: float) -> tuple[MysticTask, int, int]:
        """Poll until COMPLETED or FAILED; returns the task, polls and requests made."""
        interval, polls, requests = self.poll_interval_s, 0, task.attempts
        while task.status not in _DONE:
            left = self.deadline_s - (self._clock() - started)
            if left <= 0:
                raise ProviderUnavailable(
                    f"Mystic task {task.task_id} still {task.status} after {self.deadline_s:g} s"
                )
            self._sleep(min(interval, left))
            task = self.client.mystic_task(task.task_id)
            polls, requests = polls + 1, requests + task.attempts
            interval = min(interval * 1.5, self.poll_max_interval_s)
        if task.status == "FAILED":
            reason = task.error or "no reason given"
            raise ProviderRejected(f"Mystic task {task.task_id} FAILED: {reason}")
        if not task.generated:
            raise ProviderRejected(f"Mystic task {task.task_id} COMPLETED without an image")
        return task, polls, requests


def _payload(variant: BackgroundVariant) -> dict[str, object]:
    return {
        "prompt": variant.prompt,
        "resolution": variant.resolution,
        "aspect_ratio": variant.aspect_ratio,
        "model": variant.model,
        "fixed_generation": variant.seed is not None,
    }


def _square(data: bytes, size: int) -> Image.Image:
    """The generated image, centre-cropped to a square and resized to ``size``."""
    try:
        image = decode(data, max_pixels=_MAX_RESULT_PIXELS, min_side=1)
    except InvalidImage as exc:
        raise ProviderRejected(f"Mystic's image is unreadable: {exc}") from exc
    return ImageOps.fit(image.convert("RGB"), (size, size), Image.Resampling.LANCZOS)
