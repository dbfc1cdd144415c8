"""How Packshot recognises the media it added: a marker at the end of the alt text.

``[packshot:{sku}:{theme}:{sha8}:{n}]`` names the SKU, the theme, the first 8 hex digits of the
source photo's sha256 and the background variant. SKUs and themes are ``[A-Za-z0-9._-]``, so
the ``:`` separators are unambiguous. Media without a marker, or with another SKU's or theme's
marker, are never changed by the publisher. Staged uploads also get the deterministic filename
``{sku}-{theme}-{sha8}-{n}.{ext}``, which is what the Files page of the admin shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MAX_ALT", "MediaIdentity", "alt_text"]

MAX_ALT = 512
_MARKER = re.compile(
    r"\[packshot:(?P<sku>[A-Za-z0-9._-]{1,64}):(?P<theme>[A-Za-z0-9._-]{1,64})"
    r":(?P<sha8>[0-9a-f]{8}):(?P<n>[0-9]{1,3})\]"
)
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


@dataclass(frozen=True)
class MediaIdentity:
    """Which (sku, photo, theme, variant) one media item shows."""

    sku: str
    theme: str
    sha8: str
    n: int

    @classmethod
    def of(cls, sku: str, theme: str, sha256: str, n: int) -> MediaIdentity:
        """The identity of variant ``n`` of the photo with ``sha256``."""
        return cls(sku=sku, theme=theme, sha8=sha256[:8].lower(), n=n)

    @classmethod
    def parse(cls, alt: str | None) -> MediaIdentity | None:
        """The identity in an alt text's marker, or None (not Packshot's)."""
        found = _MARKER.search(alt or "")
        if found is None:
            return None
        return cls(found["sku"], found["theme"], found["sha8"], int(found["n"]))

    @property
    def marker(self) -> str:
        """``[packshot:{sku}:{theme}:{sha8}:{n}]``."""
        return f"[packshot:{self.sku}:{self.theme}:{self.sha8}:{self.n}]"

    def filename(self, content_type: str = "image/jpeg") -> str:
        """``{sku}-{theme}-{sha8}-{n}.jpg`` (extension from the content type)."""
        return (
            f"{self.sku}-{self.theme}-{self.sha8}-{self.n}.{_EXTENSIONS.get(content_type, 'jpg')}"
        )

    def same_slot(self, sku: str, theme: str) -> bool:
        """True when this media was added for ``sku`` and ``theme`` (any photo)."""
        return self.sku == sku and self.theme == theme


def alt_text(template: str, identity: MediaIdentity, *, title: str) -> str:
    """The template filled in, cut so that it and the marker fit in 512 characters."""
    text = template.format(title=title, theme=identity.theme, n=identity.n, sku=identity.sku)
    text = " ".join(text.split())
    room = MAX_ALT - len(identity.marker) - 1
    if len(text) > room:
        text = text[: room - 1].rstrip() + "…"
    return f"{text} {identity.marker}" if text else identity.marker
