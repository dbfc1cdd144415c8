"""S3Store against moto (in-process and over HTTP) and botocore's Stubber for error mapping."""

from __future__ import annotations

import base64
import hashlib
import pickle
import sys
import types
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, NoCredentialsError
from botocore.stub import Stubber
from moto import mock_aws
from moto.server import ThreadedMotoServer

from core.errors import ConfigurationError, StorageError
from core.storage import ObjectNotFound, S3Store, new_store

BUCKET = "packshot-test"
IMAGE_KEY = "derivatives/default/SKU-1/" + "ab" * 32 + "/1_hero.webp"
MANIFEST_KEY = "manifests/SKU-1/" + "ab" * 32 + "-default.json"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


@pytest.fixture
def moto_bucket() -> Iterator[Any]:
    with mock_aws():
        raw = boto3.client("s3", region_name="us-east-1")
        raw.create_bucket(Bucket=BUCKET)
        yield raw


@pytest.mark.parametrize("prefix", ["", "env/prod"])
def test_round_trip(moto_bucket: Any, prefix: str) -> None:
    store = new_store(f"s3://{BUCKET}/{prefix}")
    data = b"RIFF....WEBPVP8 fake"
    stored = store.put(IMAGE_KEY, data, content_type="image/webp")
    assert stored.sha256 == hashlib.sha256(data).hexdigest() and stored.size == len(data)
    store.put(MANIFEST_KEY, b"{}", content_type="application/json")

    full_key = f"{prefix}/{IMAGE_KEY}" if prefix else IMAGE_KEY
    assert moto_bucket.get_object(Bucket=BUCKET, Key=full_key)["Body"].read() == data
    assert store.get(IMAGE_KEY) == data
    head = store.head(IMAGE_KEY)
    assert head is not None
    assert (head.key, head.size, head.content_type) == (IMAGE_KEY, len(data), "image/webp")
    assert head.sha256 == stored.sha256
    assert store.exists(IMAGE_KEY)
    assert list(store.list()) == sorted([IMAGE_KEY, MANIFEST_KEY])
    assert list(store.list("manifests/")) == [MANIFEST_KEY]

    store.delete(IMAGE_KEY)
    store.delete(IMAGE_KEY)  # missing is fine
    assert store.head(IMAGE_KEY) is None and not store.exists(IMAGE_KEY)
    with pytest.raises(ObjectNotFound):
        store.get(IMAGE_KEY)
    assert list(store.list()) == [MANIFEST_KEY]


