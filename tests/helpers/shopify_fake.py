"""A small in-memory Shopify shop behind respx: products, variants, media, files, tokens, bucket.

Every GraphQL request is first checked against a saved subset of the Admin API schema
(``shopify_schema``): a misspelled field, a wrong input type or variables that do not fit are
answered as Shopify answers them (HTTP 200, ``errors``, no ``data``). A valid request is
dispatched on its root field and answered with the Admin API's shapes, cut to what it selected,
``extensions.cost`` on every body. State changes as a real shop's would, so tests check replays
and replacements against the shop, not against canned answers:

- media start ``UPLOADED`` and move to ``PROCESSING`` then ``READY`` on status polls, or to
  ``FAILED`` when their source is listed in ``fail_sources`` or was never uploaded;
- ``productVariantAppendMedia`` enforces READY, one media per variant, media on the product;
- ``fileDelete`` refuses media still processing (``FILE_LOCKED``);
- the cost bucket drains per call and refills with the clock: an empty bucket answers THROTTLED;
- tokens expire with the clock; the client-credentials grant issues new ones;
- ``faults`` injects one-off failures per operation (429, 5xx, network errors, …).
"""

from __future__ import annotations

import itertools
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx

from tests.helpers.shopify_schema import RefusedRequest, Request, check, shape

SHOP = "packshot-test"
BASE = f"https://{SHOP}.myshopify.com"
GRAPHQL = f"{BASE}/admin/api/2026-10/graphql.json"
TOKEN_URL = f"{BASE}/admin/oauth/access_token"
STAGED_URL = "https://shopify-staged-uploads.storage.googleapis.com/"
STATIC_TOKEN = "shpat_0123456789abcdef0123456789abcdef"
CLIENT_ID = "client-id-1"
CLIENT_SECRET = "client-secret-for-tests-1"
UNAUTHORIZED = {
    "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
}

# The root field of each operation the shop answers → the name tests use for it (faults, calls).
OPERATIONS = {
    "productVariants": "search",
    "productVariant": "variant",
    "product": "product_media",
    "nodes": "media_status",
    "stagedUploadsCreate": "stage",
    "productUpdate": "add_media",
    "productVariantAppendMedia": "append",
    "productVariantDetachMedia": "detach",
    "fileDelete": "file_delete",
}
REFUSED = "refused"  # what ``requests`` records for a request the schema does not allow
MUTATIONS = {"append", "detach", "stage", "add_media", "file_delete"}


@dataclass
class Media:
    id: str
    product_id: str
    alt: str
    source: str
    status: str = "UPLOADED"
    errors: list[dict[str, object]] = field(default_factory=list)


@dataclass
class Variant:
    id: str
    sku: str
    product_id: str
    media_id: str | None = None


@dataclass
class Product:
    id: str
    title: str
    media: list[str] = field(default_factory=list)


