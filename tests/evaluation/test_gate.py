"""ws.gate: policies, checks against thresholds and a champion, significance, storage, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

import loopml
from loopml.errors import NotFoundError, ValidationError
from loopml.evaluation.gate import GateResult, gates, load_policy
from tests.evaluation._samples import (
    binary_frame,
    binary_model,
    regression_frame,
    regression_model,
)

FAST = {"bootstrap": 20, "resamples": 200, "latency_rows": 20}


def policy(*checks: Any, **options: Any) -> dict[str, Any]:
    return {**FAST, **options, "checks": list(checks)}


@pytest.fixture
def frame() -> Any:
    return binary_frame(500)


@pytest.fixture
def runs(sqlite_workspace: loopml.Workspace, frame: Any) -> dict[str, loopml.Run]:
    """A good model (follows tenure) and a weak one (spend only, noise), each in a run."""
    sqlite_workspace.data.ingest(frame, name="churn", contract=False)
    with sqlite_workspace.start_run("churn") as good:
        good.log_model(binary_model(frame))
    with sqlite_workspace.start_run("churn") as weak:
        weak.log_model(LogisticRegression().fit(frame[["spend"]], frame["churned"]))
    return {"good": good, "weak": weak}


# -- passing and failing -----------------------------------------------------------------
def test_gate_is_stored_with_the_candidate_and_logged_on_its_run(
    workspace: loopml.Workspace, frame: Any
) -> None:
    with workspace.start_run("churn") as run:
        run.log_model(binary_model(frame))
    result = workspace.gate(
        run, policy("auc >= 0.6", "accuracy > 0.5"), data=frame, target="churned"
    )

    assert result.passed
    assert [c.verdict for c in result.checks] == ["pass", "pass"]
    assert result.run_id == run.id
    assert run.tags["gate.status"] == "passed"
    assert run.tags["gate.id"] == result.gate_id
    logged = json.loads(run.read_artifact(f"gates/{result.gate_id}.json"))
    assert logged == result.to_dict()
    [stored] = gates(workspace, run.id)
    assert stored.to_dict() == result.to_dict()
    assert result.evaluation_id in {e.evaluation_id for e in workspace.evaluations(run)}


def test_a_check_below_its_threshold_fails_the_gate_with_both_values(
    sqlite_workspace: loopml.Workspace, runs: dict[str, loopml.Run]
) -> None:
    result = sqlite_workspace.gate(
        runs["weak"], policy("roc_auc >= 0.8", "accuracy >= 0"), data="churn@1", target="churned"
    )
    auc = sqlite_workspace.evaluations(runs["weak"])[-1].metrics["roc_auc"]

    assert not result.passed
    first, second = result.checks
    assert (first.verdict, first.value, first.threshold) == ("fail", pytest.approx(auc), 0.8)
    assert second.passed
    assert result.failed_checks == [first]
    assert runs["weak"].tags["gate.status"] == "failed"
    assert result.dataset == "churn@1"


def test_to_frame_has_one_row_per_check(
    sqlite_workspace: loopml.Workspace, runs: dict[str, loopml.Run]
) -> None:
    result = sqlite_workspace.gate(
        runs["good"], policy("f1 > 0.99", "auc >= 0.5"), data="churn", target="churned"
    )
    table = result.to_frame()
    assert list(table.columns) == ["expression", "value", "threshold", "verdict", "note"]
    assert table["verdict"].tolist() == ["fail", "pass"]
    assert table["expression"].tolist() == ["f1 > 0.99", "auc >= 0.5"]


def test_result_round_trips_through_a_dict() -> None:
    original = GateResult.from_dict(
        {
            "passed": False,
            "gate_id": "a" * 32,
            "checks": [
                {
                    "expression": "auc >= 0.9",
                    "value": 0.8,
                    "threshold": 0.9,
                    "verdict": "fail",
                    "note": "",
                }
            ],
            "policy": {"checks": ["auc >= 0.9"]},
        }
    )
    again = GateResult.from_dict(json.loads(json.dumps(original.to_dict())))
    assert again == original
    assert not again.checks[0].passed


# -- the champion ------------------------------------------------------------------------
def test_champion_comparison_uses_the_champions_value_on_the_same_rows(
    sqlite_workspace: loopml.Workspace, runs: dict[str, loopml.Run]
) -> None:
    ws = sqlite_workspace
    check = "roc_auc >= champion.roc_auc - 0.005 * 2"
    better = ws.gate(
        runs["good"], policy(check), champion=runs["weak"].id, data="churn", target="churned"
    )
    assert "gate.status" not in runs["weak"].tags  # the champion is read, not marked
    worse = ws.gate(
        runs["weak"], policy(check), champion=runs["good"], data="churn", target="churned"
    )
    good_auc = ws.evaluate(runs["good"], "churn", "churned", bootstrap=0, robustness=False)
    weak_auc = ws.evaluate(runs["weak"], "churn", "churned", bootstrap=0, robustness=False)

    assert better.passed and not worse.passed
    assert better.checks[0].threshold == pytest.approx(weak_auc.metrics["roc_auc"] - 0.01)
    assert worse.checks[0].value == pytest.approx(weak_auc.metrics["roc_auc"])
    assert f"champion.roc_auc = {good_auc.metrics['roc_auc']:.4g}" in worse.checks[0].note
    assert better.champion_run_id == runs["weak"].id


def test_significantly_passes_a_clearly_better_model_and_not_an_identical_one(
    sqlite_workspace: loopml.Workspace, runs: dict[str, loopml.Run]
) -> None:
    ws = sqlite_workspace
    check = "roc_auc > champion.roc_auc significantly"
    better = ws.gate(
        runs["good"], policy(check), champion=runs["weak"], data="churn", target="churned"
    )
    same = ws.gate(
        runs["good"], policy(check), champion=runs["good"], data="churn", target="churned"
    )

    assert better.passed
    assert better.checks[0].note.startswith("p = 0.00")
    assert "paired bootstrap, 200 resamples, alpha 0.05" in better.checks[0].note
    assert not same.passed
    assert "p = 1" in same.checks[0].note and "not significant" in same.checks[0].note


def test_a_stricter_alpha_can_turn_a_significant_check_into_a_failure(
    sqlite_workspace: loopml.Workspace, runs: dict[str, loopml.Run]
) -> None:
    # With 200 resamples the smallest p-value is 1/201, so alpha 0.001 can never pass.
    result = sqlite_workspace.gate(
        runs["good"],
        policy(
            "roc_auc > champion.roc_auc significantly at 0.001",
            {"check": "roc_auc > champion.roc_auc significantly", "alpha": 0.5},
        ),
        champion=runs["weak"],
        data="churn",
        target="churned",
    )
    assert [c.verdict for c in result.checks] == ["fail", "pass"]
    assert "alpha 0.001" in result.checks[0].note


def test_better_than_champion_entry_reads_as_a_significance_check() -> None:
    auc, rmse = load_policy(
        {
            "checks": [
                {"better_than_champion": {"metric": "auc", "alpha": 0.01}},
                {"better_than_champion": {"metric": "rmse", "margin": 0.1}},
            ]
        }
    ).checks
    assert auc.expression == "roc_auc > champion.roc_auc significantly at 0.01"
    assert (auc.significantly, auc.alpha) == (True, 0.01)
    assert rmse.expression == "rmse < champion.rmse - 0.1 significantly"


def test_regression_candidate_is_judged_on_lower_is_better_metrics(
    sqlite_workspace: loopml.Workspace,
) -> None:
    frame = regression_frame()
    constant = LinearRegression().fit(frame[["rooms"]] * 0, frame["price"])
    result = sqlite_workspace.gate(
        regression_model(frame),
        policy({"better_than_champion": "rmse"}, "r2 >= 0.9"),
        champion=constant,
        data=frame,
        target="price",
    )
    assert result.passed, result.to_frame()
    assert result.run_id is None  # a bare model: stored, logged nowhere
    assert result.checks[0].value < result.checks[0].threshold


# -- what the gate measures --------------------------------------------------------------
def test_slice_fairness_robustness_latency_and_size_checks(
    sqlite_workspace: loopml.Workspace, runs: dict[str, loopml.Run]
) -> None:
    result = sqlite_workspace.gate(
        runs["good"],
        policy(
            "worst_slice.recall >= 0",
            "fairness.demographic_parity_difference <= 1",
            "robustness.noise.degradation <= 1",
            "latency.p99_ms <= 10000",
            "model.size_mb <= 50",
            "interval.roc_auc.low <= roc_auc",
            slices=["region"],
            sensitive="gender",
        ),
        data="churn",
        target="churned",
    )
    evaluation = sqlite_workspace.evaluations(runs["good"])[-1]
    worst, fairness, noise, latency, size, interval = result.checks

    assert result.passed, result.to_frame()
    assert worst.value == pytest.approx(evaluation.worst_slice["recall"]["recall"])
    assert "worst slice region=south" in worst.note
    assert fairness.value == pytest.approx(
        evaluation.fairness["demographic_parity_difference"]  # type: ignore[index]
    )
    [record] = [r for r in evaluation.robustness or [] if r["perturbation"] == "gaussian_noise"]
    assert noise.value == pytest.approx(record["degradation"])
    assert latency.value is not None and 0 < latency.value < 10000
    assert result.measurements["candidate"]["latency"]["rows"] == 20
    assert size.value is not None and 0 < size.value < 0.1
    assert interval.value == pytest.approx(evaluation.intervals["roc_auc"][0])


def test_a_latency_limit_below_the_measured_time_fails(
    sqlite_workspace: loopml.Workspace, runs: dict[str, loopml.Run]
) -> None:
    result = sqlite_workspace.gate(
        runs["good"], policy("latency.p99_ms <= 0.000001"), data="churn", target="churned"
    )
    assert not result.passed


def test_policy_from_a_yaml_file_yaml_text_or_a_dict_is_the_same(tmp_path: Path) -> None:
    text = "data: churn@2\ntarget: churned\nslices: region\nchecks:\n  - auc >= 0.8\n"
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    mapping = {"data": "churn@2", "target": "churned", "slices": "region", "checks": ["auc >= 0.8"]}
    other = tmp_path / "gate.policy"
    other.write_text(text)
    found = [load_policy(path), load_policy(str(path)), load_policy(str(other)),
             load_policy(text), load_policy(mapping)]  # fmt: skip
    assert all(p == found[0] for p in found)
    assert found[0].slices == ["region"]
    assert found[0].checks[0].left == ("ref", found[0].checks[0].references()[0])


def test_data_and_target_arguments_override_the_policy(
    sqlite_workspace: loopml.Workspace, runs: dict[str, loopml.Run], frame: Any
) -> None:
    result = sqlite_workspace.gate(
        runs["good"],
        policy("auc >= 0", data="nothing-by-this-name", target="label"),
        data=frame.head(100),
        target="churned",
    )
    assert result.passed and result.dataset is None


# -- bad input ---------------------------------------------------------------------------
def test_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="Unknown metric 'roc_aucc'") as error:
        load_policy({"checks": ["auc >= 0.8", "roc_aucc >= 0.8"]})
    assert "Check 2" in str(error.value)
    assert "accuracy, brier_score" in str(error.value) and "latency.p99_ms" in str(error.value)


def test_malformed_expression_points_at_the_column() -> None:
    with pytest.raises(ValidationError) as error:
        load_policy({"checks": ["roc_auc >== 0.8"]})
    message = str(error.value)
    assert "Cannot read check 1 at column 11" in message
    assert "roc_auc >== 0.8\n          ^" in message


@pytest.mark.parametrize(
    ("check", "fragment"),
    [
        ("latency.p99 <= 20", "Unknown latency statistic 'p99'"),
        ("robustness.wind.degradation <= 1", "Unknown perturbation 'wind'"),
        ("0.5 < 0.7", "at least one metric"),
        ("latency.p99_ms < 3 significantly", "plain metrics"),
        ("roc_auc == champion.roc_auc significantly", "needs <, <=, > or >="),
        ("auc > 0.5 significantly at 1.5", "between 0 and 1"),
    ],
)
def test_bad_checks_are_refused_with_the_reason(check: str, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        load_policy({"checks": [check]})


def test_policy_file_that_is_not_yaml_is_refused_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("checks:\n  - auc >= 0.8\n\tname: x\n")
    with pytest.raises(ValidationError, match=r"gate.yaml is not valid YAML at line 3, column 1"):
        load_policy(path)
    with pytest.raises(ValidationError, match=r"The gate policy is not valid YAML at line 2"):
        load_policy("checks: [auc > 0\n")


@pytest.mark.parametrize(
    ("given", "error", "fragment"),
    [
        ("missing.yaml", NotFoundError, "No gate policy file"),
        ("- just\n- a list\n", ValidationError, "must be a YAML mapping"),
        ({"checks": []}, ValidationError, "non-empty list"),
        ({"checks": ["auc > 0"], "treshold": 1}, ValidationError, "Unknown gate policy key"),
        ({"checks": ["worst_slice.f1 > 0"]}, ValidationError, "Add `slices:"),
        ({"checks": ["fairness.equalized_odds_difference < 1"]}, ValidationError, "sensitive"),
        ({"checks": ["auc > 0"], "alpha": 2}, ValidationError, "alpha must be a number"),
    ],
)
def test_bad_policies_are_refused(given: Any, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        load_policy(given)


def test_champion_check_without_a_champion_is_refused_before_evaluating(
    sqlite_workspace: loopml.Workspace, runs: dict[str, loopml.Run]
) -> None:
    with pytest.raises(ValidationError, match="no champion was given"):
        sqlite_workspace.gate(
            runs["good"], policy("auc >= champion.auc"), data="churn", target="churned"
        )
    assert sqlite_workspace.evaluations(runs["good"]) == []


@pytest.mark.parametrize(
    ("champion", "error", "fragment"),
    [
        ("0123456789abcdef0123456789abcdef", NotFoundError, "champion '0123456789abcdef"),
        ("models:/churn@production", NotFoundError, "No registered model 'churn'"),
    ],
)
def test_a_champion_that_cannot_be_found_is_a_clear_error(
    sqlite_workspace: loopml.Workspace,
    runs: dict[str, loopml.Run],
    champion: str,
    error: type[Exception],
    fragment: str,
) -> None:
    with pytest.raises(error, match=fragment):
        sqlite_workspace.gate(
            runs["good"],
            policy("auc >= champion.auc"),
            champion=champion,
            data="churn",
            target="churned",
        )


def test_a_metric_the_task_does_not_have_lists_the_ones_it_has(
    sqlite_workspace: loopml.Workspace, runs: dict[str, loopml.Run]
) -> None:
    with pytest.raises(ValidationError, match=r"has no metric 'rmse'.*binary model has accuracy"):
        sqlite_workspace.gate(runs["good"], policy("rmse < 1"), data="churn", target="churned")


def test_missing_data_or_target_is_refused(
    sqlite_workspace: loopml.Workspace, runs: dict[str, loopml.Run]
) -> None:
    with pytest.raises(ValidationError, match="needs data and target"):
        sqlite_workspace.gate(runs["good"], policy("auc > 0"))


# -- the paired bootstrap ----------------------------------------------------------------
def _predictions(task: str, rows: int = 300) -> Any:
    import numpy as np

    from loopml.evaluation._metrics import Predictions

    rng = np.random.default_rng(3)
    if task == "regression":
        y = rng.normal(size=rows)
        return Predictions("regression", y, y + rng.normal(scale=0.5, size=rows))
    k = 2 if task == "binary" else 3
    y = rng.integers(0, k, rows)
    probabilities = rng.dirichlet(np.ones(k), size=rows)
    probabilities[np.arange(rows), y] += 0.5
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    scores = probabilities[:, 1] if k == 2 else probabilities
    predicted = probabilities.argmax(axis=1).astype(np.int64)
    return Predictions(task, y.astype(np.int64), predicted, scores, list(range(k)), True)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_weighted_resample_scores_equal_scoring_the_repeated_rows(task: str) -> None:
    import numpy as np

    from loopml.evaluation._gate_measure import _metrics, _WeightedScorer

    p = _predictions(task)
    index = np.random.default_rng(5).integers(0, len(p.y), len(p.y))
    weights = np.bincount(index, minlength=len(p.y)).astype(np.float64)
    expected = _metrics(p.subset(index))
    found = _WeightedScorer(p, set(expected)).score(weights)
    assert found == pytest.approx(expected, rel=1e-9)


def test_paired_bootstrap_p_value_is_the_smoothed_share_of_failing_resamples() -> None:
    from loopml.evaluation._gate_expression import parse_check
    from loopml.evaluation._gate_measure import paired_bootstrap

    p = _predictions("binary")
    same = paired_bootstrap(
        parse_check("accuracy > champion.accuracy significantly"),
        {"candidate": p, "champion": p}, resamples=99, alpha=0.05, seed=0,
    )  # fmt: skip
    assert (same.p_value, same.difference, same.low, same.high) == (1.0, 0.0, 0.0, 0.0)
    always = paired_bootstrap(
        parse_check("accuracy >= 0 significantly"), {"candidate": p}, 99, 0.05, 0
    )
    assert always.p_value == pytest.approx(1 / 100)
