"""The webhook over real HTTP: signatures, every 4xx, idempotent deliveries, job status, health.

The dispatcher is off here (no Prefect needed); ``test_dispatch.py`` covers flow-run creation.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from core import jobs
from core.db import get_engine, session_scope
from core.errors import ConfigurationError
from core.schemas import ImageJobSpec
from core.sealed import source_of
from core.tables import Job
from tests.webhook.conftest import (
    SECRET,
    URL_PATH,
    LiveApp,
    encode,
    event,
    make_settings,
    serve_app,
    sha,
    signed_headers,
)
from webhook.app import create_app
from webhook.security import SignatureError, compute_signature, sign, verify_signature


@pytest.fixture
def live() -> Iterator[LiveApp]:
    with serve_app(make_settings()) as app:
        yield app


def _job(live: LiveApp, job_id: str) -> Job:
    with Session(get_engine(live.settings.database_url)) as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        return job


# --- accepted and duplicate ---------------------------------------------------------------------


def test_new_image_is_202_and_the_same_image_again_is_200_duplicate(live: LiveApp) -> None:
    first = live.post(event(1))
    assert first.status_code == 202
    assert first.json() == {"jobId": first.json()["jobId"], "status": "created"}
    job_id = first.json()["jobId"]
    again = live.post(event(1, sha256=sha(1).upper(), ignored="extra field"))
    assert again.status_code == 200
    assert again.json() == {"jobId": job_id, "status": "NEW", "duplicate": True}
    other_theme = live.post(event(1, theme="white"))
    assert other_theme.status_code == 202 and other_theme.json()["jobId"] != job_id
    job = _job(live, job_id)
    assert job.sha256 == sha(1) and job.theme == "default" and job.dispatch_pending
    # Shown redacted everywhere; the whole URL is kept beside it, for the download only.
    assert job.source_url.endswith("/1.jpg?token=***")
    assert source_of(job).endswith("/1.jpg?token=very-secret-token")


def test_a_failed_job_delivered_again_is_queued_with_the_url_it_carries(live: LiveApp) -> None:
    job_id = live.post(event(2)).json()["jobId"]
    with session_scope(live.settings.database_url) as session:
        jobs.fail_job(
            session,
            job_id=uuid.UUID(job_id),
            step="download",
            error_type="InputError",
            message="image host answered HTTP 404",
        )
    fixed = event(2, imageUrl="https://cdn.3jms.example/media/2-fixed.jpg")
    response = live.post(fixed)
    assert response.status_code == 202
    assert response.json() == {"jobId": job_id, "status": "requeued"}
    doc = live.get(f"/api/jobs/{job_id}").json()
    assert doc["status"] == "NEW" and doc["error"] is None and doc["flowRunId"] is None
    assert _job(live, job_id).source_url == fixed["imageUrl"] and live.backlog() == 1
    again = live.post(event(2))  # the new attempt is queued: anything more is a duplicate
    assert again.status_code == 200
    assert again.json() == {"jobId": job_id, "status": "NEW", "duplicate": True}
    assert _job(live, job_id).source_url == fixed["imageUrl"]


def test_numeric_sku_is_taken_as_text(live: LiveApp) -> None:
    response = live.post(event(2, sku=12345))
    assert response.status_code == 202
    assert _job(live, response.json()["jobId"]).sku == "12345"


def test_theme_from_the_themes_file_is_known(tmp_path: Path) -> None:
    themes = tmp_path / "themes.json"
    themes.write_text(
        json.dumps(
            {"themes": [{"name": "summer", "variants": [{"color": "#FFEEAA", "kind": "solid"}]}]}
        )
    )
    with serve_app(make_settings(themes_file=themes)) as live:
        assert live.post(event(3, theme="summer")).status_code == 202
        assert live.post(event(3, theme="winter")).status_code == 422


def test_jobs_of_the_cli_are_not_waiting_for_dispatch(live: LiveApp) -> None:
    spec = ImageJobSpec(sku="CLI-1", image_url="https://x.example/a.jpg", sha256=sha(9))
    with session_scope(live.settings.database_url) as session:
        cli_job, _ = jobs.get_or_create_job(session, spec=spec)
    assert not _job(live, str(cli_job.id)).dispatch_pending
    response = live.post(event(9, sku="CLI-1", imageUrl="https://x.example/a.jpg"))
    assert response.status_code == 200 and response.json()["jobId"] == str(cli_job.id)
    assert not _job(live, str(cli_job.id)).dispatch_pending  # a duplicate never re-enqueues
    assert live.backlog() == 0


# --- signatures ---------------------------------------------------------------------------------


def _header_cases() -> dict[str, object]:
    return {
        "wrong secret": lambda body: sign("another-secret", body),
        "expired": lambda body: sign(SECRET, body, timestamp=int(time.time()) - 302),
        "from the future": lambda body: sign(SECRET, body, timestamp=int(time.time()) + 303),
        "missing": lambda body: None,
        "malformed": lambda body: "sha256=" + compute_signature(SECRET, 0, body),
        "no v1": lambda body: f"t={int(time.time())}",
        "two timestamps": lambda body: sign(SECRET, body) + f",t={int(time.time())}",
        "other body": lambda body: sign(SECRET, body + b" "),
    }


@pytest.mark.parametrize("case", list(_header_cases()))
def test_bad_signatures_are_401(live: LiveApp, case: str) -> None:
    body = encode(event(4))
    header = _header_cases()[case](body)  # type: ignore[operator]
    headers = {"X-3JMS-Signature": header} if header else {}
    response = live.client.post(live.url + URL_PATH, content=body, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_signature"}
    assert live.backlog() == 0


def test_signature_inside_the_window_is_accepted(live: LiveApp) -> None:
    body = encode(event(5))
    old = signed_headers(body, timestamp=int(time.time()) - 290)
    assert live.client.post(live.url + URL_PATH, content=body, headers=old).status_code == 202


def test_rotated_secrets_any_v1_may_match(live: LiveApp) -> None:
    body = encode(event(6))
    t = int(time.time())
    header = f"t={t},v1={compute_signature('old-secret', t, body)},v1={compute_signature(SECRET, t, body)}"
    response = live.client.post(
        live.url + URL_PATH, content=body, headers={"X-3JMS-Signature": header}
    )
    assert response.status_code == 202


def test_without_a_secret_unsigned_deliveries_are_accepted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="packshot")
    with serve_app(make_settings(webhook_secret=None)) as live:
        assert live.post(event(7), secret=None).status_code == 202
        assert live.get("/healthz").json()["signatures"] == "off"
    assert "webhook.unsigned" in caplog.text and "PACKSHOT_WEBHOOK_SECRET is not set" in caplog.text


def test_verify_signature_unit() -> None:
    body = b'{"a":1}'
    header = sign("k", body, timestamp=1000)
    verify_signature("k", header, body, now=1300)
    with pytest.raises(SignatureError, match="outside"):
        verify_signature("k", header, body, now=1301)
    with pytest.raises(SignatureError, match="mismatch"):
        verify_signature("k2", header, body, now=1000)
    verify_signature(
        "k", " t=1000 , v0=abc, v1=" + "0" * 64 + "," + header.split(",")[1], body, now=1000
    )
    with pytest.raises(SignatureError):
        verify_signature("k", "t=1000,v1=" + "z" * 64, body, now=1000)


# A known answer, computed outside the project: printf '%s' '1700000000.<body>' |
# openssl dgst -sha256 -hmac 'whsec-known-answer-2f9c'. Both sides of the scheme must agree with it.
KNOWN_SECRET = "whsec-known-answer-2f9c"
KNOWN_T = 1_700_000_000
KNOWN_BODY = (
    b'{"sku":"VWS200433868","imageUrl":"https://cdn.3jms.example/media/abc123.jpg",'
    b'"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}'
)
KNOWN_V1 = "85847a858177d18d230fd15ddaa9a90bef072b694013eed64c827cf997f12b49"


def test_signatures_match_a_known_answer_computed_independently() -> None:
    signed = f"{KNOWN_T}.".encode() + KNOWN_BODY
    assert hmac.new(KNOWN_SECRET.encode(), signed, hashlib.sha256).hexdigest() == KNOWN_V1
    header = f"t={KNOWN_T},v1={KNOWN_V1}"
    assert sign(KNOWN_SECRET, KNOWN_BODY, timestamp=KNOWN_T) == header  # the sender side
    verify_signature(KNOWN_SECRET, header, KNOWN_BODY, now=KNOWN_T)  # the webhook side
    upper = f"t={KNOWN_T},v1={KNOWN_V1.upper()}"  # hex digits in either case
    verify_signature(KNOWN_SECRET, upper, KNOWN_BODY, now=KNOWN_T)
    tampered = KNOWN_V1[:-1] + ("0" if KNOWN_V1[-1] != "0" else "1")
    with pytest.raises(SignatureError, match="mismatch"):
        verify_signature(KNOWN_SECRET, f"t={KNOWN_T},v1={tampered}", KNOWN_BODY, now=KNOWN_T)


# --- 400 / 413 / 422 ----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe\x00", b"[" * 100_00])
def test_body_not_json_is_400(live: LiveApp, body: bytes) -> None:
    response = live.post(body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_payload"


def _padded(size: int) -> bytes:
    """A valid delivery padded with whitespace to exactly ``size`` bytes."""
    body = encode(event(8))
    return body[:-1] + b" " * (size - len(body)) + b"}"


def test_body_at_the_limit_is_accepted_one_byte_more_is_413(live: LiveApp) -> None:
    assert live.post(_padded(65_536)).status_code == 202
    response = live.post(_padded(65_537))
    assert response.status_code == 413 and response.json()["error"] == "invalid_payload"


def test_chunked_body_without_content_length_is_cut_off_at_the_limit(live: LiveApp) -> None:
    body = _padded(200_000)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    headers = signed_headers(body)
    response = live.client.post(live.url + URL_PATH, content=chunks(), headers=headers)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


def _raw_http(live: LiveApp, head: bytes, payload: bytes, *, half_close: bool = True) -> bytes:
    port = int(live.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
                if not half_close and b"\r\n\r\n" in data:
                    break
        except ConnectionResetError:
            # The server closed with our unread bytes in its buffer: the kernel sent a reset,
            # which may come before its answer is read. Whatever arrived is returned.
            pass
    return data


def test_content_length_that_lies_low_never_lets_the_rest_through(live: LiveApp) -> None:
    payload = _padded(100_000)
    head = (
        f"POST {URL_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-3JMS-Signature: {sign(SECRET, payload)}\r\nContent-Length: 40\r\n\r\n"
    ).encode()
    # A reset can overtake the answer (see _raw_http); a few tries see it, none stores a job.
    answers = [_raw_http(live, head, payload) for _ in range(5)]
    answer = next((a for a in answers if a), b"")
    assert answer.startswith(b"HTTP/1.1 4"), answer[:80]
    assert live.backlog() == 0


def test_body_longer_than_its_content_length_is_413_at_the_app(live: LiveApp) -> None:
    """The app counts what it reads, whatever the header says (ASGI, below any HTTP server)."""

    async def call() -> int:
        chunks = [b"{" + b" " * 40_000, b" " * 40_000 + b"}"]
        messages = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": URL_PATH,
            "raw_path": URL_PATH.encode(),
            "query_string": b"",
            "headers": [(b"content-length", b"10"), (b"host", b"x")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "app": live.app,
        }
        sent: list[dict] = []

        async def receive() -> dict:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        await live.app(scope, receive, send)
        return int(next(m for m in sent if m["type"] == "http.response.start")["status"])

    assert asyncio.run(call()) == 413


def test_a_stalled_body_is_408_and_the_connection_closed() -> None:
    """Headers, part of the body, then nothing: the server ends it at the body deadline."""
    with serve_app(make_settings(webhook_body_timeout_s=0.3)) as live:
        payload = encode(event(19))
        head = (
            f"POST {URL_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"X-3JMS-Signature: {sign(SECRET, payload)}\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        port = int(live.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head + payload[:10])  # the rest never comes; the socket stays open
            answer = b""
            while chunk := sock.recv(65536):  # until the server closes the connection
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert b"connection: close" in answer.lower() and b'"error":"timeout"' in answer
        assert live.backlog() == 0


def test_content_length_over_the_limit_is_refused_before_reading(live: LiveApp) -> None:
    head = (f"POST {URL_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n").encode()
    answer = _raw_http(live, head, b"{}", half_close=False)
    assert answer.startswith(b"HTTP/1.1 413")


BAD_FIELDS = [
    ("sku", {"sku": "has space"}),
    ("sku", {"sku": "a" * 65}),
    ("sku", {"sku": ""}),
    ("sku", {"sku": "abc\n"}),
    ("sku", {"sku": None}),
    ("sku", {"sku": "ü"}),
    ("sku", {"sku": "."}),
    ("sku", {"sku": ".."}),
    ("theme", {"theme": ".."}),
    ("theme", {"theme": "Sum mer"}),
    ("theme", {"theme": "t" * 65}),
    ("theme", {"theme": "unknown-theme"}),
    ("sha256", {"sha256": "abc"}),
    ("sha256", {"sha256": "g" * 64}),
    ("sha256", {"sha256": "a" * 65}),
    ("imageUrl", {"imageUrl": "ftp://cdn.example/a.jpg"}),
    ("imageUrl", {"imageUrl": "/media/a.jpg"}),
    ("imageUrl", {"imageUrl": "javascript:alert(1)"}),
    ("imageUrl", {"imageUrl": "https:///nohost.jpg"}),
    ("imageUrl", {"imageUrl": "https://cdn.example/a b.jpg"}),
    ("imageUrl", {"imageUrl": 42}),
    ("imageUrl", {"imageUrl": "http://host:99999/a.jpg"}),
    ("imageUrl", {"imageUrl": "http://host:0/a.jpg"}),
    ("imageUrl", {"imageUrl": "http://host:port/a.jpg"}),
    ("imageUrl", {"imageUrl": "http://[::1/a.jpg"}),
    ("imageUrl", {"imageUrl": "http://cdn..example/a.jpg"}),
    ("imageUrl", {"imageUrl": "http://999.1.1.1/a.jpg"}),
]


@pytest.mark.parametrize(
    ("field", "change"), BAD_FIELDS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_FIELDS)]
)
def test_invalid_field_is_422_with_the_field_named(live: LiveApp, field: str, change: dict) -> None:
    response = live.post(event(10, **change))
    assert response.status_code == 422
    doc = response.json()
    assert doc["error"] == "invalid_payload"
    assert [d["field"] for d in doc["details"]] == [field]
    assert doc["details"][0]["message"]


def test_invalid_port_is_422_every_time_and_nothing_is_stored(live: LiveApp) -> None:
    """Was a 500 after the job was committed, again on every redelivery (a retry loop)."""
    doc = event(17, imageUrl="http://user:pw@cdn.example:99999/a.jpg?token=very-secret-token")
    for _delivery in range(2):
        response = live.post(doc)
        assert response.status_code == 422
        assert response.json()["details"] == [
            {
                "field": "imageUrl",
                "message": "has an invalid port (must be a number from 1 to 65535)",
            }
        ]
    assert live.backlog() == 0


def test_sku_dot_dot_is_422_naming_the_rule(live: LiveApp) -> None:
    response = live.post(event(18, sku=".."))
    assert response.status_code == 422
    assert response.json()["details"] == [
        {
            "field": "sku",
            "message": "must be 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-', "
            "other than . or ..",
        }
    ]
    assert live.post(event(18, sku="...")).status_code == 202  # dots among others are a name


@pytest.mark.parametrize("missing", ["sku", "imageUrl", "sha256"])
def test_missing_field_is_422(live: LiveApp, missing: str) -> None:
    doc = event(11)
    del doc[missing]
    response = live.post(doc)
    assert response.status_code == 422
    assert response.json()["details"] == [{"field": missing, "message": "is required"}]


def test_several_bad_fields_are_all_named_and_json_not_an_object_is_422(live: LiveApp) -> None:
    response = live.post({"sku": "", "imageUrl": "x", "sha256": "y"})
    assert {d["field"] for d in response.json()["details"]} == {"sku", "imageUrl", "sha256"}
    response = live.post([event(12)])
    assert response.status_code == 422 and response.json()["details"][0]["field"] == "body"


# --- production profile --------------------------------------------------------------------------


def test_api_docs_are_served_only_outside_production() -> None:
    from fastapi.testclient import TestClient

    paths = ("/docs", "/redoc", "/openapi.json")
    production = make_settings(profile="production", webhook_secret="a-production-secret-1")
    with TestClient(create_app(production)) as client:
        assert [client.get(path).status_code for path in paths] == [404, 404, 404]
        assert client.get("/healthz").status_code == 200
    with TestClient(create_app(make_settings())) as client:
        assert [client.get(path).status_code for path in paths] == [200, 200, 200]


def test_the_started_webhook_leaves_its_startup_heap_out_of_collections() -> None:
    import gc

    from fastapi.testclient import TestClient

    gc.unfreeze()
    with TestClient(create_app(make_settings())) as client:
        assert gc.get_freeze_count() > 0  # core.heap: no full collection walks it again
        assert client.get("/healthz").status_code == 200


def test_production_refuses_to_start_unsigned() -> None:
    with pytest.raises(ConfigurationError, match="PACKSHOT_WEBHOOK_SECRET must be set"):
        create_app(make_settings(profile="production", webhook_secret=None))


# --- job status and health ----------------------------------------------------------------------


def test_job_status_shows_the_job(live: LiveApp) -> None:
    job_id = live.post(event(13)).json()["jobId"]
    doc = live.get(f"/api/jobs/{job_id}").json()
    assert doc["jobId"] == job_id and doc["sku"] == "SKU-13" and doc["status"] == "NEW"
    assert doc["flowRunId"] is None and doc["steps"] == [] and doc["assets"] == []
    assert "manifestKey" in doc and "createdAt" in doc


@pytest.mark.parametrize("job_id", ["0c6f4c3e-5b7e-4a1e-9d2f-3b1f6f0f9a11", "not-a-uuid", "1"])
def test_unknown_job_is_404(live: LiveApp, job_id: str) -> None:
    response = live.get(f"/api/jobs/{job_id}")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_healthz_reports_database_and_backlog(live: LiveApp) -> None:
    live.post(event(14))
    live.post(event(15))
    doc = live.get("/healthz").json()
    assert doc["status"] == "ok" and doc["db"] == "ok" and doc["backlog"] == 2
    assert doc["signatures"] == "required"
    assert doc["dispatcher"] == {"enabled": False, "alive": False}


def test_logs_name_the_job_but_never_the_secret_or_the_url_query(
    live: LiveApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="packshot")
    body = encode(event(16))
    job_id = live.post(body).json()["jobId"]
    live.post(event(16), secret="wrong-secret")
    text = caplog.text
    assert f"job_id={job_id}" in text and "token=***" in text
    assert "very-secret-token" not in text and SECRET not in text
    assert 'reason="signature mismatch"' in text
