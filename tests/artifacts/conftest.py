"""Fixtures for the artifact store contract suite: one store per backend (local, S3 via moto)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from loopml.artifacts.store import ArtifactStore
from tests.conftest import S3Backend


@pytest.fixture
def local_store(tmp_path: Path) -> ArtifactStore:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    store.ensure()
    return store


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
