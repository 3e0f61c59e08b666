"""Behaviour of the content-addressed artifact store, on a local folder and on S3."""

from __future__ import annotations

import errno
import hashlib
import io
import mmap
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

import loopml.artifacts.store as store_module
from loopml.artifacts.store import CHUNK, ArtifactStore, StoredBlob
from loopml.errors import ArtifactError, ConfigError, CorruptArtifactError, NotFoundError

from .conftest import Backend

MiB = 1024 * 1024


def _payload(size: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible-looking bytes of the given size."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 64
        counter += 1
    return bytes(out[:size])


def _write_file(path: Path, size: int, seed: int = 0) -> Path:
    """Writes ``size`` bytes to ``path`` one MiB at a time (never the whole file in memory)."""
    block = _payload(MiB, seed)
    with path.open("wb") as out:
        written = 0
        index = 0
        while written < size:
            piece = hashlib.sha256(f"{seed}:{index}".encode()).digest() + block[32:]
            piece = piece[: size - written]
            out.write(piece)
            written += len(piece)
            index += 1
    return path


def _sha_of_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MiB):
            hasher.update(chunk)
    return hasher.hexdigest()


# --- contract: runs against every backend -------------------------------------------------


def test_identical_content_is_stored_once(backend: Backend, tmp_path: Path) -> None:
    data = _payload(3 * CHUNK + 17)
    source = tmp_path / "model.bin"
    source.write_bytes(data)

    from_file = backend.store.put_file(source)
    from_bytes = backend.store.put_bytes(data)
    again = backend.store.put_file(source)

    expected = hashlib.sha256(data).hexdigest()
    assert from_file == from_bytes == again == StoredBlob(expected, len(data))
    assert backend.object_count() == 1
    assert backend.tmp_count() == 0


