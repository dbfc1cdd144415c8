"""The Admin API operations the publisher uses, as typed calls (docs/integrations.md).

Reads go through :meth:`ShopifyClient.query` (repeated on network errors), writes through
:meth:`ShopifyClient.mutate` (never repeated blindly). The staged-upload POST goes to Google
Cloud Storage with the same ``httpx.Client`` but without any Shopify header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from core.clients.shopify import ShopifyClient
from core.errors import PublishError

__all__ = [
    "ADD_MEDIA",
    "APPEND",
    "DELETE",
    "DETACH",
    "STAGE",
    "MediaState",
    "ProductMedia",
    "ShopifyAdmin",
    "StagedTarget",
    "VariantMatch",
    "add_media_vars",
    "search_value",
    "stage_vars",
    "variant_media_vars",
]

VARIANTS_BY_SKU = """query VariantBySku($q: String!) {
  productVariants(first: 25, query: $q) {
    nodes { id sku product { id title handle } media(first: 1) { nodes { id } } }
  }
}"""

PRODUCT_MEDIA = """query ProductMedia($id: ID!, $after: String) {
  product(id: $id) {
    id
    media(first: 100, after: $after) {
      nodes { id alt mediaContentType status ... on MediaImage { image { url } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""

VARIANT_MEDIA = """query VariantMedia($id: ID!) {
  productVariant(id: $id) { id media(first: 1) { nodes { id } } }
}"""

STAGE = """mutation Stage($input: [StagedUploadInput!]!) {
  stagedUploadsCreate(input: $input) {
    stagedTargets { url resourceUrl parameters { name value } }
    userErrors { field message }
  }
}"""

ADD_MEDIA = """mutation AddMedia(
  $product: ProductUpdateInput!, $media: [CreateMediaInput!], $last: Int!
) {
  productUpdate(product: $product, media: $media) {
    product { id media(last: $last) { nodes { id alt mediaContentType status } } }
    userErrors { field message }
  }
}"""

MEDIA_STATUS = """query MediaStatus($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on MediaImage {
      id status fileStatus image { url width height } mediaErrors { code details message }
    }
  }
}"""

APPEND = """mutation Attach($productId: ID!, $variantMedia: [ProductVariantAppendMediaInput!]!) {
  productVariantAppendMedia(productId: $productId, variantMedia: $variantMedia) {
    productVariants { id media(first: 1) { nodes { id } } }
    userErrors { field message code }
  }
}"""

DETACH = """mutation Detach($productId: ID!, $variantMedia: [ProductVariantDetachMediaInput!]!) {
  productVariantDetachMedia(productId: $productId, variantMedia: $variantMedia) {
    productVariants { id }
    userErrors { field message code }
  }
}"""

DELETE = """mutation Delete($fileIds: [ID!]!) {
  fileDelete(fileIds: $fileIds) { deletedFileIds userErrors { field message code } }
}"""


@dataclass(frozen=True)
class VariantMatch:
    """One variant found by the SKU search."""

    id: str
    sku: str
    product_id: str
    product_title: str
    media_id: str | None


@dataclass(frozen=True)
class ProductMedia:
    """One media item of a product."""

    id: str
    alt: str | None
    status: str
    content_type: str


@dataclass(frozen=True)
class MediaState:
    """Processing state of one media item; ``errors`` are ``CODE: message`` texts."""

    id: str
    status: str
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class StagedTarget:
    """Where to POST the bytes of one staged upload, and the URL to hand to Shopify after."""

    url: str
    resource_url: str
    parameters: tuple[tuple[str, str], ...]


def search_value(value: str) -> str:
    """``value`` as a quoted search term: backslashes and quotes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ShopifyAdmin:
    """Typed Admin API operations over a :class:`ShopifyClient`."""

    def __init__(self, client: ShopifyClient) -> None:
        self.client = client

    def variants_by_sku(self, sku: str) -> list[VariantMatch]:
        """Variants the (fuzzy) search returns for ``sku``; the caller keeps exact matches."""
        data = self.client.query(VARIANTS_BY_SKU, {"q": f"sku:{search_value(sku)}"})
        nodes = ((data.get("productVariants") or {}).get("nodes")) or []
        return [
            VariantMatch(
                id=node["id"],
                sku=node.get("sku") or "",
                product_id=node["product"]["id"],
                product_title=node["product"].get("title") or "",
                media_id=next(iter(_ids(node.get("media"))), None),
            )
            for node in nodes
        ]

    def product_media(self, product_id: str) -> list[ProductMedia]:
        """Every media item of the product, in gallery order."""
        media: list[ProductMedia] = []
        after: str | None = None
        while True:
            data = self.client.query(PRODUCT_MEDIA, {"id": product_id, "after": after})
            product = data.get("product")
            if product is None:
                raise PublishError(f"Shopify product {product_id} disappeared", permanent=True)
            page = product["media"]
            media += [_media(node) for node in page["nodes"] if node.get("id")]
            if not page["pageInfo"]["hasNextPage"]:
                return media
            after = page["pageInfo"]["endCursor"]

    def variant_media(self, variant_id: str) -> str | None:
        """The media id the variant shows now, if any."""
        data = self.client.query(VARIANT_MEDIA, {"id": variant_id})
        return next(iter(_ids((data.get("productVariant") or {}).get("media"))), None)

    def stage_uploads(self, files: list[tuple[str, str]]) -> list[StagedTarget]:
        """One staged-upload target per ``(filename, mime type)``."""
        payload = self.client.mutate(STAGE, stage_vars(files), root="stagedUploadsCreate")
        return [
            StagedTarget(
                url=target["url"],
                resource_url=target["resourceUrl"],
                parameters=tuple((p["name"], p["value"]) for p in target["parameters"]),
            )
            for target in payload["stagedTargets"]
        ]

    def upload(self, target: StagedTarget, data: bytes, filename: str, mime: str) -> None:
        """POST the bytes: every parameter as a form field, in order, then ``file`` (201)."""
        try:
            response = self.client.http.post(
                target.url, data=dict(target.parameters), files={"file": (filename, data, mime)}
            )
        except httpx.TransportError as exc:
            raise PublishError(f"staged upload failed: {type(exc).__name__}") from None
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise PublishError(f"staged upload failed: HTTP {response.status_code}")
        if not 200 <= response.status_code < 300:
            raise PublishError(
                f"staged upload refused: HTTP {response.status_code}", permanent=True
            )

    def add_media(self, product_id: str, media: list[dict[str, str]]) -> list[ProductMedia]:
        """Append media to the product; returns the product's last ``len(media)`` items."""
        variables = add_media_vars(product_id, media)
        payload = self.client.mutate(ADD_MEDIA, variables, root="productUpdate")
        product = payload.get("product") or {}
        return [_media(node) for node in (product.get("media") or {}).get("nodes") or []]

    def media_states(self, ids: list[str]) -> list[MediaState]:
        """Processing state of each id (unknown ids are left out)."""
        data = self.client.query(MEDIA_STATUS, {"ids": ids})
        states = []
        for node in data.get("nodes") or []:
            if not node or not node.get("id"):
                continue
            errors = tuple(
                f"{e.get('code')}: {e.get('message') or e.get('details') or ''}".strip()
                for e in node.get("mediaErrors") or []
            )
            states.append(MediaState(id=node["id"], status=node.get("status") or "", errors=errors))
        return states

    def append_variant_media(self, product_id: str, variant_id: str, media_id: str) -> None:
        """Show ``media_id`` on the variant (it must be READY and on the product)."""
        self.client.mutate(
            APPEND,
            variant_media_vars(product_id, variant_id, media_id),
            root="productVariantAppendMedia",
        )

    def detach_variant_media(self, product_id: str, variant_id: str, media_id: str) -> None:
        """Stop showing ``media_id`` on the variant (the media stays on the product)."""
        self.client.mutate(
            DETACH,
            variant_media_vars(product_id, variant_id, media_id),
            root="productVariantDetachMedia",
        )

    def delete_files(self, ids: list[str]) -> list[str]:
        """Delete the files (the product loses those media); returns the deleted ids."""
        payload = self.client.mutate(DELETE, {"fileIds": ids}, root="fileDelete")
        return list(payload.get("deletedFileIds") or [])


def _ids(connection: dict[str, Any] | None) -> list[str]:
    return [node["id"] for node in (connection or {}).get("nodes") or [] if node.get("id")]


def _media(node: dict[str, Any]) -> ProductMedia:
    return ProductMedia(
        id=node["id"],
        alt=node.get("alt"),
        status=node.get("status") or "",
        content_type=node.get("mediaContentType") or "",
    )


def stage_vars(files: list[tuple[str, str]]) -> dict[str, Any]:
    """Variables of ``stagedUploadsCreate`` for ``(filename, mime type)`` pairs (POST targets)."""
    inputs = [
        {"resource": "IMAGE", "filename": name, "mimeType": mime, "httpMethod": "POST"}
        for name, mime in files
    ]
    return {"input": inputs}


def add_media_vars(product_id: str, media: list[dict[str, str]]) -> dict[str, Any]:
    """Variables of ``productUpdate`` appending ``media`` (CreateMediaInput dicts)."""
    return {"product": {"id": product_id}, "media": media, "last": max(len(media), 1)}


def variant_media_vars(product_id: str, variant_id: str, media_id: str) -> dict[str, Any]:
    """Variables of ``productVariantAppendMedia`` / ``productVariantDetachMedia``: one pair."""
    return {
        "productId": product_id,
        "variantMedia": [{"variantId": variant_id, "mediaIds": [media_id]}],
    }
