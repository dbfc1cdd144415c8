"""Provider registry and factories: a settings string chooses each implementation.

Expensive providers (model sessions, HTTP clients) are built once per process and reused.
An unknown name is a ``ConfigurationError`` at start-up, never a surprise mid-run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from core.errors import ConfigurationError, ProviderError
from core.providers.base import BackgroundGenerator, BackgroundRemover, Segmentation

if TYPE_CHECKING:
    from PIL import Image

    from core.settings import Settings

__all__ = [
    "GENERATORS",
    "REMOVERS",
    "ChainRemover",
    "check_providers",
    "load_models",
    "new_generator",
    "new_remover",
    "reset_providers",
]


def _local(settings: Settings) -> BackgroundRemover:
    from core.providers.local import LocalRemover

    if settings.model_path is not None:
        return LocalRemover(
            settings.model_path, expected_sha256=None, threads=settings.segmenter_threads
        )
    return LocalRemover(threads=settings.segmenter_threads)


def _passthrough(settings: Settings) -> BackgroundRemover:
    from core.providers.passthrough import PassthroughRemover

    return PassthroughRemover()


def _gradient(settings: Settings) -> BackgroundGenerator:
    from core.providers.gradient import GradientGenerator

    return GradientGenerator()


def _solid(settings: Settings) -> BackgroundGenerator:
    from core.providers.gradient import SolidGenerator

    return SolidGenerator()


def _freepik(settings: Settings) -> BackgroundRemover:
    from core.providers.freepik import FreepikRemover

    return FreepikRemover.from_settings(settings)


def _freepik_mystic(settings: Settings) -> BackgroundGenerator:
    from core.providers.freepik import MysticGenerator

    return MysticGenerator.from_settings(settings)


REMOVERS: dict[str, Callable[[Settings], BackgroundRemover]] = {
    "local": _local,
    "passthrough": _passthrough,
    "freepik": _freepik,
}
GENERATORS: dict[str, Callable[[Settings], BackgroundGenerator]] = {
    "gradient": _gradient,
    "solid": _solid,
    "freepik-mystic": _freepik_mystic,
}

_cache: dict[tuple[str, str], object] = {}
_lock = threading.Lock()


# What a chain asks of a result before it stops: the failed checks in words (empty: good enough).
Judge = Callable[[Segmentation], list[str]]


class ChainRemover:
    """Tries removers in order: one that fails, or whose cut-out is not good enough, hands over.

    ``PACKSHOT_SEGMENTER=local,freepik`` means local first, Freepik when the local model fails
    or when its cut-out fails the mask checks (``judge``): the paid call is made only then.
    When the paid provider fails too, the earlier cut-out is kept (the quality step will send
    it to review). The result's details say what happened: ``fallback`` (providers that
    failed, and why) and ``escalated`` (whose cut-out was not good enough, and why); its cost
    is the sum of every call made.
    """

    def __init__(self, removers: list[BackgroundRemover], judge: Judge | None = None) -> None:
        if not removers:
            raise ConfigurationError("no background remover configured")
        self.removers = removers
        self.judge = judge
        self.name = ",".join(r.name for r in removers)

    def remove(self, image: Image.Image, *, source_url: str | None = None) -> Segmentation:
        """Segment with the first remover whose result is good enough."""
        failures: list[str] = []
        escalated: list[dict[str, str]] = []
        kept: Segmentation | None = None
        spent = 0.0
        for index, remover in enumerate(self.removers):
            last = index == len(self.removers) - 1
            try:
                result = remover.remove(image, source_url=source_url)
            except ProviderError as exc:
                if last and kept is None:
                    raise
                failures.append(f"{remover.name}: {type(exc).__name__}: {exc}")
                continue
            spent += result.cost_usd
            problems = [] if last or self.judge is None else self.judge(result)
            if not problems:
                return _annotated(result, spent, failures, escalated)
            escalated.append({"from": result.provider, "reason": "; ".join(problems)})
            kept = kept or result
        assert kept is not None  # every remover failed or was judged: the first judged stays
        return _annotated(kept, spent, failures, escalated)


def _annotated(
    result: Segmentation, spent: float, failures: list[str], escalated: list[dict[str, str]]
) -> Segmentation:
    """``result`` with the chain's story in its details and the whole chain's cost."""
    if not failures and not escalated:
        return result
    details = dict(result.details)
    if failures:
        details["fallback"] = failures
    if escalated:
        details["escalated"] = escalated
    return Segmentation(
        cutout=result.cutout,
        mask=result.mask,
        bbox=result.bbox,
        provider=result.provider,
        cost_usd=round(spent, 6),
        details=details,
    )


def mask_judge(settings: Settings) -> Judge:
    """The mask checks (``PACKSHOT_QUALITY_*``) as a chain's judge."""
    from imaging.quality import mask_checks, source_alpha

    limits = settings.quality_mask_thresholds

    def judge(result: Segmentation) -> list[str]:
        alpha = source_alpha(result.cutout, result.mask)
        return [c.detail for c in mask_checks(alpha, limits) if not c.passed]

    return judge