def test_prefix_isolates_keys(moto_bucket: Any) -> None:
    moto_bucket.put_object(Bucket=BUCKET, Key="other/a.png", Body=b"x")
    moto_bucket.put_object(Bucket=BUCKET, Key="envy/a.png", Body=b"x")
    store = new_store(f"s3://{BUCKET}/env")
    store.put("a.png", b"y", content_type="image/png")
    assert list(store.list()) == ["a.png"]
    keys = [o["Key"] for o in moto_bucket.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert "env/a.png" in keys and "env//a.png" not in keys


def test_invalid_endpoint_is_configuration_error() -> None:
    store = S3Store(BUCKET, endpoint_url="http://user:hunter2@bad host:9000")
    with pytest.raises(ConfigurationError, match="invalid S3 endpoint") as info:
        _ = store.client
    assert "hunter2" not in str(info.value)


def test_folder_markers_are_not_listed(moto_bucket: Any) -> None:
    moto_bucket.put_object(Bucket=BUCKET, Key="p/", Body=b"")
    moto_bucket.put_object(Bucket=BUCKET, Key="p/sub/", Body=b"")
    moto_bucket.put_object(Bucket=BUCKET, Key="p/sub/a.png", Body=b"")
    assert list(new_store(f"s3://{BUCKET}/p").list()) == ["sub/a.png"]


def test_list_paginates() -> None:
    store, stubber = _stubbed("p")
    pages = [[f"p/k/{i:04d}.png" for i in range(3)], [f"p/k/{i:04d}.png" for i in range(3, 5)]]
    stubber.add_response(
        "list_objects_v2",
        {
            "IsTruncated": True,
            "NextContinuationToken": "t1",
            "Contents": [{"Key": k} for k in pages[0]],
        },
        {"Bucket": BUCKET, "Prefix": "p/k/"},
    )
    stubber.add_response(
        "list_objects_v2",
        {"IsTruncated": False, "Contents": [{"Key": k} for k in pages[1]]},
        {"Bucket": BUCKET, "Prefix": "p/k/", "ContinuationToken": "t1"},
    )
    with stubber:
        assert list(store.list("k/")) == [f"k/{i:04d}.png" for i in range(5)]
    stubber.assert_no_pending_responses()


def test_headers_and_checksum_on_stored_object(moto_bucket: Any) -> None:
    store = new_store(f"s3://{BUCKET}/pre")
    data = b"\xff\xd8 jpeg"
    store.put(IMAGE_KEY, data, content_type="image/webp")
    store.put(MANIFEST_KEY, b"{}", content_type="application/json")
    image = moto_bucket.head_object(Bucket=BUCKET, Key=f"pre/{IMAGE_KEY}", ChecksumMode="ENABLED")
    assert image["ContentType"] == "image/webp"
    assert image["CacheControl"] == "public, max-age=31536000, immutable"
    expected = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert image["ChecksumSHA256"] == expected
    manifest = moto_bucket.head_object(Bucket=BUCKET, Key=f"pre/{MANIFEST_KEY}")
    assert manifest["ContentType"] == "application/json"
    assert manifest["CacheControl"] == "no-cache"


def test_presigned_url(moto_bucket: Any) -> None:
    store = new_store(f"s3://{BUCKET}/pre")
    url = store.url(IMAGE_KEY, expires_in=600)
    parts = urlsplit(url)
    assert parts.path.endswith(f"/pre/{IMAGE_KEY}")
    query = parse_qs(parts.query)
    assert "X-Amz-Signature" in query and query["X-Amz-Expires"] == ["600"]
    with pytest.raises(ValueError, match="expires_in"):
        store.url(IMAGE_KEY, expires_in=604_801)


def test_keys_are_validated(moto_bucket: Any) -> None:
    store = new_store(f"s3://{BUCKET}")
    for bad in ("../x", "/etc/passwd", "a//b", ""):
        with pytest.raises(ValueError, match="invalid object key"):
            store.put(bad, b"x", content_type="image/png")


def test_endpoint_url_against_moto_server() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        store = new_store(f"s3://{BUCKET}/srv", endpoint_url=endpoint, region="us-east-1")
        assert store.describe() == f"s3://{BUCKET}/srv at {endpoint}"
        store.put(IMAGE_KEY, b"over http", content_type="image/webp")
        assert store.get(IMAGE_KEY) == b"over http"
        assert list(store.list()) == [IMAGE_KEY]
        url = store.url(IMAGE_KEY)
        assert url.startswith(f"{endpoint}/{BUCKET}/srv/")  # path-style on custom endpoints
        assert httpx.get(url).content == b"over http"
    finally:
        server.stop()


def test_unreachable_endpoint_is_retryable_storage_error() -> None:
    store = S3Store(BUCKET, endpoint_url="http://127.0.0.1:9", connect_timeout=0.5, max_attempts=1)
    with pytest.raises(StorageError) as info:
        store.get("a.png")
    assert info.value.retryable and not isinstance(info.value, ObjectNotFound)


def _stubbed(prefix: str = "") -> tuple[S3Store, Stubber]:
    no_retries = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    client = boto3.client("s3", region_name="us-east-1", config=no_retries)
    return S3Store(BUCKET, prefix, client), Stubber(client)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("SlowDown", 503),
        ("InternalError", 500),
        ("RequestTimeout", 400),
        ("503", 503),
        ("BadDigest", 400),  # checksum mismatch: the bytes were damaged on the way
    ],
)
def test_throttling_and_5xx_are_retryable(code: str, status: int) -> None:
    store, stubber = _stubbed()
    stubber.add_client_error("put_object", service_error_code=code, http_status_code=status)
    with stubber, pytest.raises(StorageError) as info:
        store.put("a.png", b"x", content_type="image/png")
    assert type(info.value) is StorageError and info.value.retryable
    assert code in str(info.value) and BUCKET in str(info.value)


