"""``loopml runs list|show|compare|delete|restore`` against a workspace filled through Python."""

from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

import loopml
from tests.cli import assert_clean_failure, invoke, table_line


@dataclass
class Filled:
    """A workspace folder and the ids of the runs logged into it."""

    home: Path
    ids: dict[str, str]


@pytest.fixture
def filled(tmp_path: Path) -> Filled:
    """Three finished runs in 'churn' (one with a loss history), one failed run in 'other'."""
    home = tmp_path / "home"
    ids = {}
    with loopml.Workspace.open(home) as ws:
        for name, model, depth, auc in [
            ("rf-shallow", "rf", 3, 0.81),
            ("rf-deep", "rf", 12, 0.86),
            ("logreg", "lr", None, 0.78),
        ]:
            with ws.start_run(experiment="churn", run_name=name, tags={"team": "growth"}) as run:
                run.log_params({"model": model, "seed": 7})
                if depth is not None:
                    run.log_param("max_depth", depth)
                run.log_metrics({"auc": auc, "loss": 1 - auc})
                for step, value in enumerate([0.9, 0.6, 0.4, 0.3]):
                    run.log_metric("train_loss", value, step=step)
                run.log_text("hello " * 1000, "notes/readme.txt")
            ids[name] = run.id
        with (
            pytest.raises(RuntimeError),
            ws.start_run(experiment="other", run_name="broken") as run,
        ):
            run.log_param("model", "rf")
            raise RuntimeError("CUDA out of memory while loading batch 3")
        ids["broken"] = run.id
    return Filled(home, ids)


# -- list ------------------------------------------------------------------------
def test_list_shows_every_live_run_with_short_ids_and_status(filled: Filled) -> None:
    result = invoke(filled.home, "runs", "list")

    assert result.exit_code == 0, result.output
    for name, run_id in filled.ids.items():
        line = table_line(result.output, run_id[:8])
        assert name in line
        assert run_id not in line  # the short form only
    assert "FAILED" in table_line(result.output, "broken")
    assert "FINISHED" in table_line(result.output, "rf-deep")


def test_list_filters_and_orders_by_a_metric(filled: Filled) -> None:
    result = invoke(
        filled.home, "runs", "list", "-e", "churn", "-f", "params.model = 'rf'",
        "-o", "metrics.auc desc",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "logreg" not in result.output
    assert "broken" not in result.output
    assert result.output.index("rf-deep") < result.output.index("rf-shallow")
    assert "0.8600" in table_line(result.output, "rf-deep")


def test_list_orders_ascending_when_asked(filled: Filled) -> None:
    result = invoke(filled.home, "runs", "list", "-e", "churn", "-o", "metrics.auc")

    names = [n for n in ("logreg", "rf-shallow", "rf-deep") if n in result.output]
    assert sorted(names, key=result.output.index) == ["logreg", "rf-shallow", "rf-deep"]


def test_list_puts_the_ordering_metric_first(filled: Filled) -> None:
    result = invoke(filled.home, "runs", "list", "-e", "churn", "-o", "metrics.loss")

    header = table_line(result.output, "run id")
    columns = [cell.strip() for cell in header.split("┃") if cell.strip()]
    assert columns[columns.index("duration") + 1] == "loss"


def test_list_respects_max_and_says_more_match(filled: Filled) -> None:
    result = invoke(filled.home, "runs", "list", "--max", "2")

    assert result.exit_code == 0
    assert sum(run_id[:8] in result.output for run_id in filled.ids.values()) == 2
    assert "raise --max" in result.output


def test_list_with_a_bad_filter_explains_without_a_traceback(filled: Filled) -> None:
    result = invoke(filled.home, "runs", "list", "-f", "metrics.auc >")

    assert_clean_failure(result, "Invalid input", "Cannot read the filter")


def test_list_of_an_unknown_experiment_fails_cleanly(filled: Filled) -> None:
    assert_clean_failure(invoke(filled.home, "runs", "list", "-e", "nope"), "nope")


def test_list_as_json_is_parseable_and_complete(filled: Filled) -> None:
    result = invoke(filled.home, "runs", "list", "--format", "json", "-o", "metrics.auc desc")

    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["run_name"] for r in records][:3] == ["rf-deep", "rf-shallow", "logreg"]
    deep = records[0]
    assert deep["run_id"] == filled.ids["rf-deep"]
    assert deep["metrics"]["auc"] == pytest.approx(0.86)
    assert deep["params"] == {"model": "rf", "seed": "7", "max_depth": "12"}
    assert deep["tags"] == {"team": "growth"}
    assert deep["status"] == "FINISHED" and deep["deleted"] is False
    assert "max_depth" not in records[2]["params"]  # missing values are left out, not null


