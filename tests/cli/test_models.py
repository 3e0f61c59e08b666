"""``loopml models list|show|lineage|history|promote|rollback|approve|delete``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import loopml
from tests.cli import assert_clean_failure, invoke, table_line
from tests.registry._samples import PASSING, gate, registered


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """Two versions of ``churn``; version 1 passed a gate (no champion yet)."""
    folder = tmp_path / "home"
    with loopml.Workspace.open(folder) as ws:
        registered(ws, 2)
        ws.registry.set_description("churn", "who leaves next month")
        gate(ws, "models:/churn/1", PASSING, champion=None)
    return folder


def test_list_and_show(home: Path) -> None:
    listed = invoke(home, "models", "list")
    assert listed.exit_code == 0, listed.output
    assert "2" in table_line(listed.output, "churn") and "who leaves" in listed.output

    shown = invoke(home, "models", "show", "churn")
    assert shown.exit_code == 0, shown.output
    rows = [line for line in shown.output.splitlines() if "runs:/" in line]
    assert len(rows) == 2 and all("sklearn" in row and "accuracy=" in row for row in rows)


def test_promote_history_rollback(home: Path) -> None:
    first = invoke(home, "models", "promote", "churn", "1", "--alias", "production", "-r", "first")
    assert first.exit_code == 0, first.output
    assert "churn@production" in first.output and "version 1" in first.output

    refused = invoke(home, "models", "promote", "churn", "2", "--alias", "production")
    assert_clean_failure(refused, "protected alias", "loopml gate models:/churn/2")

    forced = invoke(
        home, "models", "promote", "churn", "2", "-a", "production", "--force", "-r", "hotfix"
    )
    assert forced.exit_code == 0 and "forced" in forced.output

    history = invoke(home, "models", "history", "churn")
    assert history.exit_code == 0, history.output
    assert "hotfix" in table_line(history.output, "forced")
    assert "gate " in table_line(history.output, "first")

    back = invoke(home, "models", "rollback", "churn", "--alias", "production", "-r", "alerts")
    assert back.exit_code == 0, back.output
    assert "version 2 → 1" in back.output
    with loopml.Workspace.open(home) as ws:
        assert ws.registry.get("models:/churn@production").version == 1
        assert [e.action for e in ws.registry.history("churn")] == [
            "promote",
            "promote",
            "rollback",
        ]


def test_approve_counts_distinct_users(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_USER", "ana")
    result = invoke(home, "models", "approve", "churn", "1", "--alias", "production")
    assert result.exit_code == 0, result.output
    assert "Approved" in result.output and "ana" in result.output
    again = invoke(home, "models", "approve", "churn", "1", "--alias", "production")
    assert "Already approved" in again.output


def test_lineage_as_tree_json_and_dot(home: Path) -> None:
    tree = invoke(home, "models", "lineage", "churn", "1")
    assert tree.exit_code == 0, tree.output
    for fragment in ("models:/churn/1", "churn@1 (train)", "gates", "passed", "params:"):
        assert fragment in tree.output, tree.output

    as_json = json.loads(invoke(home, "models", "lineage", "churn", "1", "--format", "json").output)
    assert as_json["model"]["uri"] == "models:/churn/1"
    assert {d["ref"] for d in as_json["datasets"]} == {"churn@1"}
    assert as_json["gates"][0]["passed"] is True
    assert "scikit-learn" in " ".join(as_json["model"]["requirements"])

    dot = invoke(home, "models", "lineage", "churn", "1", "-f", "dot").output
    assert dot.startswith("digraph lineage") and '"data:churn@1" -> ' in dot


def test_bad_references_fail_cleanly(home: Path) -> None:
    assert_clean_failure(invoke(home, "models", "show", "nope"), "No registered model 'nope'")
    assert_clean_failure(invoke(home, "models", "lineage", "churn", "9"), "9")
    assert_clean_failure(invoke(home, "models", "lineage", "churn", "prod"), "no alias 'prod'")
    invoke(home, "models", "promote", "churn", "2", "--alias", "staging")
    assert_clean_failure(invoke(home, "models", "delete", "churn", "2"), "holds the alias")
    assert_clean_failure(
        invoke(home, "models", "rollback", "churn", "--alias", "staging"), "nothing to roll back"
    )


def test_export_and_import(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    onnx = invoke(
        home, "models", "export", "churn", "1", "--format", "onnx", "-o", str(tmp_path / "m.onnx")
    )
    assert onnx.exit_code == 0, onnx.output
    assert "Parity with the model: labels agree on" in onnx.output
    assert (tmp_path / "m.onnx").stat().st_size > 0

    mlflow_dir = tmp_path / "mlflow-model"
    exported = invoke(home, "models", "export", "churn", "2", "-f", "mlflow", "-o", str(mlflow_dir))
    assert exported.exit_code == 0 and (mlflow_dir / "MLmodel").is_file()
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    imported = invoke(home, "models", "import", str(mlflow_dir), "--name", "roundtrip")
    assert imported.exit_code == 0, imported.output
    assert "models:/roundtrip/1" in imported.output

    assert_clean_failure(invoke(home, "models", "import", str(tmp_path), "--name", "x"), "MLmodel")
    context = tmp_path / "context"
    docker = invoke(home, "models", "export", "churn", "1", "-f", "docker", "-o", str(context))
    assert docker.exit_code == 0, docker.output
    assert {"Dockerfile", "entrypoint.sh", "requirements.txt", "churn", "wheels"} <= {
        p.name for p in context.iterdir()
    }
    assert_clean_failure(
        invoke(home, "models", "export", "churn", "1", "-f", "docker", "-o", str(context)),
        "already holds files",
    )


def test_tag_and_card(home: Path, tmp_path: Path) -> None:
    tagged = invoke(
        home, "models", "tag", "churn", "card.intended_use=Monthly outreach", "team=growth"
    )
    assert tagged.exit_code == 0, tagged.output
    written = invoke(home, "models", "card", "churn", "1", "--out", str(tmp_path / "cards"))
    assert written.exit_code == 0, written.output
    markdown = (tmp_path / "cards" / "churn-v1.md").read_text()
    assert "Monthly outreach" in markdown and "Not stated by the owner" in markdown
    assert (tmp_path / "cards" / "churn-v1.html").read_text().lstrip().startswith("<!")
    bad = invoke(home, "models", "tag", "churn", "no-equals-sign")
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output
