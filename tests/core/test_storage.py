"""Object store contract, run against the local and in-memory stores; URL parsing; FlakyStore."""

from __future__ import annotations

import hashlib
import pickle
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from core.errors import ConfigurationError, StorageError, is_retryable_error
from core.storage import (
    FlakyStore,
    LocalStore,
    MemoryStore,
    ObjectNotFound,
    ObjectStore,
    S3Store,
    StoredObject,
    cache_control_for,
    content_type_for,
    new_store,
    validate_key,
)

KEY = "cutouts/SKU-1/" + "ab" * 32 + ".png"
BAD_KEYS = [
    "",
    "../x",
    "a/../../b",
    "a/..",
    "./a",
    "/etc/passwd",
    "a//b",
    "a/",
    "a\\b",
    "..\\x",
    "a\x00b",
    "a\nb",
    "k" * 1025,
    "é" * 513,
]


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "file":
        return LocalStore(tmp_path / "store")
    return MemoryStore()


def test_implementations_satisfy_protocol(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)
    assert isinstance(FlakyStore(store), ObjectStore)


def test_put_get_head_exists(store: ObjectStore) -> None:
    data = b"\x89PNG fake"
    stored = store.put(KEY, data, content_type="image/png")
    assert stored == StoredObject(
        key=KEY, size=len(data), content_type="image/png", sha256=hashlib.sha256(data).hexdigest()
    )
    assert store.get(KEY) == data
    assert store.exists(KEY)
    head = store.head(KEY)
    assert head is not None
    assert (head.key, head.size, head.content_type) == (KEY, len(data), "image/png")


def test_missing_object(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound, match=r"nope\.png"):
        store.get("nope.png")
    assert store.head("nope.png") is None
    assert not store.exists("nope.png")
    store.delete("nope.png")  # missing is fine


def test_directory_is_not_an_object(store: ObjectStore) -> None:
    store.put("a/b.json", b"{}", content_type="application/json")
    assert store.head("a") is None
    with pytest.raises(ObjectNotFound):
        store.get("a")
    with pytest.raises(ObjectNotFound):
        store.get("a/b.json/c")


def test_overwrite_same_key(store: ObjectStore) -> None:
    store.put(KEY, b"one", content_type="image/png")
    store.put(KEY, b"second", content_type="image/png")
    assert store.get(KEY) == b"second"
    head = store.head(KEY)
    assert head is not None and head.size == 6
    assert list(store.list()) == [KEY]


def test_delete(store: ObjectStore) -> None:
    store.put(KEY, b"x", content_type="image/png")
    store.delete(KEY)
    assert not store.exists(KEY)
    with pytest.raises(ObjectNotFound):
        store.get(KEY)


def test_list_sorted_and_prefixed(store: ObjectStore) -> None:
    keys = ["b/2.jpg", "a/1.jpg", "a/10.jpg", "ab.json", "a/sub/3.webp", "c.png"]
    for key in keys:
        store.put(key, key.encode(), content_type=content_type_for(key))
    assert list(store.list()) == sorted(keys)
    assert list(store.list("a/")) == ["a/1.jpg", "a/10.jpg", "a/sub/3.webp"]
    assert list(store.list("a")) == ["a/1.jpg", "a/10.jpg", "a/sub/3.webp", "ab.json"]
    assert list(store.list("a/1")) == ["a/1.jpg", "a/10.jpg"]
    assert list(store.list("a/sub/")) == ["a/sub/3.webp"]
    assert list(store.list("zzz/")) == []
    assert list(store.list("c.png/")) == []


@pytest.mark.parametrize(
    ("key", "content_type"),
    [
        ("x/a.jpg", "image/jpeg"),
        ("x/a.png", "image/png"),
        ("x/a.webp", "image/webp"),
        ("x/a.avif", "image/avif"),
        ("x/a.tif", "image/tiff"),
        ("x/a.gif", "image/gif"),
        ("manifests/S/abc-default.json", "application/json"),
    ],
)
def test_content_type_per_extension(store: ObjectStore, key: str, content_type: str) -> None:
    assert content_type_for(key) == content_type
    assert store.put(key, b"data", content_type=content_type).content_type == content_type
    head = store.head(key)
    assert head is not None and head.content_type == content_type


