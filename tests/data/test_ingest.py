"""Ingestion from every source, versions, policies, lineage, splits, diffs and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import loopml
from loopml.data import DataValidationError
from tests.data.samples import CONTRACT, churn, dirty


def objects(ws: loopml.Workspace) -> int:
    return sum(1 for p in Path(ws.artifacts.root, "objects").rglob("*") if p.is_file())


def leftovers(ws: loopml.Workspace) -> list[Path]:
    return [p for p in (ws.settings.home / "tmp").rglob("*") if p.is_file()]


# -- sources -----------------------------------------------------------------------
def test_the_same_rows_from_every_file_format_are_one_version(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    frame = churn()
    frame.to_csv(tmp_path / "c.csv", index=False)
    frame.to_parquet(tmp_path / "c.parquet", index=False)
    frame.to_json(tmp_path / "c.jsonl", orient="records", lines=True, double_precision=15)
    (tmp_path / "parts").mkdir()
    frame.iloc[:60].to_parquet(tmp_path / "parts" / "a.parquet", index=False)
    frame.iloc[60:].to_parquet(tmp_path / "parts" / "b.parquet", index=False)
    frame.iloc[:30].to_csv(tmp_path / "g1.csv", index=False)
    frame.iloc[30:].to_csv(tmp_path / "g2.csv", index=False)
    ws = sqlite_workspace
    first = ws.data.ingest(tmp_path / "c.csv", name="churn")
    assert (first.version, first.rows, first.columns) == (1, 100, 4)
    for source in [
        tmp_path / "c.parquet",
        tmp_path / "c.jsonl",
        tmp_path / "parts",
        str(tmp_path / "g*.csv"),
        frame,
        pa.Table.from_pandas(frame, preserve_index=False),
    ]:
        again = ws.data.ingest(source, name="churn")
        assert (again.version, again.content_hash) == (1, first.content_hash), source
    assert len(ws.data.versions("churn")) == 1
    pd.testing.assert_frame_equal(ws.data.get("churn"), frame)


def test_identical_content_stores_nothing_new(sqlite_workspace: loopml.Workspace) -> None:
    ws = sqlite_workspace
    ws.data.ingest(churn(), name="churn")
    stored = objects(ws)
    again = ws.data.ingest(churn(), name="churn")
    assert again.version == 1 and objects(ws) == stored


def test_versions_count_up_and_every_reference_reads_them(workspace: loopml.Workspace) -> None:
    ws = workspace
    one = ws.data.ingest(churn(50), name="churn")
    two = ws.data.ingest(churn(80, start=1000), name="churn")
    assert (one.version, two.version) == (1, 2)
    assert len(ws.data.get("churn")) == 80
    assert len(ws.data.get("churn", version=1)) == 50
    assert len(ws.data.get("churn@1")) == 50
    assert ws.data.get(f"churn@{one.content_hash[:10]}")["customer_id"].iloc[0] == 0
    assert ws.data.get("churn@2", format="arrow").num_rows == 80
    relation = ws.data.get("churn@2", format="duckdb", columns=["age"])
    assert relation.aggregate("count(*)").fetchall()[0][0] == 80
    assert ws.data.version("churn").ref == "churn@2"
    assert two.schema[0] == {"name": "customer_id", "type": "int64"}
    assert two.created_by and two.source.startswith("pandas DataFrame")


def test_unknown_versions_and_bad_references(sqlite_workspace: loopml.Workspace) -> None:
    ws = sqlite_workspace
    ws.data.ingest(churn(), name="churn")
    with pytest.raises(loopml.NotFoundError, match="data versions churn"):
        ws.data.get("churn@7")
    with pytest.raises(loopml.NotFoundError, match="known datasets: churn"):
        ws.data.get("nope")
    with pytest.raises(loopml.ValidationError, match="name@<version number>"):
        ws.data.get("churn@latest!")
    with pytest.raises(loopml.ValidationError, match="Dataset names"):
        ws.data.ingest(churn(), name="bad name/")


@pytest.mark.postgres
def test_sql_query_on_postgres(
    sqlite_workspace: loopml.Workspace, postgres_schema_url: str
) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(postgres_schema_url)
    churn(300).to_sql("customers", engine, index=False)
    engine.dispose()
    version = sqlite_workspace.data.ingest(
        "SELECT customer_id, age, plan, spend FROM customers WHERE age >= 18",
        name="churn",
        sql_url=postgres_schema_url,
    )
    assert version.rows == 300
    assert "SQL on" in version.source and "postgres" not in version.source.split("@")[0]
    pd.testing.assert_frame_equal(sqlite_workspace.data.get("churn"), churn(300))


def test_an_unreachable_sql_source_is_reported(sqlite_workspace: loopml.Workspace) -> None:
    with pytest.raises(loopml.ValidationError, match="SQL source failed"):
        sqlite_workspace.data.ingest(
            "SELECT 1", name="x", sql_url="postgresql+psycopg://nobody@127.0.0.1:1/none"
        )
    assert sqlite_workspace.data.datasets() == []


# -- contracts and policies ----------------------------------------------------------
def test_fail_policy_stores_nothing_and_reports_every_problem(
    sqlite_workspace: loopml.Workspace,
) -> None:
    ws = sqlite_workspace
    with pytest.raises(DataValidationError) as caught:
        ws.data.ingest(dirty(), name="churn", contract=CONTRACT)
    report = caught.value.report
    failing = {c.check: c.failures for c in report.checks if c.failures}
    assert sum(failing.values()) >= 3
    assert report.rows_in == 10 and report.rows_valid == 7
    assert any(250 in c.examples for c in report.checks)
    assert ws.data.datasets() == [] or all(n == 0 for _, n, _ in ws.data.datasets())
    assert leftovers(ws) == []


def test_quarantine_keeps_valid_rows_and_sets_the_rest_aside(
    sqlite_workspace: loopml.Workspace,
) -> None:
    ws = sqlite_workspace
    version = ws.data.ingest(dirty(), name="churn", contract=CONTRACT, on_invalid="quarantine")
    report = version.report
    assert report is not None
    assert report.rows_in == report.rows_valid + report.rows_invalid == 10
    assert version.rows == 7
    assert version.quarantine is not None and version.quarantine.rows == 3
    quarantined = ws.data.get(version.quarantine.ref)
    assert set(quarantined["customer_id"].astype(int)) == {2, 5, 3}
    reasons = " ".join(quarantined["_loopml_reason"])
    assert "age" in reasons and "plan" in reasons
    assert version.contract_version == 1


def test_warn_policy_stores_every_row_and_the_problems(sqlite_workspace: loopml.Workspace) -> None:
    version = sqlite_workspace.data.ingest(
        dirty(), name="churn", contract=CONTRACT, on_invalid="warn"
    )
    assert version.rows == 10
    assert version.report is not None and not version.report.passed


def test_the_stored_contract_is_used_next_time(sqlite_workspace: loopml.Workspace) -> None:
    ws = sqlite_workspace
    ws.data.ingest(churn(), name="churn", contract=CONTRACT)
    with pytest.raises(DataValidationError):
        ws.data.ingest(dirty(), name="churn")
    assert ws.data.ingest(dirty(), name="churn", contract=False).rows == 10
    assert ws.data.contract("churn").key == ["customer_id"]


def test_a_column_missing_from_or_added_to_the_contract(sqlite_workspace: loopml.Workspace) -> None:
    ws = sqlite_workspace
    with pytest.raises(DataValidationError, match="spend"):
        ws.data.ingest(churn().drop(columns=["spend"]), name="a", contract=CONTRACT,
                       on_invalid="quarantine")  # fmt: skip
    with pytest.raises(DataValidationError, match="extra"):
        ws.data.ingest(churn().assign(extra=1), name="b", contract=CONTRACT, on_invalid="warn")
    assert all(n == 0 for _, n, _ in ws.data.datasets())


def test_mixed_types_in_a_csv_column_are_quarantined_with_a_contract(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    frame = churn(200).astype({"age": object})
    frame.loc[150, "age"] = "unknown"
    frame.to_csv(tmp_path / "mixed.csv", index=False)
    version = sqlite_workspace.data.ingest(
        tmp_path / "mixed.csv", name="churn", contract=CONTRACT, on_invalid="quarantine"
    )
    assert version.rows == 199 and version.quarantine is not None
    assert sqlite_workspace.data.get("churn")["age"].dtype == np.int64


def test_an_invalid_contract_file_names_the_line(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "contract.yaml"
    path.write_text("columns:\n  age: {type: int}\n  plan: {type: colour}\n")
    with pytest.raises(loopml.ValidationError, match="line 3"):
        sqlite_workspace.data.ingest(churn(), name="churn", contract=path)


# -- bad files -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "empty"),
        ("header.csv", b"a,b\n", "no rows"),
        ("ragged.csv", b"a,b\n1,2\n3,4,5\n", "number of fields"),
        ("latin1.csv", "a,b\n1,caf\xe9\n".encode("latin-1"), "UTF-8"),
        ("dupes.csv", b"a,a\n1,2\n", "duplicate column names"),
        ("data.xlsx", b"PK\x03\x04", "Cannot tell the format"),
    ],
)
def test_bad_files_get_clear_errors_and_store_nothing(
    sqlite_workspace: loopml.Workspace, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(loopml.ValidationError, match=message):
        sqlite_workspace.data.ingest(path, name="bad")
    assert all(n == 0 for _, n, _ in sqlite_workspace.data.datasets())
    assert leftovers(sqlite_workspace) == []


def test_a_missing_file_is_not_found(sqlite_workspace: loopml.Workspace, tmp_path: Path) -> None:
    with pytest.raises(loopml.NotFoundError, match="does not exist"):
        sqlite_workspace.data.ingest(tmp_path / "nope.csv", name="x")
    with pytest.raises(loopml.NotFoundError, match="No file matches"):
        sqlite_workspace.data.ingest(str(tmp_path / "nope*.csv"), name="x")


def test_a_failure_in_the_middle_of_a_large_file_leaves_no_version(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "big.csv"
    churn(300_000).to_csv(path, index=False)
    with path.open("a") as handle:
        handle.write("1,2,basic,3.0,surplus\n")  # a broken row near the end
    before = objects(sqlite_workspace)
    with pytest.raises(loopml.ValidationError, match="number of fields"):
        sqlite_workspace.data.ingest(path, name="big")
    assert objects(sqlite_workspace) == before
    assert all(n == 0 for _, n, _ in sqlite_workspace.data.datasets())
    assert leftovers(sqlite_workspace) == []


_RSS = textwrap.dedent(
    """
    import sys, loopml
    import pandas as pd

    def high_water_kib():  # VmHWM, unlike ru_maxrss, does not count the parent before exec
        with open("/proc/self/status") as status:
            return next(int(l.split()[1]) for l in status if l.startswith("VmHWM"))

    ws = loopml.Workspace.open(sys.argv[1])
    ws.data.ingest(pd.DataFrame({"warm": [1]}), name="warm-up")  # imports count as base
    base = high_water_kib()
    version = ws.data.ingest(sys.argv[2], name="big")
    print(version.rows, base, high_water_kib())
    """
)


@pytest.mark.slow
def test_a_csv_much_larger_than_the_memory_it_uses(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    rows = 4_000_000
    rng = np.random.default_rng(0)
    from pyarrow import csv

    table = pa.table({**{f"x{i}": rng.random(rows) for i in range(8)}, "id": np.arange(rows)})
    csv.write_csv(table, path)
    size_mb = path.stat().st_size / 2**20
    del table
    result = subprocess.run(
        [sys.executable, "-c", _RSS, str(tmp_path / "home"), str(path)],
        capture_output=True, text=True, check=True, env={**os.environ},
    )  # fmt: skip
    count, base, peak = map(int, result.stdout.split())
    grown_mb = (peak - base) / 1024
    assert count == rows
    assert size_mb > 500
    assert grown_mb < size_mb / 3, f"grew {grown_mb:.0f} MiB for a {size_mb:.0f} MiB file"


# -- lineage, splits, diffs ----------------------------------------------------------
def test_runs_record_their_inputs_and_versions_know_their_runs(
    workspace: loopml.Workspace,
) -> None:
    ws = workspace
    version = ws.data.ingest(churn(), name="churn")
    with ws.start_run(experiment="train") as run:
        run.log_input("churn@1", role="train")
        run.log_input(version, role="valid")
    assert {(v.ref, role) for v, role in run.inputs()} == {
        ("churn@1", "train"),
        ("churn@1", "valid"),
    }
    assert set(ws.data.runs_using("churn@1")) == {(run.id, "train"), (run.id, "valid")}
    ws.delete_run(run.id)
    assert ws.data.runs_using("churn@1") == []


def test_a_version_made_by_a_run_remembers_it(sqlite_workspace: loopml.Workspace) -> None:
    with sqlite_workspace.start_run() as run:
        version = sqlite_workspace.data.ingest(churn(), name="features", run=run)
    assert version.run_id == run.id


@pytest.mark.parametrize("by", ["random", "stratified", "time", "group"])
def test_splits_are_reproducible_and_stored(sqlite_workspace: loopml.Workspace, by: str) -> None:
    ws = sqlite_workspace
    frame = churn(1000)
    frame["when"] = pd.date_range("2026-01-01", periods=1000, freq="h")
    frame["household"] = frame["customer_id"] // 4
    ws.data.ingest(frame, name="churn")
    column = {"random": None, "stratified": "plan", "time": "when", "group": "household"}[by]
    first = ws.data.split("churn@1", by=by, fractions={"train": 0.7, "test": 0.3}, seed=7,
                          column=column)  # fmt: skip
    second = ws.data.split("churn@1", by=by, fractions={"train": 0.7, "test": 0.3}, seed=7,
                           column=column)  # fmt: skip
    pd.testing.assert_frame_equal(first["train"], second["train"])
    assert len(first["train"]) + len(first["test"]) == 1000
    assert abs(len(first["train"]) - 700) <= 10
    if by == "stratified":
        shares = first["train"]["plan"].value_counts(normalize=True)
        overall = frame["plan"].value_counts(normalize=True)
        assert (shares - overall).abs().max() < 0.01
    if by == "time":
        assert first["train"]["when"].max() < first["test"]["when"].min()
    if by == "group":
        assert not set(first["train"]["household"]) & set(first["test"]["household"])
    other = ws.data.split("churn@1", by=by, fractions={"train": 0.7, "test": 0.3}, seed=8,
                          column=column)  # fmt: skip
    if by in ("random", "stratified", "group"):
        assert not other["train"]["customer_id"].equals(first["train"]["customer_id"])


def test_bad_split_definitions(sqlite_workspace: loopml.Workspace) -> None:
    sqlite_workspace.data.ingest(churn(), name="churn")
    with pytest.raises(loopml.ValidationError, match="add up to 1"):
        sqlite_workspace.data.split("churn", fractions={"train": 0.7, "test": 0.2})
    with pytest.raises(loopml.ValidationError, match="needs column"):
        sqlite_workspace.data.split("churn", by="stratified")
    with pytest.raises(loopml.ValidationError, match="not in the data"):
        sqlite_workspace.data.split("churn", by="time", column="nope")


def test_diff_reports_schema_rows_and_distributions(sqlite_workspace: loopml.Workspace) -> None:
    ws = sqlite_workspace
    old = churn(100)
    new = churn(100).iloc[10:].copy()
    new = pd.concat([new, churn(5, start=500)])
    new.loc[new["customer_id"] == 20, "age"] = 99
    new["region"] = "eu"
    ws.data.ingest(old, name="churn", contract=CONTRACT)
    ws.data.ingest(new.drop(columns=["region"]), name="churn")
    ws.data.ingest(new, name="churn", contract=False)
    change = ws.data.diff("churn", 1, 2)
    assert (change.rows_old, change.rows_new) == (100, 95)
    assert (change.rows_added, change.rows_removed) == (5, 10)
    assert change.rows_changed == 1
    schema_change = ws.data.diff("churn", 2, 3, key=["customer_id"])
    assert schema_change.columns_added == ["region"]
    assert set(change.columns["column"]) == {"customer_id", "age", "plan", "spend"}
    assert "5 added, 10 removed, 1 changed" in str(change)


def test_gc_keeps_dataset_files(sqlite_workspace: loopml.Workspace) -> None:
    ws = sqlite_workspace
    version = ws.data.ingest(churn(), name="churn")
    ws.data.split("churn", seed=1)
    ws.gc(grace_seconds=0)
    assert len(ws.data.get(version.ref)) == 100
    assert len(ws.data.split("churn", seed=1)["train"]) == 80
    assert json.loads(json.dumps(version.schema))


def test_mixed_types_without_a_contract_are_explained(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.csv"
    churn(400_000).to_csv(path, index=False)  # several read blocks of whole numbers
    with path.open("a") as handle:
        handle.write("400000,forty,basic,1.5\n")
    with pytest.raises(loopml.ValidationError, match=r"mixed types.*contract"):
        sqlite_workspace.data.ingest(path, name="mixed")
    assert all(n == 0 for _, n, _ in sqlite_workspace.data.datasets())


def test_ingest_says_whether_it_stored_something_new(sqlite_workspace: loopml.Workspace) -> None:
    assert sqlite_workspace.data.ingest(churn(), name="churn").created
    assert not sqlite_workspace.data.ingest(churn(), name="churn").created


def test_a_refused_ingest_stores_no_contract_either(sqlite_workspace: loopml.Workspace) -> None:
    with pytest.raises(DataValidationError):
        sqlite_workspace.data.ingest(dirty(), name="churn", contract=CONTRACT)
    with pytest.raises(loopml.NotFoundError, match="No contract"):
        sqlite_workspace.data.contract("churn")


def test_stale_data_is_refused_even_under_quarantine(sqlite_workspace: loopml.Workspace) -> None:
    frame = churn(20).assign(seen=pd.Timestamp("2020-01-01"))
    contract = CONTRACT + "  freshness: {column: seen, max_age: 7d}\n"
    contract = contract.replace("columns:\n", "columns:\n  seen: {type: datetime}\n")
    with pytest.raises(DataValidationError, match="freshness"):
        sqlite_workspace.data.ingest(frame, name="churn", contract=contract,
                                     on_invalid="quarantine")  # fmt: skip
    version = sqlite_workspace.data.ingest(
        frame, name="churn", contract=contract, on_invalid="warn"
    )
    assert version.rows == 20 and not version.report.dataset_passed


# -- the ingest pipeline -------------------------------------------------------------
def test_fail_policy_finds_repeats_across_batches_once_at_the_end(
    sqlite_workspace: loopml.Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopml.data.validation import Validator

    deferred: list[str] = []
    defer = Validator.defer_unique_checks
    monkeypatch.setattr(Validator, "defer_unique_checks",
                        lambda self: (deferred.append("yes"), defer(self))[1])  # fmt: skip
    ws = sqlite_workspace
    frame = churn(300_000)  # three batches of 131,072 rows, and a bit
    frame.loc[[5, 140_000], "age"] = 200  # row 140,000 also repeats an id below
    frame.loc[[140_000, 140_001, 290_000], "customer_id"] = [7, 131_500, 7]
    before = objects(ws)
    with pytest.raises(DataValidationError, match="customer_id unique: 3 failing") as caught:
        ws.data.ingest(frame, name="churn", contract=CONTRACT)
    refused = caught.value.report
    unique = next(c for c in refused.checks if c.check == "unique")
    assert (unique.failures, unique.examples) == (3, [7, 131_500, 7])
    assert (refused.rows_in, refused.rows_valid) == (300_000, 300_000 - 4)
    assert objects(ws) == before and leftovers(ws) == []
    assert all(n == 0 for _, n, _ in ws.data.datasets())
    assert deferred == ["yes"]  # checked once at the end, not batch by batch
    # The same report as batch by batch (warn checks each batch's rows as they come).
    stored = ws.data.ingest(frame, name="churn", contract=CONTRACT, on_invalid="warn").report
    assert stored is not None and stored.to_dict() == refused.to_dict()
    assert deferred == ["yes"]


def test_the_content_hash_is_the_ipc_form_of_each_row_group(
    sqlite_workspace: loopml.Workspace,
) -> None:
    import hashlib

    from loopml.data.ingest import ROW_GROUP_ROWS, normalized

    rows = 2 * ROW_GROUP_ROWS + 1_000
    table = pa.table(
        {
            "n": np.arange(rows),
            "s": pa.array([f"s{i % 7}" for i in range(rows)]).dictionary_encode(),
            "t": pa.array(np.arange(rows) * 1_000, pa.timestamp("ns")),
        }
    )
    version = sqlite_workspace.data.ingest(table, name="hashed")
    schema = normalized(table.schema)
    expected = hashlib.sha256()
    for start in range(0, rows, ROW_GROUP_ROWS):
        stream = pa.BufferOutputStream()
        with pa.ipc.new_stream(stream, schema) as ipc:
            ipc.write_table(table.slice(start, ROW_GROUP_ROWS).cast(schema))
        expected.update(stream.getvalue())
    expected.update(schema.serialize().to_pybytes())
    assert version.content_hash == expected.hexdigest()


def test_text_is_dictionary_encoded_only_where_values_repeat(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    rows = 20_000
    table = pa.table(
        {
            "few": pa.array([["a", "b", "c"][i % 3] for i in range(rows)]),
            "all": pa.array([f"id-{i}" for i in range(rows)]),
            "n": np.arange(rows),
        }
    )
    version = sqlite_workspace.data.ingest(table, name="encoded")
    path = sqlite_workspace.artifacts.download(version.blob_sha256, tmp_path / "v.parquet")
    group = pq.ParquetFile(path).metadata.row_group(0)
    dictionary = {group.column(i).path_in_schema: group.column(i).has_dictionary_page
                  for i in range(group.num_columns)}  # fmt: skip
    assert dictionary == {"few": True, "all": False, "n": False}
    assert sqlite_workspace.data.get("encoded", format="arrow").equals(table)


def test_files_are_read_ahead_on_a_thread_that_stops_with_the_reader() -> None:
    import threading
    import time

    from loopml.data.sources import _read_ahead

    produced: list[int] = []

    def numbers(fail_at: int | None = None) -> Iterator[Any]:
        for i in range(1_000):
            if i == fail_at:
                raise loopml.ValidationError(f"bad row {i}")
            produced.append(i)
            yield i

    assert list(_read_ahead(numbers())) == list(range(1_000))
    with pytest.raises(loopml.ValidationError, match="bad row 5"):
        list(_read_ahead(numbers(fail_at=5)))
    produced.clear()
    reader = _read_ahead(numbers(), depth=2)
    assert [next(reader), next(reader)] == [0, 1]
    reader.close()  # the consumer stops early: so does the thread
    time.sleep(0.2)
    assert len(produced) <= 5
    assert not any(t.name == "loopml-read-ahead" for t in threading.enumerate())
