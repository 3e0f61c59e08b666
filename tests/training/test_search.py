"""``ws.tune``: trials as child runs, the best on the parent, spaces, pruning, failures,
resuming an interrupted search, Ray, and the ``search:`` section of ``train.yaml``."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import loopml
from loopml.errors import ValidationError
from loopml.training import TrainingError
from loopml.training._space import parse_space
from tests.cli import invoke
from tests.training import customers

pytest.importorskip("optuna")

TREE_SPACE: dict[str, Any] = {
    "max_depth": {"type": "int", "low": 1, "high": 6},
    "criterion": ["gini", "entropy"],
}


def data() -> pd.DataFrame:
    return customers()[["spend", "plan", "trial", "churned"]]


class Flaky(ClassifierMixin, BaseEstimator):
    """Fits like a shallow tree, but raises when ``threshold`` is below one half."""

    def __init__(self, threshold: float = 1.0) -> None:
        self.threshold = threshold

    def fit(self, X: Any, y: Any) -> Flaky:
        if self.threshold < 0.5:
            raise RuntimeError(f"boom at threshold {self.threshold:.3f}")
        self.tree_ = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
        self.classes_ = self.tree_.classes_
        return self

    def predict(self, X: Any) -> Any:
        return self.tree_.predict(X)

    def predict_proba(self, X: Any) -> Any:
        return self.tree_.predict_proba(X)


# -- the outcome ------------------------------------------------------------------------
def test_each_trial_is_a_child_run_and_the_best_goes_to_the_parent(
    workspace: loopml.Workspace,
) -> None:
    result = workspace.tune(
        DecisionTreeClassifier(random_state=0),
        space=TREE_SPACE,
        data=data(),
        target="churned",
        n_trials=5,
        sampler={"name": "random", "seed": 1},
        experiment="churn-search",
    )
    children = result.run.children()
    assert len(children) == 5
    assert {c.tags["loopml.tune.state"] for c in children} == {"COMPLETE"}
    assert all(c.info.status == "FINISHED" and "roc_auc" in c.metrics for c in children)
    best_value = max(c.metrics["roc_auc"] for c in children)
    assert result.best_metrics["roc_auc"] == pytest.approx(best_value)
    assert result.run.metrics["roc_auc"] == pytest.approx(best_value)
    assert result.run.params["max_depth"] == str(result.best_params["max_depth"])
    assert result.run.info.status == "FINISHED"
    assert list(result.trials["state"]) == ["COMPLETE"] * 5
    assert set(result.trials["run_id"]) == {c.id for c in children}
    assert result.best_model.predict(data().drop(columns="churned")).shape == (300,)
    stored = result.run.load_model()
    assert stored.get_params()["model__max_depth"] == result.best_params["max_depth"]


def test_the_parent_records_the_dataset_version_it_searched_on(
    sqlite_workspace: loopml.Workspace,
) -> None:
    version = sqlite_workspace.data.ingest(data(), name="churn")
    result = sqlite_workspace.tune(
        DecisionTreeClassifier(random_state=0),
        space=TREE_SPACE,
        data="churn",
        target="churned",
        n_trials=1,
    )
    assert sorted((v.ref, role) for v, role in result.run.inputs()) == [
        (version.ref, "train"),
        (version.ref, "valid"),
    ]


def test_cross_validation_reports_each_fold_to_the_trial(
    sqlite_workspace: loopml.Workspace,
) -> None:
    result = sqlite_workspace.tune(
        LogisticRegression(max_iter=500),
        space={"C": {"type": "float", "low": 1e-3, "high": 100, "log": True}},
        data=data(),
        target="churned",
        n_trials=3,
        cv=3,
        metric="accuracy",
        pruner="nop",
    )
    child = sqlite_workspace.get_run(result.trials["run_id"][0])
    history = child.metric_history("cv_accuracy")
    assert list(history["step"]) == [0, 1, 2]
    assert child.metrics["accuracy"] == pytest.approx(history["value"].mean())
    assert result.metric == "accuracy" and result.direction == "maximize"
    assert result.best_metrics["cv_folds_done"] == 3


def test_a_pruner_stops_trials_between_folds(sqlite_workspace: loopml.Workspace) -> None:
    with pytest.raises(TrainingError, match="No trial"):
        sqlite_workspace.tune(
            DecisionTreeClassifier(random_state=0),
            space=TREE_SPACE,
            data=data(),
            target="churned",
            n_trials=3,
            cv=4,
            pruner={"name": "threshold", "lower": 1.01},  # no score is that good
            experiment="pruned",
        )
    runs = sqlite_workspace.search_runs("pruned")
    trials = runs[runs["parent_run_id"].notna()]
    assert len(trials) == 3
    assert set(trials["tags.loopml.tune.state"]) == {"PRUNED"}
    assert set(trials["metrics.cv_folds_done"]) == {1.0}
    assert set(runs[runs["parent_run_id"].isna()]["status"]) == {"FAILED"}


def test_conditional_param_is_sampled_only_when_its_condition_holds(
    sqlite_workspace: loopml.Workspace,
) -> None:
    space = {
        "splitter": ["best", "random"],
        "max_features": {"type": "float", "low": 0.2, "high": 1.0, "when": {"splitter": "random"}},
        "max_depth": 3,
    }
    result = sqlite_workspace.tune(
        DecisionTreeClassifier(random_state=0),
        space=space,
        data=data(),
        target="churned",
        n_trials=8,
        sampler="random",
    )
    trials = result.trials
    assert set(trials["params.splitter"]) == {"best", "random"}
    for _, trial in trials.iterrows():
        assert math.isnan(trial["params.max_features"]) == (trial["params.splitter"] == "best")
    assert result.best_params["max_depth"] == 3  # fixed values reach the model
    child = sqlite_workspace.get_run(trials["run_id"][0])
    assert child.params["max_depth"] == "3"


def test_a_failing_trial_fails_its_run_and_the_search_goes_on(
    sqlite_workspace: loopml.Workspace,
) -> None:
    result = sqlite_workspace.tune(
        Flaky(),
        space={"threshold": {"type": "float", "low": 0.0, "high": 1.0}},
        data=data(),
        target="churned",
        n_trials=8,
        sampler={"name": "random", "seed": 0},
    )
    states = result.trials.set_index("run_id")["state"]
    assert {"FAIL", "COMPLETE"} <= set(states)
    for run_id, state in states.items():
        run = sqlite_workspace.get_run(run_id)
        if state == "FAIL":
            assert run.info.status == "FAILED"
            assert "boom at threshold" in (run.info.error or "")
        else:
            assert run.info.status == "FINISHED"
    assert result.best_params["threshold"] >= 0.5
    assert len(result.trials) == 8


def test_the_same_call_again_resumes_the_study_and_runs_no_finished_trial(
    sqlite_workspace: loopml.Workspace,
) -> None:
    def search(n_trials: int) -> Any:
        return sqlite_workspace.tune(
            DecisionTreeClassifier(random_state=0),
            space=TREE_SPACE,
            data=data(),
            target="churned",
            n_trials=n_trials,
            experiment="resume",
        )

    first = search(3)
    again = search(3)
    assert again.run.id == first.run.id
    assert len(again.trials) == 3 and again.best_params == first.best_params
    more = search(5)
    assert len(more.trials) == 5 and more.study_name == first.study_name
    assert more.run.tags["loopml.tune.continues"] == first.run.id
    assert len(more.run.children()) == 2 and len(first.run.children()) == 3


def test_timeout_stops_new_trials_and_keeps_the_best_so_far(
    sqlite_workspace: loopml.Workspace,
) -> None:
    options: dict[str, Any] = {"space": TREE_SPACE, "data": data(), "target": "churned"}
    first = sqlite_workspace.tune(DecisionTreeClassifier(), n_trials=2, **options)
    later = sqlite_workspace.tune(DecisionTreeClassifier(), n_trials=10, timeout=0, **options)
    assert len(later.trials) == 2
    assert later.best_params == first.best_params
    assert later.run.metrics["tune.n_complete"] == 2


def test_space_from_yaml_and_any_sampler_by_class_name(
    sqlite_workspace: loopml.Workspace,
) -> None:
    space = yaml.safe_load(
        "max_depth: {type: int, low: 2, high: 8, step: 2}\n"
        "min_samples_leaf: {type: int, low: 1, high: 64, log: true}\n"
    )
    result = sqlite_workspace.tune(
        DecisionTreeClassifier(random_state=0),
        space=space,
        data=data(),
        target="churned",
        n_trials=4,
        sampler="QMCSampler",
    )
    assert set(result.trials["params.max_depth"]) <= {2, 4, 6, 8}
    assert result.run.params["tune.sampler"] == "QMCSampler"


# -- bad input --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({}, "empty"),
        ("C", "must be a mapping"),
        ({"C": 1.0}, "searches none"),
        ({"C": {"type": "float", "low": 10, "high": 1}}, "'C': low \\(10\\) is above high"),
        ({"C": {"type": "flaot", "low": 0, "high": 1}}, "'C': type must be one of"),
        ({"C": {"type": "float", "low": 0, "high": 1, "log": True}}, "'C': a log-scaled"),
        ({"C": {"type": "float", "low": 0, "hihg": 1}}, "did you mean 'high'"),
        ({"C": {"type": "int", "low": 0.5, "high": 3}}, "'C': an int param"),
        ({"C": []}, "'C': a categorical param needs a non-empty list"),
        ({"C": [[1, 2]]}, "'C': choices must be"),
        ({"a": [1, 2], "b": {"type": "int", "low": 0, "high": 3, "when": {"c": 1}}}, "'c'"),
        ({"a": [1, 2], "b": {"type": "int", "low": 0, "high": 3, "when": {"a": 5}}}, "only"),
        (
            {
                "a": {"type": "int", "low": 0, "high": 3, "when": {"b": 1}},
                "b": {"type": "int", "low": 0, "high": 3, "when": {"a": 1}},
            },
            "cycle",
        ),
    ],
)
def test_a_malformed_space_names_the_param_and_the_problem(space: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_space(space)


def test_space_params_must_belong_to_the_model(sqlite_workspace: loopml.Workspace) -> None:
    with pytest.raises(ValidationError, match=r"'max_dept' is not a parameter.*'max_depth'"):
        sqlite_workspace.tune(
            DecisionTreeClassifier(),
            space={"max_dept": [1, 2]},
            data=data(),
            target="churned",
        )
    assert sqlite_workspace.count_runs() == 0


def test_an_unknown_sampler_is_refused_before_any_run(sqlite_workspace: loopml.Workspace) -> None:
    with pytest.raises(ValidationError, match=r"Unknown sampler 'tpee'.*tpe"):
        sqlite_workspace.tune(
            DecisionTreeClassifier(), space=TREE_SPACE, data=data(), target="churned",
            sampler="tpee",
        )  # fmt: skip
    assert sqlite_workspace.count_runs() == 0


def test_a_search_leaves_the_loopml_schema_revision_alone(
    sqlite_workspace: loopml.Workspace,
) -> None:
    """Optuna shares the database but never the revision loopml migrates from."""
    sqlite_workspace.tune(
        DecisionTreeClassifier(), space=TREE_SPACE, data=data(), target="churned", n_trials=1
    )
    head = sqlite_workspace.db.revision()
    sqlite_workspace.close()
    reopened = loopml.Workspace.open(sqlite_workspace.settings.home)
    assert reopened.db.revision() == head
    reopened.close()


# -- the training YAML ------------------------------------------------------------------
def test_train_config_with_a_search_section_runs_a_search(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with loopml.Workspace.open(home) as ws:
        ws.data.ingest(data(), name="churn")
    config = tmp_path / "train.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            model: sklearn.tree.DecisionTreeClassifier
            params: {random_state: 0}
            data: churn
            target: churned
            search:
              n_trials: 3
              metric: accuracy
              sampler: random
              space:
                max_depth: {type: int, low: 1, high: 5}
            """
        )
    )
    result = invoke(home, "train", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "best params" in result.output and "accuracy" in result.output
    with loopml.Workspace.open(home) as ws:
        runs = ws.search_runs("churn")
        assert len(runs) == 4
        assert runs["parent_run_id"].notna().sum() == 3


def test_a_search_section_with_an_unknown_key_is_refused() -> None:
    from loopml.training import TrainConfig

    with pytest.raises(ValidationError, match=r"Unknown search key.*'trials'"):
        TrainConfig.from_dict(
            {"model": "m.M", "data": "d", "target": "t", "search": {"space": {"a": [1]},
             "trials": 3}}
        )  # fmt: skip


# -- interruption and Ray (slow) ------------------------------------------------------
_SCRIPT = """
import json, sys, time
import numpy as np, pandas as pd
import loopml
from sklearn.tree import DecisionTreeClassifier

class SlowTree(DecisionTreeClassifier):
    def fit(self, X, y, **options):
        time.sleep(0.3)
        return super().fit(X, y, **options)

rng = np.random.default_rng(0)
frame = pd.DataFrame({"x": rng.random(200), "z": rng.random(200)})
frame["y"] = frame["x"] + 0.3 * rng.random(200) > 0.6
with loopml.Workspace.open(sys.argv[1]) as ws:
    result = ws.tune(
        SlowTree(random_state=0),
        space={"min_impurity_decrease": {"type": "float", "low": 0, "high": 0.05},
               "max_depth": {"type": "int", "low": 1, "high": 8}},
        data=frame, target="y", n_trials=8, experiment="killed",
    )
    print(json.dumps({"run": result.run.id, "study": result.study_name}))
"""


@pytest.mark.slow
def test_a_killed_search_resumes_where_it_stopped(tmp_path: Path) -> None:
    script = tmp_path / "search.py"
    script.write_text(_SCRIPT)
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, str(script), str(home)], env=env)
    database = home / "loopml.db"

    def count(state: str) -> int:
        if not database.exists():
            return 0
        with sqlite3.connect(database, timeout=30) as connection:
            try:
                found = connection.execute("SELECT count(*) FROM trials WHERE state = ?", (state,))
            except sqlite3.OperationalError:
                return 0
            return int(found.fetchone()[0])

    deadline = time.monotonic() + 60
    while count("COMPLETE") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    completed_before = count("COMPLETE")
    assert 3 <= completed_before < 8
    running_when_killed = count("RUNNING")

    finished = subprocess.run(
        [sys.executable, str(script), str(home)], env=env, capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr
    outcome = json.loads(finished.stdout.strip().splitlines()[-1])
    assert count("COMPLETE") == 8
    with loopml.Workspace.open(home) as ws:
        parent = ws.get_run(outcome["run"])
        assert parent.info.status == "FINISHED"
        children = parent.children()
        complete = [c for c in children if c.tags.get("loopml.tune.state") == "COMPLETE"]
        assert len(complete) == 8
        numbers = [c.tags["loopml.tune.trial"] for c in complete]
        assert len(set(numbers)) == 8  # no trial recorded twice
        points = {(c.params["min_impurity_decrease"], c.params["max_depth"]) for c in complete}
        assert len(points) == 8  # the resumed sampler proposed no earlier point again
        interrupted = [c for c in children if c.info.status == "FAILED"]
        # A trial killed before its run started has no run to fail.
        assert len(interrupted) <= running_when_killed
        assert all("Interrupted" in (c.info.error or "") for c in interrupted)
        assert all(c.info.status in ("FINISHED", "FAILED") for c in children)
        trials = sqlite3.connect(database).execute(
            "SELECT count(*) FROM trial_system_attributes WHERE key = 'loopml.interrupted'"
        )
        assert trials.fetchone()[0] == running_when_killed


@pytest.mark.slow
def test_trials_run_in_parallel_on_a_local_ray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = pytest.importorskip("ray")
    # Ray's workers unpickle Flaky by importing this module.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with loopml.Workspace.open(tmp_path / "home") as ws:
            result = ws.tune(
                Flaky(),
                space={"threshold": {"type": "float", "low": 0.0, "high": 1.0}},
                data=data(),
                target="churned",
                n_trials=6,
                cv=2,
                executor="ray",
                sampler={"name": "random", "seed": 0},
            )
            assert len(result.trials) == 6
            children = result.run.children()
            assert len(children) == 6
            failed = [c for c in children if c.info.status == "FAILED"]
            assert failed and all("boom at threshold" in (c.info.error or "") for c in failed)
            assert result.best_params["threshold"] >= 0.5
            assert result.run.load_model().predict(data().drop(columns="churned")).shape == (300,)
            assert result.run.tags["loopml.tune.executor"] == "ray"
    finally:
        ray.shutdown()


def test_no_search_imports_optuna_or_ray_on_import() -> None:
    code = "import loopml, sys; print('optuna' in sys.modules, 'ray' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.stdout.split() == ["False", "False"]


def test_a_trial_run_the_study_never_recorded_is_ended_failed(
    sqlite_workspace: loopml.Workspace,
) -> None:
    """Killed between starting a trial's run and telling the trial its id: the resumed
    search ends that orphan run FAILED instead of leaving it RUNNING forever."""
    import optuna

    from loopml.training._tune_runs import recover_interrupted

    with sqlite_workspace.start_run("killed") as parent:
        orphan = sqlite_workspace.start_run("killed", parent=parent)
    study = optuna.create_study()
    study.ask()  # a trial left RUNNING, without a run id
    recover_interrupted(sqlite_workspace, study, parent)
    ended = sqlite_workspace.get_run(orphan.id)
    assert ended.info.status == "FAILED" and "Interrupted" in (ended.info.error or "")
