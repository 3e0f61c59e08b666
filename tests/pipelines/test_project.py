"""The project file ``loopml.yaml``: read into a checked ProjectConfig, every problem named
with its line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.errors import NotFoundError, ValidationError
from loopml.pipelines.project import (
    ProjectError,
    load_project,
    parse_project,
    starter_project,
)

GOOD = """\
model: cancer
data:
  name: cancer
  source: data/*.parquet
  contract: contract.yaml
  on_invalid: quarantine
  split: {by: stratified, fractions: {test: 0.2, train: 0.6, valid: 0.2}, seed: 7}
train:
  target: target
  estimator: sklearn.linear_model.LogisticRegression
  params: {max_iter: 2000}
  search: {space: {C: {low: 0.01, high: 100, log: true}, max_iter: {low: 100, high: 500}},
           trials: 6, metric: roc_auc}
gate:
  policy: policy.yaml
deploy:
  alias: production
  approvals: 1
  canary: {steps: [10, 50, 100], interval: 30s, min_requests: 50, max_error_rate: 0.01,
           check_every: 5s, pickup_timeout: 1m, timeout: 30m}
alerts:
  notify: [log, {type: webhook, url: "http://127.0.0.1:9/hook"}]
"""


def write(folder: Path, text: str, name: str = "loopml.yaml") -> Path:
    """Writes ``folder/name``; the path returned is relative when ``folder`` is the current
    one (as a user names the file)."""
    path = folder / name
    path.write_text(text)
    return path.relative_to(Path.cwd()) if path.parent == Path.cwd() else path


def test_a_project_is_read_with_its_paths_from_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    write(folder, "columns: {target: int}\n", "contract.yaml")
    write(folder, "checks: [roc_auc >= 0.9, roc_auc >= champion.roc_auc - 0.01]\n", "policy.yaml")
    project = load_project(write(folder, GOOD))

    assert project.model == "cancer" and project.experiment == "cancer"
    assert project.data.source == str(folder / "data/*.parquet")
    assert project.data.contract == str(folder / "contract.yaml")
    split = project.data.split
    assert (split.by, split.column, split.seed) == ("stratified", "target", 7)  # the label
    assert list(split.fractions) == ["train", "valid", "test"] and split.held_out == "test"
    search = project.train.search
    assert search is not None and (search.trials, search.metric) == (6, "roc_auc")
    assert search.space["C"]["type"] == "float" and search.space["max_iter"]["type"] == "int"
    assert project.gate.policy["checks"][1] == "roc_auc >= champion.roc_auc - 0.01"
    assert project.deploy.approvals == 1 and project.deploy.canary is not None
    assert project.deploy.canary.plan == {
        "steps": [10.0, 50.0, 100.0],
        "interval_s": 30.0,
        "min_requests": 50,
        "max_error_rate": 0.01,
    }
    assert (project.deploy.canary.pickup_timeout, project.deploy.canary.timeout) == (60, 1800)
    assert project.alerts.notify[0] == "log" and project.alerts.notify[1]["type"] == "webhook"
    # What a pipeline run stores reads back the same, wherever it is read.
    assert parse_project(project.to_dict(), base=tmp_path) == project


def test_the_starter_project_is_valid(tmp_path: Path) -> None:
    project = load_project(write(tmp_path, starter_project("churn", "churn", "churned")))
    assert (project.model, project.data.name, project.train.target) == ("churn", "churn", "churned")
    assert project.deploy.canary is None and project.deploy.approvals == 0


def test_a_malformed_project_names_every_field_and_line(tmp_path: Path) -> None:
    text = """\
model: cancer
data:
  name: cancer
  split: {on: target, fractions: {train: 0.6, valid: 0.3}}
train:
  target: target
  estimator: sklearn.linear_model.LogisticRegresion
  search: {space: {C: {low: 0.01, high: 100, log: true}}, trials: 0}
gate:
  policy: {checks: [roc_auc >= champion.roc_auc]}
deploy:
  approval: 1
  canary: {steps: [50, 10], interval: soon}
"""
    with pytest.raises(ProjectError) as caught:
        load_project(write(tmp_path, text))
    message = str(caught.value)
    assert message.startswith("loopml.yaml has 8 problems:")
    for expected in (
        "line 4, data.split.on: unknown field",  # YAML 1.2: `on` is a key, not true
        "line 4, data.split.fractions: shares must add up to 1, they add up to 0.9",
        "line 7, train.estimator: cannot import 'sklearn.linear_model.LogisticRegresion'",
        "line 8, train.search.trials: must be a whole number ≥ 1, got 0",
        "line 10, gate.policy: every check names the champion",
        "line 12, deploy.approval: unknown field; did you mean 'approvals'?",
        "line 13, deploy.canary.interval: must be a duration above 0",
        "line 13, deploy.canary.steps: must be rising percents of traffic ending at 100",
    ):
        assert expected in message, message
    assert len(caught.value.problems) == 8


def test_one_problem_is_one_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD.replace("trials: 6", "trials: 2.5")
        .replace("policy: policy.yaml", "policy: {checks: [auc >= 0.8]}")
        .replace("  contract: contract.yaml\n", ""),
    )
    with pytest.raises(
        ValidationError,
        match=r"^loopml.yaml line 12, train.search.trials: must "
        r"be a whole number ≥ 1, got 2.5$",
    ):
        load_project(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model: cancer\ndata: {name: cancer\n", "loopml.yaml line 3: not valid YAML"),
        ("", "loopml.yaml: is empty; write `loopml ct init`"),
        ("- model\n", "loopml.yaml: must be a mapping"),
        ("model: cancer\n", "`data` is required"),
        (
            "model: cancer\nmodel: other\ndata: {name: d}\ntrain: {target: t, estimator: "
            "sklearn.dummy.DummyClassifier}\ngate: {policy: {checks: [auc > 0.5]}}\n",
            "line 1, model: appears twice (again on line 2)",
        ),
        (
            "model: a b\ndata: {name: d}\ntrain: {target: t, estimator: sklearn.dummy."
            "DummyClassifier}\ngate: {policy: missing.yaml}\n",
            "gate.policy: no policy file",
        ),
        (
            "model: m\ndata: {name: d, split: {by: time}}\ntrain: {target: t, estimator: "
            "DummyClassifier}\ngate: {policy: {checks: [auc > 0.5]}}\nalerts: {notify: [pager]}\n",
            "line 3, train.estimator: must be a dotted class path",
        ),
    ],
)
def test_bad_project_files_are_refused_with_the_place(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        load_project(write(tmp_path, text))
    assert expected in str(caught.value)


def test_a_missing_project_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"No project file 'loopml.yaml'.*`loopml ct init`"):
        load_project()


def test_plain_data_without_lines_still_names_the_field() -> None:
    with pytest.raises(
        ProjectError,
        match=r"^project, deploy.canary.max_error_rate: must be a "
        r"number ≥ 0 and ≤ 1, got 2$",
    ):
        parse_project(
            {
                "model": "m",
                "data": {"name": "d"},
                "train": {"target": "t", "estimator": "sklearn.dummy.DummyClassifier"},
                "gate": {"policy": {"checks": ["auc > 0.5"]}},
                "deploy": {"canary": {"max_error_rate": 2}},
            }
        )


def _with_canary(canary: dict[str, object]) -> dict[str, object]:
    return {
        "model": "m",
        "data": {"name": "d"},
        "train": {"target": "t", "estimator": "sklearn.dummy.DummyClassifier"},
        "gate": {"policy": {"checks": ["auc > 0.5"]}},
        "deploy": {"canary": canary},
    }


@pytest.mark.parametrize("slack", [0, 25])
def test_the_canary_latency_slack_is_read_into_the_plan(tmp_path: Path, slack: int) -> None:
    project = parse_project(_with_canary({"max_latency_ratio": 1.5, "latency_slack_ms": slack}))
    assert project.deploy.canary is not None
    assert project.deploy.canary.plan == {"max_latency_ratio": 1.5, "latency_slack_ms": slack}
    assert parse_project(project.to_dict(), base=tmp_path) == project


@pytest.mark.parametrize("slack", [-1, float("nan"), "10ms", True])
def test_a_bad_canary_latency_slack_names_the_key(slack: object) -> None:
    with pytest.raises(
        ProjectError,
        match=r"^project, deploy.canary.latency_slack_ms: must be a number ≥ 0, got ",
    ):
        parse_project(_with_canary({"latency_slack_ms": slack}))