def test_unknown_extension_content_type() -> None:
    assert content_type_for("a/b.bin") == "application/octet-stream"
    assert content_type_for("a/noext") == "application/octet-stream"
    assert content_type_for("A/B.JPG") == "image/jpeg"


def test_url(store: ObjectStore) -> None:
    store.put("a b/c.jpg", b"x", content_type="image/jpeg")
    url = store.url("a b/c.jpg")
    if isinstance(store, LocalStore):
        assert url.startswith("file:///")
        assert Path(unquote(urlsplit(url).path)).read_bytes() == b"x"
    else:
        assert url == "memory://a%20b/c.jpg"


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_rejected_everywhere(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        validate_key(key)
    with pytest.raises(ValueError, match="invalid object key"):
        store.put(key, b"x", content_type="image/png")
    for call in (store.get, store.head, store.exists, store.delete, store.url):
        with pytest.raises(ValueError, match="invalid object key"):
            call(key)


def test_validate_key_names_the_key_and_accepts_layout_keys() -> None:
    with pytest.raises(ValueError, match=r"'a/\.\./\.\./b'"):
        validate_key("a/../../b")
    for key in [
        "originals/SKU.1/" + "0f" * 32 + ".jpg",
        "derivatives/default/SKU_1/" + "0f" * 32 + "/1_hero.avif",
        "manifests/SKU-1/" + "0f" * 32 + "-default.json",
        "k" * 1024,
        "a..b/c.png",
    ]:
        assert validate_key(key) == key


def test_local_store_stays_under_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    store = LocalStore(tmp_path / "store")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "link").symlink_to(outside)
    with pytest.raises(ValueError, match="outside the store"):
        store.get("link/secret.txt")
    with pytest.raises(ValueError, match="outside the store"):
        store.put("link/new.txt", b"x", content_type="text/plain")
    assert not (outside / "new.txt").exists()


def test_local_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for i in range(3):
        store.put(KEY, bytes([i]) * 1000, content_type="image/png")
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == [KEY]
    assert (tmp_path / KEY).stat().st_mode & 0o777 == 0o644


def test_local_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with pytest.raises(TypeError):
        store.put("a/b.png", "not bytes", content_type="image/png")  # type: ignore[arg-type]
    assert [p.name for p in (tmp_path / "a").iterdir()] == []