def test_list_as_csv_is_parseable(filled: Filled) -> None:
    result = invoke(filled.home, "runs", "list", "--format", "csv", "-e", "churn")

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {row["run_name"] for row in rows} == {"rf-shallow", "rf-deep", "logreg"}
    by_name = {row["run_name"]: row for row in rows}
    assert float(by_name["rf-shallow"]["metrics.auc"]) == pytest.approx(0.81)
    assert by_name["logreg"]["params.max_depth"] == ""
    assert by_name["rf-deep"]["start_time"].startswith("20")


def test_list_of_an_empty_workspace_says_so(tmp_path: Path) -> None:
    invoke(None, "init", str(tmp_path))

    result = invoke(tmp_path, "runs", "list")

    assert result.exit_code == 0
    assert "No runs" in result.output


def test_list_of_a_missing_workspace_fails_without_creating_one(tmp_path: Path) -> None:
    result = invoke(tmp_path / "typo", "runs", "list")

    assert_clean_failure(result, "No loopml workspace", "loopml init")
    assert not (tmp_path / "typo").exists()


# -- show ------------------------------------------------------------------------
def test_show_lists_params_metrics_tags_and_artifacts(filled: Filled) -> None:
    result = invoke(filled.home, "runs", "show", filled.ids["rf-deep"])

    assert result.exit_code == 0, result.output
    assert filled.ids["rf-deep"] in result.output
    assert "FINISHED" in result.output
    assert "12" in table_line(result.output, "max_depth")
    assert "0.8600" in table_line(result.output, "auc")
    assert "growth" in table_line(result.output, "team")
    assert "5.9 KiB" in table_line(result.output, "notes/readme.txt")


def test_show_summarises_a_metric_history(filled: Filled) -> None:
    result = invoke(filled.home, "runs", "show", filled.ids["rf-deep"])

    line = table_line(result.output, "train_loss")
    cells = [cell.strip() for cell in line.split("│") if cell.strip()]
    assert cells[:5] == ["train_loss", "0.3000", "4", "0.3000", "0.9000"]
    assert cells[5][0] == "█" and cells[5][-1] == "▁"  # falling loss


def test_show_of_a_failed_run_shows_its_error(filled: Filled) -> None:
    result = invoke(filled.home, "runs", "show", filled.ids["broken"])

    assert result.exit_code == 0, result.output
    assert "FAILED" in result.output
    assert "RuntimeError: CUDA out of memory while loading batch 3" in result.output


def test_show_accepts_a_unique_id_prefix(filled: Filled) -> None:
    result = invoke(filled.home, "runs", "show", filled.ids["logreg"][:8])

    assert result.exit_code == 0, result.output
    assert filled.ids["logreg"] in result.output


def test_show_of_an_unknown_id_fails_cleanly(filled: Filled) -> None:
    result = invoke(filled.home, "runs", "show", "0123456789abcdef")

    assert_clean_failure(result, "Not found", "0123456789abcdef", "loopml runs list")


def test_show_of_an_unknown_full_id_fails_cleanly(filled: Filled) -> None:
    result = invoke(filled.home, "runs", "show", "f" * 32)

    assert_clean_failure(result, "Not found", "f" * 32)