def reset_providers() -> None:
    """Forget the providers built so far (tests that change provider settings)."""
    with _lock:
        _cache.clear()


def _build(kind: str, name: str, factory: Callable[[], object]) -> object:
    with _lock:
        if (kind, name) not in _cache:
            _cache[(kind, name)] = factory()
        return _cache[(kind, name)]


def _require_known(names: list[str], registry: Mapping[str, object], what: str) -> None:
    """Raise ``ConfigurationError`` naming the first unknown provider (or an empty choice)."""
    if not names:
        raise ConfigurationError(f"no {what} configured")
    for name in names:
        if name not in registry:
            known = ", ".join(sorted(registry))
            raise ConfigurationError(f"unknown {what} {name!r}; known: {known}")


def new_remover(settings: Settings, only: str | None = None) -> BackgroundRemover:
    """The remover (or chain) named by ``settings.segmenter``, built once per process.

    ``only`` names one remover to use instead (a run that asks for a particular provider).
    """
    names = [only] if only else settings.segmenter_chain
    _require_known(names, REMOVERS, "segmenter")
    removers = [
        _build("remover", name, lambda name=name: REMOVERS[name](settings))  # type: ignore[misc]
        for name in names
    ]
    if len(removers) == 1:
        return removers[0]  # type: ignore[return-value]
    return ChainRemover(removers, mask_judge(settings))  # type: ignore[arg-type]


def load_models(settings: Settings) -> None:
    """Load the local segmentation model now rather than in the first step that uses it.

    For a command with time to spare before its first step (it waits for a Prefect server).
    A model that cannot be loaded is left for that step to report, with its job row.
    """
    from core.providers.local import LocalRemover

    remover = new_remover(settings)
    members = remover.removers if isinstance(remover, ChainRemover) else [remover]
    for member in members:
        if isinstance(member, LocalRemover):
            with contextlib.suppress(ConfigurationError):
                member.session()


def new_generator(settings: Settings) -> BackgroundGenerator:
    """The background generator named by ``settings.backgrounds``, built once per process."""
    name = settings.backgrounds
    _require_known([name], GENERATORS, "background generator")
    return _build("generator", name, lambda: GENERATORS[name](settings))  # type: ignore[return-value]


def check_remover(settings: Settings, name: str) -> None:
    """Fail now when remover ``name`` is unknown or needs a key that is not set."""
    _require_known([name], REMOVERS, "segmenter")
    if name == "freepik" and settings.freepik_api_key is None:
        raise ConfigurationError("PACKSHOT_FREEPIK_API_KEY is not set: Freepik cannot be used")


def check_providers(settings: Settings) -> None:
    """Fail at start-up, not mid-run, when a provider name is unknown."""
    _require_known(settings.segmenter_chain, REMOVERS, "segmenter")
    _require_known([settings.backgrounds], GENERATORS, "background generator")
    uses_freepik = "freepik" in settings.segmenter_chain or settings.backgrounds == "freepik-mystic"
    if uses_freepik and settings.freepik_api_key is None:
        raise ConfigurationError(
            "PACKSHOT_FREEPIK_API_KEY is not set, but PACKSHOT_SEGMENTER / PACKSHOT_BACKGROUNDS "
            "use Freepik"
        )
    from core.publishers.registry import check_publisher

    check_publisher(settings)
