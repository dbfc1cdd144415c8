"""Publisher ``shopify``: a job's master composites become the product's media, exactly once.

For one (sku, sha256, theme):

1. find the variant whose SKU equals ``sku`` exactly (the search is fuzzy; none after a few
   searches → permanent "product not found in Shopify", several → ConfigurationError);
2. list the product's media and sort Packshot's own (alt-text marker, see ``_marker``) for this
   SKU and theme into *kept* (this photo, any variant already there: a replay) and *stale*
   (an earlier photo, or FAILED); media without our marker are never touched;
3. add the missing composites with ``productUpdate(media:)`` from an https URL of the store
   (S3 presigned) or a staged upload of the bytes (local store);
4. wait until every one is READY (FAILED → permanent error with Shopify's reason);
5. show the first composite on the variant (detach the image it showed, append ours);
6. delete the stale media, last, so the product is never left without images.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from core.backoff import backoff_s
from core.clients.shopify import Gate, ShopifyClient, ShopifyUserError
from core.clients.shopify_admin import (
    ADD_MEDIA,
    APPEND,
    DELETE,
    DETACH,
    STAGE,
    ShopifyAdmin,
    VariantMatch,
    add_media_vars,
    stage_vars,
    variant_media_vars,
)
from core.errors import PublishError
from core.publishers._shopify_survey import Survey, find_variant, match, media_inputs, take_survey
from core.publishers.base import (
    PlannedMutation,
    PublishImage,
    PublishPlan,
    PublishRequest,
    PublishResult,
)
from core.settings import Settings
from core.storage import ObjectStore
from core.urls import redact_url

__all__ = ["ShopifyPublisher"]

_log = logging.getLogger("packshot.publishers.shopify")
_URL_LIFETIME_S = 6 * 3600  # Shopify fetches asynchronously; docs/integrations.md asks ≥ 1 h
_ATTACH_ATTEMPTS = 5


class ShopifyPublisher:
    """Publishes to one shop through the Admin GraphQL API.

    Args:
        admin: the Admin API operations.
        store: where the composites are.
        alt_template: alt text; ``{title}``, ``{theme}``, ``{n}``, ``{sku}``.
        lookup_attempts: SKU searches before "product not found".
        lookup_delay_s: seconds between them.
        media_timeout_s: how long to wait for READY.
        poll_interval_s: first wait between status polls (doubles, at most 10 s).
        staged_uploads: upload bytes even when the store gives https URLs.
        sleep: how to wait; clock: monotonic seconds (tests pass fakes).
    """

    name = "shopify"

    def __init__(
        self,
        admin: ShopifyAdmin,
        store: ObjectStore,
        *,
        alt_template: str = "{title} – {theme} {n}",
        lookup_attempts: int = 3,
        lookup_delay_s: float = 5.0,
        media_timeout_s: float = 600.0,
        poll_interval_s: float = 1.0,
        staged_uploads: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.admin = admin
        self.store = store
        self.alt_template = alt_template
        self.lookup_attempts = lookup_attempts
        self.lookup_delay_s = lookup_delay_s
        self.media_timeout_s = media_timeout_s
        self.poll_interval_s = poll_interval_s
        self.staged_uploads = staged_uploads
        self._sleep = sleep
        self._clock = clock

    @classmethod
    def from_settings(
        cls, settings: Settings, store: ObjectStore, *, gate: Gate | None = None
    ) -> ShopifyPublisher:
        """The publisher the settings describe; ``gate`` wraps every Admin API request."""
        client = ShopifyClient.from_settings(settings, gate=gate)
        return cls(
            ShopifyAdmin(client),
            store,
            alt_template=settings.shopify_alt_template,
            lookup_attempts=settings.shopify_lookup_attempts,
            lookup_delay_s=settings.shopify_lookup_delay_s,
            media_timeout_s=settings.shopify_media_timeout_s,
            poll_interval_s=settings.shopify_poll_interval_s,
            staged_uploads=settings.shopify_staged_uploads,
        )

    # --- the two entry points -------------------------------------------------------------

    def publish(self, request: PublishRequest) -> PublishResult:
        """Add what is missing, wait for READY, point the variant, remove our stale media."""
        survey = self._survey(request)
        created = self._create(survey)
        ids = {n: media.id for n, media in survey.kept.items()} | created
        ordered = [ids[w.identity.n] for w in survey.wanted]
        waiting = [ids[n] for n in created] + [
            m.id for m in survey.kept.values() if m.status != "READY"
        ]
        labels = {ids[w.identity.n]: w.image.key for w in survey.wanted}
        self._wait_ready(waiting, labels)
        if ordered:
            self._point_variant(survey.variant, ordered[0])
        removed = self._remove([media.id for media in survey.stale])
        return PublishResult(
            publisher=self.name,
            product_id=survey.variant.product_id,
            variant_id=survey.variant.id,
            media_ids=tuple(ordered),
            created=tuple(created[n] for n in sorted(created)),
            kept=tuple(survey.kept[n].id for n in sorted(survey.kept)),
            removed=removed,
        )

    def plan(self, request: PublishRequest) -> PublishPlan:
        """Read the shop and list the mutations ``publish`` would send now."""
        survey = self._survey(request)
        variant = survey.variant
        mutations = self._plan_media(survey)
        first = survey.wanted[0].identity.n if survey.wanted else None
        target = survey.kept[first].id if first in survey.kept else f"<new media {first}>"
        if first is not None and variant.media_id != target:
            if variant.media_id:
                args = variant_media_vars(variant.product_id, variant.id, variant.media_id)
                mutations.append(PlannedMutation("productVariantDetachMedia", DETACH, args))
            args = variant_media_vars(variant.product_id, variant.id, target)
            mutations.append(PlannedMutation("productVariantAppendMedia", APPEND, args))
        if survey.stale:
            ids = [media.id for media in survey.stale]
            mutations.append(PlannedMutation("fileDelete", DELETE, {"fileIds": ids}))
        return PublishPlan(
            publisher=self.name,
            product_id=variant.product_id,
            variant_id=variant.id,
            keep=tuple(survey.kept[n].id for n in sorted(survey.kept)),
            create=tuple(w.alt for w in survey.missing),
            remove=tuple(media.id for media in survey.stale),
            mutations=tuple(mutations),
        )

    def _plan_media(self, survey: Survey) -> list[PlannedMutation]:
        """The staged uploads and the ``productUpdate`` that would add the missing media."""
        missing = survey.missing
        if not missing:
            return []
        planned: list[PlannedMutation] = []
        sources = [self._url_for(w.image) for w in missing]
        staged = [w for w, url in zip(missing, sources, strict=True) if url is None]
        if staged:
            files = [
                (w.identity.filename(w.image.content_type), w.image.content_type) for w in staged
            ]
            planned.append(PlannedMutation("stagedUploadsCreate", STAGE, stage_vars(files)))
        shown = [
            redact_url(url) if url else f"<staged upload of {w.image.key}>"
            for w, url in zip(missing, sources, strict=True)
        ]
        variables = add_media_vars(survey.variant.product_id, media_inputs(missing, shown))
        planned.append(PlannedMutation("productUpdate", ADD_MEDIA, variables))
        return planned

    # --- steps ------------------------------------------------------------------------------

    def _survey(self, request: PublishRequest) -> Survey:
        if not request.images:  # never mistake "nothing listed" for "remove what is there"
            raise PublishError(
                "nothing to publish: the manifest lists no composites", permanent=True
            )
        variant = find_variant(
            self.admin,
            request.sku,
            attempts=self.lookup_attempts,
            delay_s=self.lookup_delay_s,
            sleep=self._sleep,
        )
        return take_survey(self.admin, request, variant, self.alt_template)

    def _url_for(self, image: PublishImage) -> str | None:
        """An https URL Shopify can fetch, or None when the bytes must be uploaded."""
        if self.staged_uploads:
            return None
        url = self.store.url(image.key, expires_in=_URL_LIFETIME_S)
        return url if url.startswith("https://") else None

    def _create(self, survey: Survey) -> dict[int, str]:
        missing = survey.missing
        if not missing:
            return {}
        sources = [self._url_for(w.image) for w in missing]
        staged = [i for i, url in enumerate(sources) if url is None]
        if staged:
            files = [
                (
                    missing[i].identity.filename(missing[i].image.content_type),
                    missing[i].image.content_type,
                )
                for i in staged
            ]
            targets = self.admin.stage_uploads(files)
            for i, target, (name, mime) in zip(staged, targets, files, strict=True):
                self.admin.upload(target, self.store.get(missing[i].image.key), name, mime)
                sources[i] = target.resource_url
        product_id = survey.variant.product_id
        inputs = media_inputs(missing, [url or "" for url in sources])
        created = match(self.admin.add_media(product_id, inputs), missing)
        if len(created) < len(missing):  # not in the answer: look at the whole gallery
            created = match(self.admin.product_media(product_id), missing)
        if len(created) < len(missing):
            raise PublishError("Shopify accepted the media but does not list them yet")
        return created

    def _wait_ready(self, ids: list[str], labels: dict[str, str]) -> None:
        pending, delay = set(ids), self.poll_interval_s
        deadline = self._clock() + self.media_timeout_s
        while pending:
            if self._clock() + delay > deadline:
                names = ", ".join(labels.get(i, i) for i in sorted(pending))
                raise PublishError(
                    f"Shopify media not READY after {self.media_timeout_s:.0f} s: {names}"
                )
            self._sleep(delay)
            delay = min(delay * 2, 10.0)
            states = {state.id: state for state in self.admin.media_states(sorted(pending))}
            failed = [s for s in states.values() if s.status == "FAILED"]
            if failed:
                self._discard([s.id for s in failed])
                reasons = "; ".join(
                    f"{labels.get(s.id, s.id)}: {', '.join(s.errors) or 'no reason given'}"
                    for s in failed
                )
                raise PublishError(
                    f"Shopify could not process the image: {reasons}", permanent=True
                )
            if vanished := pending - states.keys():
                raise PublishError(
                    f"Shopify media disappeared while processing: {sorted(vanished)}"
                )
            pending = {i for i, state in states.items() if state.status != "READY"}

    def _point_variant(self, variant: VariantMatch, media_id: str) -> None:
        if variant.media_id == media_id:
            return
        if variant.media_id:
            self._detach(variant, variant.media_id)
        for attempt in range(1, _ATTACH_ATTEMPTS + 1):
            try:
                self.admin.append_variant_media(variant.product_id, variant.id, media_id)
                return
            except ShopifyUserError as exc:
                if "PRODUCT_VARIANT_ALREADY_HAS_MEDIA" in exc.codes:
                    current = self.admin.variant_media(variant.id)
                    if current == media_id:
                        return
                    if current:
                        self._detach(variant, current)
                elif "NON_READY_MEDIA" in exc.codes:
                    self._sleep(self.poll_interval_s * attempt)
                else:
                    raise
        raise PublishError(f"could not show {media_id} on variant {variant.id}")

    def _detach(self, variant: VariantMatch, media_id: str) -> None:
        try:
            self.admin.detach_variant_media(variant.product_id, variant.id, media_id)
        except ShopifyUserError as exc:
            if "MEDIA_IS_NOT_ATTACHED_TO_VARIANT" not in exc.codes:
                raise

    def _remove(self, ids: list[str]) -> tuple[str, ...]:
        for attempt in range(1, 4):
            if not ids:
                return ()
            try:
                return tuple(self.admin.delete_files(ids))
            except ShopifyUserError as exc:
                if "FILE_LOCKED" not in exc.codes or attempt == 3:
                    raise PublishError(f"could not remove earlier Packshot media: {exc}") from None
                self._sleep(backoff_s(attempt + 1, first=self.poll_interval_s, jitter=0))
        return ()  # pragma: no cover

    def _discard(self, ids: list[str]) -> None:
        """Delete media of ours that FAILED; the error that follows says why they failed."""
        try:
            self.admin.delete_files(ids)
        except PublishError as exc:  # the next publish finds them by marker: stale, removed then
            _log.warning("could not delete FAILED media %s: %s", ids, exc)
