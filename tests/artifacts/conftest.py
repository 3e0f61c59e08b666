"""Fixtures for the artifact store: a local folder and an S3 bucket served by moto.

The moto server runs in a thread of the test process, bound to 127.0.0.1 on a free port,
so nothing reaches the network. Each S3 test gets its own bucket and a fresh s3fs
filesystem (s3fs caches instances and directory listings between calls).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loopml.artifacts.store import ArtifactStore

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@dataclass
class S3Backend:
    """Where an S3 test's store lives, and a boto3 client to look behind its back."""

    endpoint: str
    bucket: str
    prefix: str
    client: Any

    def options(self, **extra: Any) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint, "key": "test", "secret": "test", **extra}

    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def keys(self, under: str = "") -> list[str]:
        """Every key in the bucket below ``<prefix>/<under>``."""
        paginator = self.client.get_paginator("list_objects_v2")
        found: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/{under}"):
            found.extend(item["Key"] for item in page.get("Contents", []))
        return found


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 and a free port, shared by the whole session."""
    pytest.importorskip("s3fs")
    server_module = pytest.importorskip("moto.server")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENV.items():
            patch.setenv(name, value)
        server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture
def local_store(tmp_path: Path) -> ArtifactStore:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    store.ensure()
    return store


@pytest.fixture
def s3_backend(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Backend]:
    import boto3
    import s3fs

    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    bucket = f"loopml-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    s3fs.S3FileSystem.clear_instance_cache()
    yield S3Backend(endpoint=moto_endpoint, bucket=bucket, prefix="prefix", client=client)
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_store(s3_backend: S3Backend) -> ArtifactStore:
    store = ArtifactStore(s3_backend.url(), s3_backend.options())
    store.ensure()
    return store


@dataclass
class Backend:
    """A store under test plus the means to count and damage its objects directly."""

    name: str
    store: ArtifactStore
    local_root: Path | None = None
    s3: S3Backend | None = None

    def another_client(self) -> ArtifactStore:
        """A second store object on the same location, as another process would open it."""
        if self.s3 is not None:
            return ArtifactStore(self.s3.url(), self.s3.options(skip_instance_cache=True))
        return ArtifactStore(self.store.url)

    def object_count(self) -> int:
        if self.s3 is not None:
            return len(self.s3.keys("objects/"))
        assert self.local_root is not None
        return sum(1 for p in (self.local_root / "objects").rglob("*") if p.is_file())

    def tmp_count(self) -> int:
        if self.s3 is not None:
            return len(self.s3.keys("tmp/"))
        assert self.local_root is not None
        return sum(1 for p in (self.local_root / "tmp").rglob("*") if p.is_file())

    def overwrite(self, sha256: str, data: bytes) -> None:
        """Replaces an object's stored bytes behind the store's back."""
        if self.s3 is not None:
            key = f"{self.s3.prefix}/objects/{sha256[:2]}/{sha256[2:]}"
            self.s3.client.put_object(Bucket=self.s3.bucket, Key=key, Body=data)
        else:
            Path(self.store.object_path(sha256)).write_bytes(data)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each contract test runs once per backend: a local folder and S3 (moto)."""
    if request.param == "local":
        store = request.getfixturevalue("local_store")
        return Backend("local", store, local_root=tmp_path / "artifacts")
    s3 = request.getfixturevalue("s3_backend")
    return Backend("s3", request.getfixturevalue("s3_store"), s3=s3)


@pytest.fixture
def store(backend: Backend) -> ArtifactStore:
    return backend.store