def test_local_temp_files_are_not_listed_or_addressable(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("a/b.png", b"x", content_type="image/png")
    (tmp_path / "a" / ".packshot-tmp-123").write_bytes(b"partial")
    assert list(store.list()) == ["a/b.png"]
    with pytest.raises(ValueError, match="reserved"):
        store.get("a/.packshot-tmp-123")


def test_local_os_error_is_storage_error(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a file where a directory should be")
    store = LocalStore(tmp_path)
    with pytest.raises(StorageError) as info:
        store.put("a/b.png", b"x", content_type="image/png")
    assert info.value.retryable
    assert not isinstance(info.value, ObjectNotFound)


def test_local_relative_root_is_fixed_at_construction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = LocalStore(Path("rel"))
    monkeypatch.chdir("/")
    store.put("x.json", b"{}", content_type="application/json")
    assert (tmp_path / "rel" / "x.json").read_bytes() == b"{}"


def test_memory_store_concurrent_puts() -> None:
    store = MemoryStore()

    def work(n: int) -> None:
        for i in range(50):
            store.put(f"t{n}/{i}.png", b"x", content_type="image/png")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(list(store.list())) == 400


def test_object_not_found_pickles_and_is_not_retryable() -> None:
    exc = ObjectNotFound("no object 'a.png' in memory store")
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is ObjectNotFound
    assert str(clone) == str(exc) and clone.message == exc.message
    assert isinstance(clone, StorageError)
    assert not clone.retryable and not is_retryable_error(clone)
    assert is_retryable_error(StorageError("hiccup"))


def test_cache_control() -> None:
    immutable = "public, max-age=31536000, immutable"
    assert cache_control_for("derivatives/t/s/abc/1_hero.avif", "image/avif") == immutable
    assert cache_control_for("cutouts/s/abc.png", "IMAGE/PNG") == immutable
    assert cache_control_for("manifests/s/abc-t.json", "application/json") == "no-cache"
    assert cache_control_for("x/y.json", "application/json; charset=utf-8") == "no-cache"
    assert cache_control_for("manifests/s/preview.png", "image/png") == "no-cache"
    assert cache_control_for("x/y.bin", "application/octet-stream") == "no-cache"


def test_flaky_store_fails_then_works() -> None:
    inner = MemoryStore()
    store = FlakyStore(inner, failures=2)
    for attempt in (1, 2):
        with pytest.raises(StorageError, match=f"injected failure {attempt} of 2") as info:
            store.put("a.png", b"x", content_type="image/png")
        assert info.value.retryable
        assert not inner.exists("a.png")
    assert store.put("a.png", b"x", content_type="image/png").size == 1
    assert store.get("a.png") == b"x" and store.put_calls == 3
    assert store.name == "memory" and "flaky" in store.describe()


def test_new_store_file_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = new_store(f"file://{tmp_path}/abs")
    assert isinstance(absolute, LocalStore) and absolute.root == tmp_path / "abs"
    monkeypatch.chdir(tmp_path)
    relative = new_store("file://rel/dir")
    assert isinstance(relative, LocalStore) and relative.root == tmp_path / "rel" / "dir"
    dotted = new_store("file://./.packshot/store")
    assert isinstance(dotted, LocalStore) and dotted.root == tmp_path / ".packshot" / "store"
    assert new_store((tmp_path / "with space").as_uri()).describe().endswith("with space")
    assert not (tmp_path / "abs").exists()  # created lazily
    with pytest.raises(ConfigurationError, match="no directory"):
        new_store("file://")


def test_new_store_s3_and_memory_urls() -> None:
    s3 = new_store("s3://bucket/some/prefix/", endpoint_url="http://127.0.0.1:9000", region="eu-1")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.endpoint_url, s3.region) == (
        "bucket",
        "some/prefix",
        "http://127.0.0.1:9000",
        "eu-1",
    )
    assert s3.describe() == "s3://bucket/some/prefix at http://127.0.0.1:9000"
    bare = new_store("S3://bucket")
    assert isinstance(bare, S3Store) and bare.prefix == ""
    assert isinstance(new_store("memory://"), MemoryStore)
    for bad in ("s3://", "s3:///prefix", "s3://bucket/a/../b", "s3://bucket?x=1"):
        with pytest.raises(ConfigurationError):
            new_store(bad)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://AKIAEXAMPLE:hunter2secret@host/dir",
        "gs://user:hunter2secret@bucket/x",
        "s3://AKIAEXAMPLE:hunter2secret@bucket/x",
        "file://AKIAEXAMPLE:hunter2secret@host/dir",
        "http://host/x?token=hunter2secret",
    ],
)
def test_new_store_never_echoes_credentials(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        new_store(url)
    message = str(info.value)
    assert "hunter2secret" not in message and "AKIAEXAMPLE" not in message
    assert not isinstance(info.value, StorageError) and not info.value.retryable


def test_new_store_unknown_scheme_is_named() -> None:
    with pytest.raises(ConfigurationError, match="unknown object store URL scheme 'ftp'"):
        new_store("ftp://user:pw@host/dir")
    with pytest.raises(ConfigurationError, match=r"scheme \(none\)"):
        new_store("/just/a/path")