class FakeShop:
    """The shop; mount it with :meth:`mount` inside ``respx.mock``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.products: dict[str, Product] = {}
        self.variants: dict[str, Variant] = {}
        self.media: dict[str, Media] = {}
        self.uploaded: dict[str, bytes] = {}  # resourceUrl → bytes
        self.upload_forms: list[list[str]] = []  # field names of each staged POST, in order
        self.calls: list[str] = []  # operations answered (not throttled, not failed)
        self.requests: list[str] = []  # every GraphQL request's operation (or REFUSED)
        self.refusals: list[list[dict[str, Any]]] = []  # the errors of each refused request
        self.http_requests: list[httpx.Request] = []
        self.faults: dict[str, list[str]] = {}
        self.fail_sources: set[str] = set()
        self.polls_to_ready = 2  # UPLOADED → PROCESSING → READY
        self.page_size = 100
        self.search_misses = 0  # the next N searches find nothing (index lag)
        self.search_hides_variant_media = False  # the search index is behind the variant
        self.non_ready_appends = 0
        self.tokens: dict[str, float | None] = {STATIC_TOKEN: None}  # token → expires at
        self.token_ttl = 86_399
        self.issued: list[str] = []
        self.maximum, self.restore = 2000.0, 100.0
        self.available = self.maximum
        self._filled_at = clock()
        self._ids = itertools.count(44073524789554)

    # --- setup ---------------------------------------------------------------------------

    def add_product(self, title: str, *skus: str) -> tuple[str, list[str]]:
        product = Product(id=f"gid://shopify/Product/{next(self._ids)}", title=title)
        self.products[product.id] = product
        ids = []
        for sku in skus:
            variant = Variant(f"gid://shopify/ProductVariant/{next(self._ids)}", sku, product.id)
            self.variants[variant.id] = variant
            ids.append(variant.id)
        return product.id, ids

    def add_foreign_media(self, product_id: str, alt: str, *, status: str = "READY") -> str:
        """Media the merchant added by hand."""
        return self._new_media(product_id, alt, "https://cdn.example.com/hand.jpg", status)

    def fault(self, operation: str, *kinds: str) -> None:
        """Make the next calls of ``operation`` fail: 'throttle', 'throttle429', 'throttle429-retry-after',
        '500', 'internal', 'connect', 'read-timeout', 'applied-then-timeout', '401'."""
        self.faults.setdefault(operation, []).extend(kinds)

    def mount(self, router: object) -> None:
        router.post(GRAPHQL).mock(side_effect=self.graphql)  # type: ignore[attr-defined]
        router.post(TOKEN_URL).mock(side_effect=self.token)  # type: ignore[attr-defined]
        router.post(STAGED_URL).mock(side_effect=self.staged_upload)  # type: ignore[attr-defined]

    # --- views for assertions ------------------------------------------------------------

    def gallery(self, product_id: str) -> list[Media]:
        return [self.media[i] for i in self.products[product_id].media]

    def mutations(self) -> list[str]:
        return [c for c in self.calls if c in MUTATIONS]

    # --- HTTP handlers -------------------------------------------------------------------

    def graphql(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        try:
            checked: Request | None = check(body["query"], body.get("variables"))
            refusal: list[dict[str, Any]] = []
        except RefusedRequest as refused:
            checked, refusal = None, refused.errors
        operation = REFUSED if checked is None else _operation(checked)
        self.requests.append(operation)
        self.http_requests.append(request)
        expires = self.tokens.get(request.headers.get("x-shopify-access-token", ""), 0.0)
        if expires is not None and expires <= self.clock():
            return httpx.Response(401, json=UNAUTHORIZED)
        if checked is None:
            self.refusals.append(refusal)
            return httpx.Response(200, json={"errors": refusal})
        variables = checked.variables
        fault = self.faults.get(operation, [])
        if fault:
            answer = self._fault(fault.pop(0), request, operation, variables)
            if answer is not None:
                return answer
        cost = 10.0 if operation not in MUTATIONS else 20.0
        if self._bucket() < cost:
            return self._throttled(cost, 200)
        self.available -= cost
        self.calls.append(operation)
        data = shape(checked, getattr(self, f"_{operation}")(variables))
        return httpx.Response(200, json={"data": data, "extensions": self._cost(cost)})

    def token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return httpx.Response(400, json={"error": "unsupported_grant_type"})
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return httpx.Response(401, json={"error": "invalid_client"})
        token = f"shpat_cc_{uuid.uuid4().hex}"
        self.tokens[token] = self.clock() + self.token_ttl
        self.issued.append(token)
        scope = "read_products,write_products,read_files,write_files"
        return httpx.Response(
            200, json={"access_token": token, "scope": scope, "expires_in": self.token_ttl}
        )

    def staged_upload(self, request: httpx.Request) -> httpx.Response:
        fields = _multipart_fields(request)
        names = [name for name, _ in fields]
        self.upload_forms.append(names)
        if not names or names[-1] != "file":
            return httpx.Response(400, text="<Error><Code>InvalidArgument</Code></Error>")
        values = dict(fields)
        if values.get("success_action_status") != b"201":
            return httpx.Response(400, text="<Error><Code>InvalidPolicyDocument</Code></Error>")
        self.uploaded[STAGED_URL + values["key"].decode()] = values["file"]
        return httpx.Response(201, text="<PostResponse/>")

    # --- operations ----------------------------------------------------------------------

    def _search(self, variables: dict) -> dict:
        found = re.fullmatch(r'sku:"((?:[^"\\]|\\.)*)"', variables["q"])
        assert found, f"search value must be quoted: {variables['q']!r}"
        term = re.sub(r"\\(.)", r"\1", found[1])
        if self.search_misses:
            self.search_misses -= 1
            return {"productVariants": {"nodes": []}}
        nodes = []
        for v in self.variants.values():
            if v.sku.startswith(term):  # tokenised search: ABC-1 also finds ABC-10
                product = self.products[v.product_id]
                media_id = None if self.search_hides_variant_media else v.media_id
                nodes.append(
                    {
                        "id": v.id,
                        "sku": v.sku,
                        "product": {"id": product.id, "title": product.title, "handle": "h"},
                        "media": {"nodes": _media_ref(media_id)},
                    }
                )
        return {"productVariants": {"nodes": nodes}}

    def _product_media(self, variables: dict) -> dict:
        product = self.products.get(variables["id"])
        if product is None:
            return {"product": None}
        start = int(variables.get("after") or 0)
        page = product.media[start : start + self.page_size]
        more = start + self.page_size < len(product.media)
        nodes = [self._media_node(self.media[i]) for i in page]
        info = {"hasNextPage": more, "endCursor": str(start + self.page_size) if more else None}
        return {"product": {"id": product.id, "media": {"nodes": nodes, "pageInfo": info}}}

    def _variant(self, variables: dict) -> dict:
        v = self.variants[variables["id"]]
        return {
            "productVariant": {
                "id": v.id,
                "media": {"nodes": _media_ref(v.media_id)},
            }
        }

    def _stage(self, variables: dict) -> dict:
        targets = []
        for item in variables["input"]:
            assert item["resource"] == "IMAGE" and item["httpMethod"] == "POST"
            key = f"tmp/92891250994/products/{uuid.uuid4()}/{item['filename']}"
            params = [
                ("Content-Type", item["mimeType"]),
                ("success_action_status", "201"),
                ("acl", "private"),
                ("key", key),
                ("x-goog-date", "20261101T120000Z"),
                ("x-goog-credential", "merchant-assets@example/auto/storage/goog4_request"),
                ("x-goog-algorithm", "GOOG4-RSA-SHA256"),
                ("x-goog-signature", "7df4"),
                ("policy", "eyJjb25k"),
            ]
            targets.append(
                {
                    "url": STAGED_URL,
                    "resourceUrl": STAGED_URL + key,
                    "parameters": [{"name": n, "value": v} for n, v in params],
                }
            )
        return {"stagedUploadsCreate": {"stagedTargets": targets, "userErrors": []}}

    def _add_media(self, variables: dict) -> dict:
        product = self.products[variables["product"]["id"]]
        for index, item in enumerate(variables["media"]):
            if not re.match(r"https://[^/?#]+/", item["originalSource"]):
                errors = [
                    {
                        "field": ["media", str(index), "originalSource"],
                        "message": "Image URL is invalid",
                    }
                ]
                return {"productUpdate": {"product": None, "userErrors": errors}}
        for item in variables["media"]:
            self._new_media(product.id, item["alt"], item["originalSource"], "UPLOADED")
        last = [self._media_node(self.media[i]) for i in product.media[-variables["last"] :]]
        for node in last:
            node.pop("image", None)
        return {
            "productUpdate": {
                "product": {"id": product.id, "media": {"nodes": last}},
                "userErrors": [],
            }
        }

    def _media_status(self, variables: dict) -> dict:
        nodes = []
        for media_id in variables["ids"]:
            media = self.media.get(media_id)
            if media is None:
                nodes.append(None)
                continue
            self._process(media)
            node = self._media_node(media)
            node["fileStatus"] = media.status
            node["mediaErrors"] = media.errors
            nodes.append(node)
        return {"nodes": nodes}

    def _append(self, variables: dict) -> dict:
        pair = variables["variantMedia"][0]
        variant, media_id = self.variants[pair["variantId"]], pair["mediaIds"][0]
        media = self.media.get(media_id)
        error = None
        if media is None or media.product_id != variables["productId"]:
            error = ("MEDIA_DOES_NOT_EXIST_ON_PRODUCT", "Media does not exist on the product.")
        elif media.status != "READY" or self.non_ready_appends:
            self.non_ready_appends = max(self.non_ready_appends - 1, 0)
            error = ("NON_READY_MEDIA", "Non-ready media cannot be attached to variants.")
        elif variant.media_id is not None:
            error = (
                "PRODUCT_VARIANT_ALREADY_HAS_MEDIA",
                "Product variant already has attached media.",
            )
        if error:
            user = [
                {"field": ["variantMedia", "0", "mediaIds"], "message": error[1], "code": error[0]}
            ]
            return {"productVariantAppendMedia": {"productVariants": None, "userErrors": user}}
        variant.media_id = media_id
        node = {"id": variant.id, "media": {"nodes": _media_ref(media_id)}}
        return {"productVariantAppendMedia": {"productVariants": [node], "userErrors": []}}

    def _detach(self, variables: dict) -> dict:
        pair = variables["variantMedia"][0]
        variant, media_id = self.variants[pair["variantId"]], pair["mediaIds"][0]
        if variant.media_id != media_id:
            user = [
                {
                    "field": ["variantMedia", "0", "mediaIds"],
                    "message": "Media is not attached to the variant.",
                    "code": "MEDIA_IS_NOT_ATTACHED_TO_VARIANT",
                }
            ]
            return {"productVariantDetachMedia": {"productVariants": None, "userErrors": user}}
        variant.media_id = None
        return {
            "productVariantDetachMedia": {"productVariants": [{"id": variant.id}], "userErrors": []}
        }

    def _file_delete(self, variables: dict) -> dict:
        ids = variables["fileIds"]
        locked = [i for i in ids if i in self.media and self.media[i].status == "PROCESSING"]
        if locked:
            user = [{"field": ["fileIds"], "message": "File is locked.", "code": "FILE_LOCKED"}]
            return {"fileDelete": {"deletedFileIds": None, "userErrors": user}}
        deleted = []
        for media_id in ids:
            media = self.media.pop(media_id, None)
            if media is None:
                continue
            self.products[media.product_id].media.remove(media_id)
            for variant in self.variants.values():
                if variant.media_id == media_id:
                    variant.media_id = None
            deleted.append(media_id)
        return {"fileDelete": {"deletedFileIds": deleted, "userErrors": []}}

    # --- internals -----------------------------------------------------------------------

    def _new_media(self, product_id: str, alt: str, source: str, status: str) -> str:
        media = Media(
            f"gid://shopify/MediaImage/{next(self._ids)}", product_id, alt, source, status
        )
        self.media[media.id] = media
        self.products[product_id].media.append(media.id)
        return media.id

    def _process(self, media: Media) -> None:
        if media.status in ("READY", "FAILED"):
            return
        staged_missing = media.source.startswith(STAGED_URL) and media.source not in self.uploaded
        if media.source in self.fail_sources or staged_missing:
            media.status = "FAILED"
            media.errors = [
                {
                    "code": "IMAGE_DOWNLOAD_FAILURE",
                    "details": None,
                    "message": "Image could not be downloaded.",
                }
            ]
            return
        order = (
            ["UPLOADED", "PROCESSING", "READY"]
            if self.polls_to_ready >= 2
            else ["UPLOADED", "READY"]
        )
        media.status = order[min(order.index(media.status) + 1, len(order) - 1)]

    def _media_node(self, media: Media) -> dict:
        ready = media.status == "READY"
        image = {
            "url": f"https://cdn.shopify.com/s/files/1/{media.id[-6:]}.jpg",
            "width": 1600,
            "height": 1600,
        }
        return {
            "__typename": "MediaImage",
            "id": media.id,
            "alt": media.alt,
            "mediaContentType": "IMAGE",
            "status": media.status,
            "image": image if ready else None,
        }

    def _bucket(self) -> float:
        now = self.clock()
        self.available = min(self.maximum, self.available + (now - self._filled_at) * self.restore)
        self._filled_at = now
        return self.available

    def _cost(self, cost: float, actual: float | None = None) -> dict:
        return {
            "cost": {
                "requestedQueryCost": cost,
                "actualQueryCost": cost if actual is None else actual,
                "throttleStatus": {
                    "maximumAvailable": self.maximum,
                    "currentlyAvailable": round(self.available, 3),
                    "restoreRate": self.restore,
                },
            }
        }

    def _throttled(
        self, cost: float, status: int, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        extensions = self._cost(cost)
        extensions["cost"]["actualQueryCost"] = None
        body = {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {
                        "code": "THROTTLED",
                        "documentation": "https://shopify.dev/api/usage/rate-limits",
                    },
                }
            ],
            "extensions": extensions,
        }
        return httpx.Response(status, json=body, headers=headers)

    def _fault(
        self, kind: str, request: httpx.Request, operation: str, variables: dict
    ) -> httpx.Response | None:
        if kind in ("throttle", "throttle429", "throttle429-retry-after"):
            self._bucket()
            self.available = min(self.available, 120.0)
            status = 200 if kind == "throttle" else 429
            headers = {"Retry-After": "2.0"} if kind.endswith("retry-after") else None
            return self._throttled(752.0, status, headers)
        if kind == "500":
            return httpx.Response(503, text="<html>Service Unavailable</html>")
        if kind == "internal":
            error = {
                "message": "Internal error. Looks like something went wrong on our end.",
                "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": "r-1"},
            }
            return httpx.Response(200, json={"errors": [error], "extensions": self._cost(10.0)})
        if kind == "401":
            return httpx.Response(401, json=UNAUTHORIZED)
        if kind == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if kind == "read-timeout":
            raise httpx.ReadTimeout("read timed out", request=request)
        if kind == "applied-then-timeout":
            self.calls.append(operation)
            getattr(self, f"_{operation}")(variables)
            raise httpx.ReadTimeout("read timed out", request=request)
        raise AssertionError(f"unknown fault {kind}")


def _multipart_fields(request: httpx.Request) -> list[tuple[str, bytes]]:
    """(name, value) of every multipart field, in the order sent."""
    content_type = request.headers["content-type"]
    boundary = content_type.split("boundary=", 1)[1].encode()
    fields = []
    for part in request.content.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, value = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]+)"', head)
        assert name, head
        fields.append((name[1].decode(), value.removesuffix(b"\r\n")))
    return fields


def _operation(request: Request) -> str:
    """The fake's name for the request's one root field (it answers one per request)."""
    roots = request.root_fields
    assert len(roots) == 1 and roots[0] in OPERATIONS, f"the fake shop does not answer {roots}"
    return OPERATIONS[roots[0]]


def _media_ref(media_id: str | None) -> list[dict[str, str]]:
    """A variant's media connection nodes: its one image, or none."""
    return [{"__typename": "MediaImage", "id": media_id}] if media_id else []