def test_show_refuses_a_too_short_prefix(filled: Filled) -> None:
    result = invoke(filled.home, "runs", "show", filled.ids["logreg"][:3])

    assert_clean_failure(result, "at least 6")


def test_show_refuses_a_prefix_that_matches_several_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = iter(uuid.UUID(f"abcdef{n:026x}") for n in range(1000))
    monkeypatch.setattr(uuid, "uuid4", lambda: next(made))
    with loopml.Workspace.open(tmp_path) as ws:
        for _ in range(2):
            with ws.start_run(experiment="twins"):
                pass
    monkeypatch.undo()

    result = invoke(tmp_path, "runs", "show", "abcdef")

    assert_clean_failure(result, "More than one run")


def test_show_rejects_ids_that_are_not_hexadecimal(filled: Filled) -> None:
    result = invoke(filled.home, "runs", "show", "abc' or 1=1 --")

    assert_clean_failure(result, "hexadecimal characters")


# -- compare ---------------------------------------------------------------------
def test_compare_marks_rows_whose_params_differ(filled: Filled) -> None:
    result = invoke(
        filled.home, "runs", "compare", filled.ids["rf-shallow"][:8], filled.ids["rf-deep"][:8]
    )

    assert result.exit_code == 0, result.output
    depth = table_line(result.output, "max_depth")
    assert "≠" in depth and "3" in depth and "12" in depth
    assert "≠" not in table_line(result.output, "seed")
    assert "≠" not in table_line(result.output, "model ")


def test_compare_stars_the_best_metric_value(filled: Filled) -> None:
    result = invoke(
        filled.home, "runs", "compare", filled.ids["rf-shallow"], filled.ids["rf-deep"],
        filled.ids["logreg"],
    )  # fmt: skip

    assert "0.8600 ★" in table_line(result.output, "│ auc")
    assert "0.1400 ★" in table_line(result.output, "│ loss")  # lower is better for a loss
    assert result.output.count("★") == 2 + 1  # two rows, plus the legend


def test_compare_diff_only_hides_equal_rows(filled: Filled) -> None:
    result = invoke(
        filled.home, "runs", "compare", "--diff", filled.ids["rf-shallow"], filled.ids["rf-deep"]
    )

    assert "max_depth" in result.output
    assert "seed" not in result.output


def test_compare_needs_two_runs(filled: Filled) -> None:
    result = invoke(filled.home, "runs", "compare", filled.ids["rf-deep"])

    assert_clean_failure(result, "at least two")


# -- delete / restore ------------------------------------------------------------
def test_deleted_run_is_hidden_shown_with_all_and_restorable(filled: Filled) -> None:
    short = filled.ids["rf-deep"][:8]

    deleted = invoke(filled.home, "runs", "delete", short)
    assert deleted.exit_code == 0, deleted.output
    assert f"loopml runs restore {short}" in deleted.output

    assert short not in invoke(filled.home, "runs", "list").output
    listed = invoke(filled.home, "runs", "list", "--all")
    assert "(deleted)" in table_line(listed.output, short)
    assert "(deleted)" not in table_line(listed.output, filled.ids["logreg"][:8])
    records = json.loads(invoke(filled.home, "runs", "list", "--all", "--format", "json").stdout)
    assert {r["run_name"]: r["deleted"] for r in records}["rf-deep"] is True

    restored = invoke(filled.home, "runs", "restore", short)
    assert restored.exit_code == 0, restored.output
    assert short in invoke(filled.home, "runs", "list").output


def test_show_still_finds_a_deleted_run(filled: Filled) -> None:
    invoke(filled.home, "runs", "delete", filled.ids["logreg"])

    result = invoke(filled.home, "runs", "show", filled.ids["logreg"][:8])

    assert result.exit_code == 0
    assert "(deleted)" in result.output


def test_delete_of_an_unknown_run_fails_cleanly(filled: Filled) -> None:
    assert_clean_failure(invoke(filled.home, "runs", "delete", "abcdef00"), "Not found")
