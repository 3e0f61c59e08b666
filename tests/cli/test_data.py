"""``loopml data ingest|validate|list|versions|show|diff|profile|contract``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import loopml
from loopml.data import load_contract
from tests.cli import assert_clean_failure, invoke, table_line
from tests.data.samples import CONTRACT, churn, dirty


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty workspace."""
    folder = tmp_path / "home"
    loopml.Workspace.open(folder).close()
    return folder


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A clean CSV, a dirty CSV and the contract, as files a user would pass."""
    paths = {
        "clean": tmp_path / "churn.csv",
        "dirty": tmp_path / "dirty.csv",
        "contract": tmp_path / "contract.yaml",
    }
    churn().to_csv(paths["clean"], index=False)
    dirty().to_csv(paths["dirty"], index=False)
    paths["contract"].write_text(CONTRACT)
    return paths


def cells(line: str) -> list[str]:
    """The cells of one table line, stripped."""
    return [cell.strip() for cell in line.strip().strip("│").split("│")]


def ingest(home: Path, source: Path, *options: str, name: str = "churn") -> str:
    result = invoke(home, "data", "ingest", str(source), "--name", name, *options)
    assert result.exit_code == 0, result.output
    return result.output


# -- ingest ----------------------------------------------------------------------------
def test_ingest_prints_the_new_reference_its_shape_and_hash(
    home: Path, files: dict[str, Path]
) -> None:
    output = ingest(home, files["clean"])

    assert "Stored churn@1" in output
    assert "100 rows, 4 columns" in output
    with loopml.Workspace.open(home) as ws:
        assert ws.data.version("churn").content_hash[:12] in output
    assert str(files["clean"]) in output


def test_ingesting_the_same_file_again_says_it_is_the_existing_version(
    home: Path, files: dict[str, Path]
) -> None:
    ingest(home, files["clean"])

    again = ingest(home, files["clean"])

    assert "churn@1 already holds these rows" in again
    assert "Stored" not in again
    with loopml.Workspace.open(home) as ws:
        assert len(ws.data.versions("churn")) == 1


def test_a_changed_file_becomes_the_next_version(home: Path, files: dict[str, Path]) -> None:
    ingest(home, files["clean"])
    churn(50, start=1000).to_csv(files["clean"], index=False)

    assert "Stored churn@2" in ingest(home, files["clean"])


def test_quarantine_shows_the_quarantine_reference_and_the_report(
    home: Path, files: dict[str, Path]
) -> None:
    output = ingest(
        home, files["dirty"], "--contract", str(files["contract"]), "--on-invalid", "quarantine"
    )

    assert "Stored churn@1" in output and "7 rows, 4 columns" in output
    assert "churn.quarantine@1" in table_line(output, "rows set aside")
    assert "3 rows set aside" in output
    assert "7 of 10 rows valid (3 invalid)" in output
    assert "250" in table_line(output, "250")  # the example value of the failing age check
    assert "contract" in output and "v1, on invalid rows: quarantine" in output


def test_a_failing_contract_exits_1_names_the_check_and_stores_no_version(
    home: Path, files: dict[str, Path]
) -> None:
    result = invoke(
        home, "data", "ingest", str(files["dirty"]), "--name", "churn",
        "--contract", str(files["contract"]),
    )  # fmt: skip

    assert_clean_failure(result, "Validation failed", "nothing was stored")
    age_line = table_line(result.output, "250")
    assert "age" in age_line and "1" in age_line
    assert "gold" in table_line(result.output, "'gold'")
    assert result.output.count("250") == 1  # the report is printed once, as the table
    assert_clean_failure(invoke(home, "data", "versions", "churn"), "No dataset version 'churn'")
    assert "churn" not in invoke(home, "data", "list").output


def test_warn_stores_every_row_and_shows_the_failed_report(
    home: Path, files: dict[str, Path]
) -> None:
    output = ingest(
        home, files["dirty"], "--contract", str(files["contract"]), "--on-invalid", "warn"
    )

    assert "Stored churn@1" in output and "10 rows" in output
    assert "Validation failed" in output
    assert "quarantine" not in table_line(output, "contract").replace("on invalid rows: warn", "")


# -- validate ----------------------------------------------------------------------------
def test_validate_exits_0_on_clean_data_and_1_on_dirty_data(
    home: Path, files: dict[str, Path]
) -> None:
    clean = invoke(home, "data", "validate", str(files["clean"]), "-c", str(files["contract"]))
    dirty_result = invoke(
        home, "data", "validate", str(files["dirty"]), "-c", str(files["contract"])
    )

    assert clean.exit_code == 0, clean.output
    assert "Validation passed: 100 of 100 rows valid" in clean.output
    assert dirty_result.exit_code == 1, dirty_result.output
    assert "Validation failed" in dirty_result.output
    assert "Traceback" not in dirty_result.output
    with loopml.Workspace.open(home) as ws:
        assert ws.data.datasets() == []  # validation stores nothing


def test_validate_as_json_and_against_a_stored_contract(home: Path, files: dict[str, Path]) -> None:
    ingest(home, files["clean"], "--contract", str(files["contract"]))

    result = invoke(home, "data", "validate", str(files["dirty"]), "--name", "churn",
                    "--format", "json")  # fmt: skip

    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["rows_in"] == 10 and report["rows_valid"] == 7


def test_validate_needs_exactly_one_contract(home: Path, files: dict[str, Path]) -> None:
    result = invoke(home, "data", "validate", str(files["clean"]))

    assert_clean_failure(result, "--contract FILE or --name NAME")


# -- list, versions, show -------------------------------------------------------------------
def test_versions_lists_each_version_with_rows_hash_contract_and_quarantine(
    home: Path, files: dict[str, Path]
) -> None:
    ingest(home, files["clean"], "--contract", str(files["contract"]))
    ingest(home, files["dirty"], "--on-invalid", "quarantine")  # the stored contract applies
    with loopml.Workspace.open(home) as ws:
        first, second = ws.data.versions("churn")

    result = invoke(home, "data", "versions", "churn")

    assert result.exit_code == 0, result.output
    one = table_line(result.output, first.content_hash[:12])
    two = table_line(result.output, second.content_hash[:12])
    assert cells(one)[:5] == ["1", "100", "4", first.content_hash[:12], "v1 fail"]
    assert cells(two)[:5] == ["2", "7", "4", second.content_hash[:12], "v1 quarantine"]
    assert cells(one)[-1] == "" and cells(two)[-1] == "3"
    assert "churn.csv" in one and "dirty.csv" in two


def test_versions_as_json(home: Path, files: dict[str, Path]) -> None:
    ingest(home, files["clean"])

    records = json.loads(invoke(home, "data", "versions", "churn", "--format", "json").output)

    assert [(r["ref"], r["rows"], r["columns"]) for r in records] == [("churn@1", 100, 4)]


def test_list_shows_every_dataset_with_its_version_count(
    home: Path, files: dict[str, Path]
) -> None:
    ingest(home, files["clean"])
    churn(20, start=500).to_csv(files["clean"], index=False)
    ingest(home, files["clean"])
    ingest(home, files["clean"], name="other")

    result = invoke(home, "data", "list")

    assert result.exit_code == 0, result.output
    assert cells(table_line(result.output, "churn@2"))[:4] == ["churn", "2", "churn@2", "20"]
    assert cells(table_line(result.output, "other@1"))[:4] == ["other", "1", "other@1", "20"]
    records = json.loads(invoke(home, "data", "list", "--format", "json").output)
    assert {r["name"]: r["versions"] for r in records} == {"churn": 2, "other": 1}


def test_list_on_an_empty_workspace_says_how_to_start(home: Path) -> None:
    result = invoke(home, "data", "list")

    assert result.exit_code == 0
    assert "loopml data ingest" in result.output


def test_show_prints_metadata_schema_report_runs_and_first_rows(
    home: Path, files: dict[str, Path]
) -> None:
    ingest(home, files["clean"], "--contract", str(files["contract"]))
    with loopml.Workspace.open(home) as ws, ws.start_run(run_name="trainer") as run:
        ws.data.log_input(run.id, "churn@1", role="train")

    result = invoke(home, "data", "show", "churn@1", "--rows", "3")

    assert result.exit_code == 0, result.output
    output = result.output
    assert "churn@1" in output and "content hash" in output
    assert "│ customer_id │ int64 " in output
    assert "│ spend       │ double " in output
    assert "Validation passed" in output
    assert "train" in table_line(output, run.id[:8]) and "trainer" in output
    assert "First 3 of 100 rows" in output
    frame = churn()
    for row in range(3):
        line = cells(table_line(output, f"│ {row} │"))
        assert line[1:4] == [str(frame["customer_id"][row]), str(frame["age"][row]),
                             frame["plan"][row]]  # fmt: skip
    assert "│ 3 │" not in output  # the fourth row is not shown


def test_show_resolves_a_hash_prefix_and_a_bare_name(home: Path, files: dict[str, Path]) -> None:
    ingest(home, files["clean"])
    with loopml.Workspace.open(home) as ws:
        prefix = ws.data.version("churn").content_hash[:10]

    by_hash = invoke(home, "data", "show", f"churn@{prefix}", "--rows", "0")
    by_name = invoke(home, "data", "show", "churn", "--rows", "0")

    assert by_hash.exit_code == 0 and by_name.exit_code == 0, by_hash.output
    assert "First" not in by_hash.output
    assert "No run has logged this version" in by_name.output


# -- diff and profile ------------------------------------------------------------------------
def test_diff_shows_rows_by_key_schema_changes_and_column_stats(
    home: Path, tmp_path: Path, files: dict[str, Path]
) -> None:
    old = churn(100)
    new = pd.concat([old.iloc[10:].copy(), churn(5, start=500)])
    new.loc[new["customer_id"] == 20, "age"] = 99
    old.to_csv(tmp_path / "old.csv", index=False)
    new.assign(region="eu").to_csv(tmp_path / "new.csv", index=False)
    ingest(home, tmp_path / "old.csv")
    ingest(home, tmp_path / "new.csv")

    result = invoke(home, "data", "diff", "churn", "1", "2", "--key", "customer_id")

    assert result.exit_code == 0, result.output
    output = result.output
    assert "churn@1 → churn@2" in output
    assert "100 → 95 (-5)" in output
    assert "5 added, 10 removed, 1 changed" in output
    assert "+ column region" in output
    ids = cells(table_line(output, "│ customer_id │"))
    assert (ids[5], ids[6]) == ("0 → 10", "99 → 504")  # min and max moved
    assert cells(table_line(output, "│ region "))[1] == "none → 0"  # nulls % of a new column


def test_diff_without_a_key_says_how_to_count_changed_rows(
    home: Path, files: dict[str, Path]
) -> None:
    ingest(home, files["clean"])
    churn(30, start=50).to_csv(files["clean"], index=False)
    ingest(home, files["clean"])
    with loopml.Workspace.open(home) as ws:
        prefix = ws.data.version("churn@1").content_hash[:8]

    result = invoke(home, "data", "diff", "churn", prefix, "churn@2")

    assert result.exit_code == 0, result.output
    assert "--key COLUMN" in result.output
    assert "schema   unchanged" in result.output


def test_profile_prints_a_column_table_and_writes_html(
    home: Path, tmp_path: Path, files: dict[str, Path]
) -> None:
    ingest(home, files["clean"])
    page = tmp_path / "reports" / "profile.html"

    result = invoke(home, "data", "profile", "churn", "--out", str(page))

    assert result.exit_code == 0, result.output
    assert "Profile of churn@1" in result.output
    for column in ["customer_id", "age", "plan", "spend"]:
        table_line(result.output, f" {column} ")
    assert str(page) in result.output
    assert "Plotly" in page.read_text(encoding="utf-8")


# -- contracts -------------------------------------------------------------------------------
def test_contract_infer_prints_yaml_that_loads_back(home: Path, files: dict[str, Path]) -> None:
    result = invoke(home, "data", "contract", "infer", str(files["clean"]))

    assert result.exit_code == 0, result.output
    contract = load_contract(result.output)
    assert contract.column_names == ["customer_id", "age", "plan", "spend"]


def test_contract_infer_writes_a_file_and_will_not_overwrite_it_unasked(
    home: Path, tmp_path: Path, files: dict[str, Path]
) -> None:
    target = tmp_path / "inferred.yaml"

    written = invoke(home, "data", "contract", "infer", str(files["clean"]), "-o", str(target))
    again = invoke(home, "data", "contract", "infer", str(files["clean"]), "-o", str(target))
    forced = invoke(home, "data", "contract", "infer", str(files["clean"]), "-o", str(target),
                    "--force")  # fmt: skip

    assert written.exit_code == 0, written.output
    assert "4 columns" in written.output and str(target) in written.output
    assert len(load_contract(target).columns) == 4
    assert_clean_failure(again, "--force")
    assert forced.exit_code == 0, forced.output


def test_contract_show_prints_the_stored_contract(home: Path, files: dict[str, Path]) -> None:
    ingest(home, files["clean"], "--contract", str(files["contract"]))

    result = invoke(home, "data", "contract", "show", "churn")
    missing = invoke(home, "data", "contract", "show", "churn", "--version", "9")

    assert result.exit_code == 0, result.output
    assert load_contract(result.output) == load_contract(files["contract"])
    assert_clean_failure(missing, "No contract version 9")


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["data", "ingest", "nowhere.csv", "--name", "churn"], "does not exist"),
        (["data", "ingest", "{clean}", "--name", "bad name/"], "Dataset names"),
        (["data", "ingest", "{clean}", "--name", "churn", "-c", "missing.yaml"], "missing.yaml"),
        (["data", "ingest", "{clean}", "--name", "churn", "-c", "{bad}"], "line 3"),
        (["data", "validate", "{clean}", "-c", "{bad}"], "line 3"),
        (["data", "ingest", "{narrow}", "--name", "churn", "-c", "{contract}"], "'spend'"),
        (["data", "versions", "nope"], "known datasets"),
        (["data", "show", "nope@1"], "No dataset version"),
        (["data", "show", "churn@latest!"], "name@<version number>"),
        (["data", "profile", "nope"], "No dataset version"),
        (["data", "contract", "infer", "nowhere.csv"], "does not exist"),
        (["data", "contract", "show", "nope"], "No contract"),
    ],
)
def test_bad_input_exits_1_with_a_clean_message(
    home: Path, tmp_path: Path, files: dict[str, Path], arguments: list[str], message: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns:\n  age: {type: int}\n  plan: {type: colour}\n")
    narrow = tmp_path / "narrow.csv"
    churn().drop(columns=["spend"]).to_csv(narrow, index=False)
    arguments = [
        a.format(clean=files["clean"], bad=bad, narrow=narrow, contract=files["contract"])
        for a in arguments
    ]

    assert_clean_failure(invoke(home, *arguments), message)


def test_a_missing_workspace_is_an_error_not_a_new_one(tmp_path: Path) -> None:
    result = invoke(tmp_path / "nowhere", "data", "list")

    assert_clean_failure(result)
    assert not (tmp_path / "nowhere").exists()
