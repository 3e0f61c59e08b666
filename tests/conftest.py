"""Shared fixtures: workspaces on every metadata backend, with real servers where they exist."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Peer tools and Ray phone home by default; nothing leaves this machine.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import loopml

POSTGRES_URL = os.environ.get(
    "LOOPML_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_problem() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        with psycopg.connect(
            POSTGRES_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=3
        ):
            return None
    except psycopg.OperationalError as error:
        return f"no PostgreSQL server at {POSTGRES_URL}: {str(error).strip()}"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL server; skips visibly when it is down, fails under CI."""
    problem = _postgres_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs PostgreSQL: {problem}")
        pytest.skip(problem)
    return POSTGRES_URL


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A database URL whose connections live in a fresh schema, dropped afterwards."""
    import psycopg

    schema = f"loopml_test_{uuid.uuid4().hex[:12]}"
    plain = postgres_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The metadata store URL, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def workspace(tmp_path: Path, db_url: str) -> Iterator[loopml.Workspace]:
    """A fresh workspace on each metadata backend, with a local artifact folder."""
    ws = loopml.Workspace.open(tmp_path / "home", db_url=db_url)
    yield ws
    ws.close()


@pytest.fixture
def sqlite_workspace(tmp_path: Path) -> Iterator[loopml.Workspace]:
    """A workspace on the embedded default (SQLite + local folder)."""
    ws = loopml.Workspace.open(tmp_path / "home")
    yield ws
    ws.close()


@pytest.fixture(autouse=True)
def _outside_any_git_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs record the git state of the current folder; tests start in an empty one."""
    monkeypatch.chdir(tmp_path)


# -- S3: a moto server on 127.0.0.1, so nothing reaches the network ------------------
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