@pytest.mark.parametrize(
    ("code", "status"),
    [("AccessDenied", 403), ("InvalidAccessKeyId", 403), ("NoSuchBucket", 404)],
)
def test_auth_and_bucket_errors_are_configuration_errors(code: str, status: int) -> None:
    store, stubber = _stubbed()
    stubber.add_client_error(
        "get_object",
        service_error_code=code,
        service_message="The AWS Access Key Id AKIASECRETSECRET you provided does not exist",
        http_status_code=status,
    )
    with stubber, pytest.raises(ConfigurationError) as info:
        store.get("a.png")
    message = str(info.value)
    assert not info.value.retryable and BUCKET in message and code in message
    assert "AKIASECRETSECRET" not in message and "testing" not in message
    clone = pickle.loads(pickle.dumps(info.value))
    assert type(clone) is ConfigurationError and str(clone) == message


def test_no_such_key_is_object_not_found() -> None:
    store, stubber = _stubbed("pre")
    stubber.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
    stubber.add_client_error("head_object", service_error_code="404", http_status_code=404)
    with stubber:
        with pytest.raises(ObjectNotFound) as info:
            store.get("a.png")
        assert not info.value.retryable and "'a.png'" in str(info.value)
        assert store.head("a.png") is None


def test_head_denied_is_configuration_error() -> None:
    store, stubber = _stubbed()
    stubber.add_client_error("head_object", service_error_code="403", http_status_code=403)
    with stubber, pytest.raises(ConfigurationError):
        store.exists("a.png")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (EndpointConnectionError(endpoint_url="http://x"), StorageError),
        (ConnectTimeoutError(endpoint_url="http://x"), StorageError),
        (NoCredentialsError(), ConfigurationError),
    ],
)
def test_botocore_errors_are_mapped(exc: Exception, expected: type[Exception]) -> None:
    store, _ = _stubbed()

    def fail(**_: Any) -> None:
        raise exc

    store.client.meta.events.register("before-send.s3.DeleteObject", fail)
    with pytest.raises(expected) as info:
        store.delete("a.png")
    assert type(info.value) is expected


def test_client_is_created_once() -> None:
    store = S3Store(BUCKET, region="eu-west-1", read_timeout=7, max_attempts=5)
    client = store.client
    assert store.client is client
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.config.read_timeout == 7
    assert client.meta.config.retries == {"total_max_attempts": 5, "mode": "standard"}
    assert client.meta.config.signature_version == "s3v4"


class _FakeClientParameters:
    def get_params_override(self) -> dict[str, Any]:
        from botocore.config import Config

        return {"config": Config(s3={"addressing_style": "path"}, read_timeout=99)}


class _FakeAwsCredentials:
    loaded: list[str] = []  # noqa: RUF012
    region_name = "eu-central-1"
    aws_client_parameters = _FakeClientParameters()

    @classmethod
    def load(cls, name: str, _sync: bool = False) -> _FakeAwsCredentials:
        if name != "packshot":
            raise ValueError(f"Unable to find block document named {name}")
        cls.loaded.append(name)
        return cls()

    def get_boto3_session(self) -> boto3.Session:
        return boto3.Session(aws_access_key_id="block", aws_secret_access_key="block-secret")


def test_credentials_block(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("prefect_aws")
    fake.AwsCredentials = _FakeAwsCredentials  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "prefect_aws", fake)
    store = S3Store(BUCKET, credentials_block="packshot", read_timeout=3)
    client = store.client
    assert client.meta.region_name == "eu-central-1"
    assert client.meta.config.s3 == {"addressing_style": "path"}
    assert client.meta.config.read_timeout == 3  # the store's settings win over the block's
    assert client._request_signer._credentials.access_key == "block"
    with pytest.raises(ConfigurationError, match="'missing'"):
        _ = S3Store(BUCKET, credentials_block="missing").client