def test_storing_known_content_writes_nothing(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _payload(CHUNK + 1, seed=6)
    source = tmp_path / "again.bin"
    source.write_bytes(data)
    first = backend.store.put_bytes(data)

    def no_write(*args: object) -> None:
        raise AssertionError("known content was uploaded again")

    monkeypatch.setattr(backend.store, "_write", no_write)
    monkeypatch.setattr(backend.store, "_publish", no_write)

    assert backend.store.put_file(source) == first
    assert backend.store.put_bytes(data) == first


def test_different_content_gets_different_objects(backend: Backend) -> None:
    first = backend.store.put_bytes(b"alpha")
    second = backend.store.put_bytes(b"beta")

    assert first.sha256 != second.sha256
    assert backend.object_count() == 2
    assert backend.store.read_bytes(first.sha256) == b"alpha"
    assert backend.store.read_bytes(second.sha256) == b"beta"


def test_exists_follows_writes_and_deletes(store: ArtifactStore) -> None:
    sha = hashlib.sha256(b"hello").hexdigest()
    assert not store.exists(sha)

    store.put_bytes(b"hello")
    assert store.exists(sha)

    store.delete(sha)
    assert not store.exists(sha)
    store.delete(sha)  # deleting twice is harmless

    store.put_bytes(b"hello")
    assert store.exists(sha)
    assert store.read_bytes(sha) == b"hello"


def test_changes_by_another_client_are_seen_after_a_listing(backend: Backend) -> None:
    """A listing (as gc makes) must not hide another client's writes and deletes."""
    mine, theirs = backend.store, backend.another_client()
    kept = mine.put_bytes(b"kept")
    gone = mine.put_bytes(b"gone")
    new_sha = hashlib.sha256(b"new").hexdigest()
    mine.fs.find(f"{mine.root}/objects")  # caches the listing on object stores

    theirs.delete(gone.sha256)
    theirs.put_bytes(b"new")

    assert mine.exists(kept.sha256)
    assert not mine.exists(gone.sha256)
    assert mine.exists(new_sha)
    assert mine.read_bytes(new_sha) == b"new"
    with pytest.raises(NotFoundError, match=gone.sha256):
        mine.read_bytes(gone.sha256)

    mine.fs.find(f"{mine.root}/objects")
    theirs.delete(kept.sha256)
    assert mine.put_bytes(b"kept") == kept  # must store it again, not trust the cache
    assert theirs.read_bytes(kept.sha256) == b"kept"


def test_round_trip_through_every_read_path(store: ArtifactStore, tmp_path: Path) -> None:
    data = _payload(2 * CHUNK + 5, seed=1)
    source = tmp_path / "in.bin"
    source.write_bytes(data)

    blob = store.put_file(source)

    assert blob == StoredBlob(hashlib.sha256(data).hexdigest(), len(data))
    assert store.exists(blob.sha256)
    assert store.read_bytes(blob.sha256) == data
    chunks = list(store.iter_chunks(blob.sha256))
    assert len(chunks) == 3
    assert b"".join(chunks) == data
    with store.open(blob.sha256) as reader:
        assert reader.read(10) == data[:10]
    store.verify(blob.sha256)

    target = tmp_path / "out" / "nested" / "copy.bin"
    assert store.download(blob.sha256, target) == target
    assert target.read_bytes() == data
    assert [p.name for p in target.parent.iterdir()] == ["copy.bin"]  # no .part left behind


def test_empty_artifact_round_trips(store: ArtifactStore, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")

    blob = store.put_file(empty)

    assert blob == StoredBlob(hashlib.sha256(b"").hexdigest(), 0)
    assert store.read_bytes(blob.sha256) == b""
    assert store.download(blob.sha256, tmp_path / "empty.out").read_bytes() == b""


def test_download_replaces_an_existing_destination(store: ArtifactStore, tmp_path: Path) -> None:
    blob = store.put_bytes(b"new content")
    target = tmp_path / "target.txt"
    target.write_bytes(b"old content that is longer")

    store.download(blob.sha256, target)

    assert target.read_bytes() == b"new content"


@pytest.mark.parametrize("damage", ["same size", "shorter", "longer"])
def test_corrupted_object_is_refused(backend: Backend, tmp_path: Path, damage: str) -> None:
    data = _payload(CHUNK + 100, seed=2)
    blob = backend.store.put_bytes(data)
    backend.store.read_bytes(blob.sha256)  # a first, good read (warms any cache)
    damaged = {
        "same size": b"X" + data[1:],
        "shorter": data[:-1],
        "longer": data + b"!",
    }[damage]
    backend.overwrite(blob.sha256, damaged)

    with pytest.raises(CorruptArtifactError, match=blob.sha256):
        backend.store.read_bytes(blob.sha256)
    with pytest.raises(CorruptArtifactError, match=blob.sha256):
        backend.store.verify(blob.sha256)
    with pytest.raises(CorruptArtifactError, match=blob.sha256):
        b"".join(backend.store.iter_chunks(blob.sha256))

    target = tmp_path / "dl" / "artifact.bin"
    with pytest.raises(CorruptArtifactError, match=blob.sha256):
        backend.store.download(blob.sha256, target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_corrupted_download_keeps_the_previous_destination(
    backend: Backend, tmp_path: Path
) -> None:
    blob = backend.store.put_bytes(b"the real bytes")
    backend.overwrite(blob.sha256, b"the fake bytes")
    target = tmp_path / "downloads" / "artifact.txt"
    target.parent.mkdir()
    target.write_bytes(b"previous download")

    with pytest.raises(CorruptArtifactError):
        backend.store.download(blob.sha256, target)

    assert target.read_bytes() == b"previous download"
    assert [p.name for p in target.parent.iterdir()] == ["artifact.txt"]


def test_missing_object_is_not_found(store: ArtifactStore, tmp_path: Path) -> None:
    sha = hashlib.sha256(b"never stored").hexdigest()

    assert not store.exists(sha)
    for read in (store.read_bytes, store.verify, store.open, lambda s: list(store.iter_chunks(s))):
        with pytest.raises(NotFoundError, match=sha):
            read(sha)
    target = tmp_path / "downloads" / "missing.bin"
    with pytest.raises(NotFoundError, match=sha):
        store.download(sha, target)
    assert list(target.parent.iterdir()) == []


def test_deleted_object_is_not_found(store: ArtifactStore) -> None:
    blob = store.put_bytes(b"short-lived")
    store.delete(blob.sha256)

    with pytest.raises(NotFoundError, match=blob.sha256):
        store.read_bytes(blob.sha256)


def test_storing_a_missing_file_is_not_found(backend: Backend, tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist.csv"

    for once in (False, True):
        with pytest.raises(NotFoundError, match=r"does-not-exist\.csv"):
            backend.store.put_file(missing, once=once)
    assert backend.object_count() == 0


def test_a_store_failing_to_write_is_not_blamed_on_the_source(
    local_store: ArtifactStore, tmp_path: Path
) -> None:
    """put_file(once=True) reads and writes in one pass: a store whose own folder is gone
    fails as the store, not as "the file you passed does not exist"."""
    source = tmp_path / "here.bin"
    source.write_bytes(b"present")
    shutil.rmtree(Path(local_store.root) / "tmp", ignore_errors=True)
    with pytest.raises(OSError) as raised:
        local_store.put_file(source, once=True)
    assert not isinstance(raised.value, NotFoundError)
    assert source.read_bytes() == b"present"


class _FailingStream(io.RawIOBase):
    """Yields ``good_chunks`` chunks and then fails, like a disk or network error mid-read."""

    def __init__(self, good_chunks: int, error: BaseException) -> None:
        self.remaining = good_chunks
        self.error = error

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.remaining == 0:
            raise self.error
        self.remaining -= 1
        return b"z" * (size if size > 0 else CHUNK)


@pytest.mark.parametrize("error", [OSError("disk on fire"), KeyboardInterrupt()])
def test_a_write_that_fails_midway_leaves_nothing(backend: Backend, error: BaseException) -> None:
    with pytest.raises(type(error)):
        backend.store._write(_FailingStream(good_chunks=3, error=error))  # type: ignore[arg-type]

    partial = hashlib.sha256(b"z" * 3 * CHUNK).hexdigest()
    assert not backend.store.exists(partial)
    assert backend.object_count() == 0
    assert backend.tmp_count() == 0


def test_a_publish_that_fails_leaves_nothing(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_move(tmp: str, digest: str) -> None:
        raise OSError("the rename failed")

    monkeypatch.setattr(backend.store, "_move", broken_move)

    with pytest.raises(OSError, match="rename failed"):
        backend.store.put_bytes(b"some bytes")

    assert not backend.store.exists(hashlib.sha256(b"some bytes").hexdigest())
    assert backend.object_count() == 0
    assert backend.tmp_count() == 0


def test_a_file_changing_while_stored_is_refused(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "growing.log"
    source.write_bytes(b"first version")
    real_write = ArtifactStore._write

    def write_after_change(self: ArtifactStore, stream: io.BufferedReader) -> StoredBlob:
        source.write_bytes(b"second version, written by someone else")
        stream.seek(0)
        return real_write(self, stream)

    monkeypatch.setattr(ArtifactStore, "_write", write_after_change)

    with pytest.raises(ArtifactError, match=r"growing\.log changed while it was being stored"):
        backend.store.put_file(source)


def _race(
    clients: list[ArtifactStore], source: Path
) -> tuple[list[StoredBlob], list[BaseException]]:
    """Has every client put_file ``source`` at the same moment, each in its own thread."""
    barrier = threading.Barrier(len(clients))
    results: list[StoredBlob] = []
    errors: list[BaseException] = []

    def store_it(client: ArtifactStore) -> None:
        try:
            barrier.wait()
            results.append(client.put_file(source))
        except BaseException as error:  # collected and asserted on by the caller
            errors.append(error)

    threads = [threading.Thread(target=store_it, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


@pytest.mark.slow
def test_two_clients_storing_the_same_artifact_at_once(backend: Backend, tmp_path: Path) -> None:
    """Threads, each with its own store object (and for S3 its own filesystem instance)."""
    data = _payload(4 * MiB + 3, seed=3)
    source = tmp_path / "shared.bin"
    source.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()

    for _ in range(3):
        backend.store.delete(expected)
        clients = [backend.another_client() for _ in range(4)]

        results, errors = _race(clients, source)

        assert errors == []
        assert results == [StoredBlob(expected, len(data))] * len(clients)
        assert backend.object_count() == 1
        assert backend.tmp_count() == 0
        backend.store.verify(expected)


# --- local folder only --------------------------------------------------------------------


def test_objects_live_under_their_hash(local_store: ArtifactStore) -> None:
    blob = local_store.put_bytes(b"addressed by content")

    path = Path(local_store.object_path(blob.sha256))
    assert path.parent.name == blob.sha256[:2]
    assert path.name == blob.sha256[2:]
    assert path.parent.parent == Path(local_store.root) / "objects"
    assert path.read_bytes() == b"addressed by content"


def test_a_large_file_streams_in_bounded_memory(local_store: ArtifactStore, tmp_path: Path) -> None:
    size = 64 * MiB
    source = _write_file(tmp_path / "big.bin", size, seed=4)
    expected = _sha_of_file(source)
    limit = 16 * MiB

    tracemalloc.start()
    try:
        blob = local_store.put_file(source)
        _, stored_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()

        target = local_store.download(blob.sha256, tmp_path / "back.bin")
        _, download_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()

        local_store.verify(blob.sha256)
        _, verify_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert blob == StoredBlob(expected, size)
    assert _sha_of_file(target) == expected
    assert stored_peak < limit, f"put_file peaked at {stored_peak / MiB:.1f} MiB"
    assert download_peak < limit, f"download peaked at {download_peak / MiB:.1f} MiB"
    assert verify_peak < limit, f"verify peaked at {verify_peak / MiB:.1f} MiB"


_RACER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from loopml.artifacts.store import ArtifactStore

    root, source, go = sys.argv[1:4]
    store = ArtifactStore(root)
    store.ensure()
    deadline = time.monotonic() + 30
    while not Path(go).exists():
        if time.monotonic() > deadline:
            sys.exit("the start signal never came")
        time.sleep(0.001)
    blob = store.put_file(source)
    print(blob.sha256, blob.size)
    """
)


@pytest.mark.slow
def test_two_processes_storing_the_same_artifact_at_once(tmp_path: Path) -> None:
    source = _write_file(tmp_path / "shared.bin", 20 * MiB, seed=5)
    expected = _sha_of_file(source)

    for attempt in range(3):
        root = tmp_path / f"store-{attempt}"
        go = tmp_path / f"go-{attempt}"
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", _RACER, str(root), str(source), str(go)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        time.sleep(0.5)  # let both interpreters start and wait on the signal
        go.touch()
        outputs = [racer.communicate(timeout=60) for racer in racers]

        for racer, (out, err) in zip(racers, outputs, strict=True):
            assert racer.returncode == 0, err
            assert out.split() == [expected, str(20 * MiB)]
        store = ArtifactStore(str(root))
        objects = [p for p in (root / "objects").rglob("*") if p.is_file()]
        assert objects == [Path(store.object_path(expected))]
        assert list((root / "tmp").iterdir()) == []
        store.verify(expected)


def test_an_unwritable_location_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("not a folder")
    location = blocker / "artifacts"

    with pytest.raises(ConfigError, match=str(location)):
        ArtifactStore(str(location)).ensure()


def test_an_unknown_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nosuchproto"):
        ArtifactStore("nosuchproto://bucket/prefix")


def test_a_moved_file_is_renamed_into_place_once(
    local_store: ArtifactStore, tmp_path: Path
) -> None:
    tmp = Path(local_store.root) / "tmp" / "finished.parquet"
    tmp.write_bytes(b"parquet bytes")
    blob = local_store.put_file(tmp, move=True)
    assert not tmp.exists()
    assert local_store.read_bytes(blob.sha256) == b"parquet bytes"
    again = tmp_path / "same.bin"
    again.write_bytes(b"parquet bytes")
    assert local_store.put_file(again, move=True) == blob  # already stored: left alone


@pytest.mark.parametrize("size", [0, 1, CHUNK * 3 + 17])
def test_a_file_stored_in_one_pass_is_whole_and_named_by_its_hash(
    backend: Backend, tmp_path: Path, size: int
) -> None:
    """put_file(once=True) (batch inputs): on a local store the kernel copies the file and
    the copy is hashed; on S3 it streams. Either way the name is the content's sha256."""
    data = os.urandom(size)
    source = tmp_path / "input.parquet"
    source.write_bytes(data)
    blob = backend.store.put_file(source, once=True)
    assert blob == StoredBlob(hashlib.sha256(data).hexdigest(), size)
    assert backend.store.read_bytes(blob.sha256) == data
    assert backend.store.put_file(source, once=True) == blob


def test_a_kernel_copy_that_stops_midway_is_finished_through_a_buffer(
    local_store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """copy_file_range refuses some pairs of files (EXDEV on older kernels); the copy
    goes on from where it stopped, and nothing is stored twice or cut short. (The copy
    is hashed through memory-map windows: pages here, so that it takes many.)"""
    data = os.urandom(CHUNK * 2 + 5)
    source = tmp_path / "input.parquet"
    source.write_bytes(data)
    real = os.copy_file_range
    calls = []

    def once_then_refuse(src: int, dst: int, count: int, *args: int) -> int:
        calls.append(count)
        if len(calls) > 1:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(src, dst, CHUNK, *args)

    monkeypatch.setattr(os, "copy_file_range", once_then_refuse)
    monkeypatch.setattr(store_module, "_WINDOW", mmap.ALLOCATIONGRANULARITY)
    blob = local_store.put_file(source, once=True)
    assert len(calls) == 2
    assert local_store.read_bytes(blob.sha256) == data
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
