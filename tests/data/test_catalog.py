"""Reading dataset versions back: ``ws.data.batches``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import loopml


def test_batches_stream_a_version_in_order_with_only_the_columns_asked(
    sqlite_workspace: loopml.Workspace,
) -> None:
    frame = pd.DataFrame({"id": np.arange(1000), "x": np.arange(1000) / 2, "city": ["a"] * 1000})
    version = sqlite_workspace.data.ingest(frame, name="points")
    batches = list(sqlite_workspace.data.batches(version, 300, columns=["x", "id"]))
    assert [b.num_rows for b in batches] == [300, 300, 300, 100]
    table = pa.Table.from_batches(batches)
    assert table.column_names == ["x", "id"]
    assert table.column("id").to_pylist() == list(range(1000))
    whole = pa.Table.from_batches(list(sqlite_workspace.data.batches("points@1")))
    assert whole.column_names == ["id", "x", "city"]


_READ = textwrap.dedent(
    """
    import sys, loopml

    def high_water_kib():
        with open("/proc/self/status") as status:
            return next(int(l.split()[1]) for l in status if l.startswith("VmHWM"))

    ws = loopml.Workspace.open(sys.argv[1])
    version = ws.data.version("big")
    next(iter(ws.data.batches("warm-up")))  # imports count as base
    base = high_water_kib()
    rows = sum(batch.num_rows for batch in ws.data.batches(version, 100_000))
    print(rows, base, high_water_kib())
    """
)


@pytest.mark.slow
def test_reading_a_big_version_in_batches_holds_about_a_batch(tmp_path: Path) -> None:
    """pyarrow pre-buffers whole row groups by default (the whole file, here); batches
    are read page by page instead."""
    rows = 3_000_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.random(rows) for i in range(8)})
    with loopml.Workspace.open(tmp_path / "home") as ws:
        ws.data.ingest(pd.DataFrame({"warm": [1.0]}), name="warm-up")
        ws.data.ingest(frame, name="big")
    size_mb = frame.memory_usage().sum() / 2**20
    del frame
    result = subprocess.run(
        [sys.executable, "-c", _READ, str(tmp_path / "home")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    count, base, peak = map(int, result.stdout.split())
    grown_mb = (peak - base) / 1024
    assert count == rows
    # Pre-buffered it grew by more than the data (216 MiB for 183); streamed by 30-65.
    assert grown_mb < size_mb / 2, f"grew {grown_mb:.0f} MiB reading {size_mb:.0f} MiB of data"
