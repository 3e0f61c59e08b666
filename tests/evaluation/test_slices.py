"""Slices worst first, fairness differences, robustness under perturbation, importance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import recall_score

import loopml
from tests.evaluation._samples import binary_frame, binary_model

FAST = {"bootstrap": 0, "robustness": False}


def test_slices_are_sorted_worst_first_and_find_the_noisy_region(
    sqlite_workspace: loopml.Workspace,
) -> None:
    frame = binary_frame(rows=900)
    evaluation = sqlite_workspace.evaluate(
        binary_model(frame), frame, "churned", slices=["region", "tenure"], **FAST
    )
    table = evaluation.slices
    assert list(table.columns[:3]) == ["column", "value", "n"]
    assert table["roc_auc"].is_monotonic_increasing
    worst = evaluation.worst_slice["accuracy"]
    assert (worst["column"], worst["value"]) == ("region", "south")
    assert worst["accuracy"] == table["accuracy"].min()
    south = frame["region"] == "south"
    expected = recall_score(
        frame.loc[south, "churned"],
        binary_model(frame).predict(frame.loc[south, ["tenure", "spend"]]),
    )
    row = table[(table["column"] == "region") & (table["value"] == "south")].iloc[0]
    assert row["recall"] == pytest.approx(expected)
    assert set(table.loc[table["column"] == "tenure", "n"]) <= {180}  # five quantile bins


def test_slices_smaller_than_the_minimum_are_left_out(sqlite_workspace: loopml.Workspace) -> None:
    frame = binary_frame(rows=300)
    frame.loc[:9, "region"] = "tiny"
    evaluation = sqlite_workspace.evaluate(
        binary_model(frame), frame, "churned", slices="region", min_slice_size=20, **FAST
    )
    assert "tiny" not in set(evaluation.slices["value"])
    assert (evaluation.slices["n"] >= 20).all()


def test_fairness_differences_follow_their_definitions(sqlite_workspace: loopml.Workspace) -> None:
    frame = binary_frame(rows=800)
    model = binary_model(frame)
    evaluation = sqlite_workspace.evaluate(model, frame, "churned", sensitive="gender", **FAST)
    fairness = evaluation.fairness
    assert fairness is not None
    predicted = model.predict(frame[["tenure", "spend"]])
    rates, tprs, fprs = [], [], []
    for group in ("f", "m"):
        rows = (frame["gender"] == group).to_numpy()
        y = frame["churned"].to_numpy()[rows]
        rates.append(predicted[rows].mean())
        tprs.append(predicted[rows][y == 1].mean())
        fprs.append(predicted[rows][y == 0].mean())
        assert fairness["by_group"][group]["selection_rate"] == pytest.approx(rates[-1])
    assert fairness["demographic_parity_difference"] == pytest.approx(abs(rates[0] - rates[1]))
    assert fairness["equalized_odds_difference"] == pytest.approx(
        max(abs(tprs[0] - tprs[1]), abs(fprs[0] - fprs[1]))
    )


def test_fairness_matches_fairlearn_when_it_is_installed(
    sqlite_workspace: loopml.Workspace,
) -> None:
    fairlearn = pytest.importorskip("fairlearn.metrics")
    frame = binary_frame(rows=800)
    model = binary_model(frame)
    fairness = sqlite_workspace.evaluate(
        model, frame, "churned", sensitive="region", **FAST
    ).fairness
    assert fairness is not None
    predicted = model.predict(frame[["tenure", "spend"]])
    assert fairness["demographic_parity_difference"] == pytest.approx(
        fairlearn.demographic_parity_difference(
            frame["churned"], predicted, sensitive_features=frame["region"]
        )
    )
    assert fairness["equalized_odds_difference"] == pytest.approx(
        fairlearn.equalized_odds_difference(
            frame["churned"], predicted, sensitive_features=frame["region"]
        )
    )


def test_robustness_reports_degradation_per_perturbation(
    sqlite_workspace: loopml.Workspace,
) -> None:
    frame = binary_frame(rows=800)
    features = ["tenure", "spend", "region"]
    model = HistGradientBoostingClassifier(max_iter=10, categorical_features="from_dtype")
    typed = frame.assign(region=frame["region"].astype("category"))
    model.fit(typed[features], typed["churned"])
    evaluation = sqlite_workspace.evaluate(model, typed, "churned", bootstrap=0, robustness=True)
    records = {r["perturbation"]: r for r in evaluation.robustness or []}
    assert set(records) == {"gaussian_noise", "missing_values", "rare_category_swap"}
    for record in records.values():
        assert record["error"] is None
        assert record["metric"] == "roc_auc"
        assert record["baseline"] == pytest.approx(evaluation.metrics["roc_auc"])
        assert record["degradation"] == pytest.approx(record["baseline"] - record["value"])
    assert records["missing_values"]["degradation"] > 0.01
    again = sqlite_workspace.evaluate(model, typed, "churned", bootstrap=0, robustness=True)
    assert again.robustness == evaluation.robustness


def test_a_model_failing_on_a_perturbation_gets_the_error_recorded(
    sqlite_workspace: loopml.Workspace,
) -> None:
    frame = binary_frame()
    evaluation = sqlite_workspace.evaluate(binary_model(frame), frame, "churned", bootstrap=0)
    records = {r["perturbation"]: r for r in evaluation.robustness or []}
    assert records["missing_values"]["value"] is None
    assert "NaN" in records["missing_values"]["error"]
    assert records["gaussian_noise"]["error"] is None


def test_permutation_importance_ranks_the_informative_feature_first(
    sqlite_workspace: loopml.Workspace,
) -> None:
    frame = binary_frame()
    with sqlite_workspace.start_run("churn") as run:
        run.log_model(binary_model(frame))
    evaluation = sqlite_workspace.evaluate(run, frame, "churned", importance=True, **FAST)
    assert evaluation.importance is not None
    assert list(evaluation.importance) == ["tenure", "spend"]
    assert evaluation.importance["tenure"]["mean"] > 0.1
    assert "evaluation/feature_importance.html" in {a.path for a in run.artifacts("evaluation")}


def test_plots_carry_aggregates_not_rows(sqlite_workspace: loopml.Workspace) -> None:
    rows = 20_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"tenure": rng.normal(size=rows), "spend": rng.normal(size=rows)})
    frame["churned"] = (frame["tenure"] + rng.normal(size=rows) > 0).astype(int)
    frame["region"] = "north"
    frame["gender"] = "f"
    with sqlite_workspace.start_run("churn") as run:
        run.log_model(binary_model(frame))
    sqlite_workspace.evaluate(run, frame, "churned", **FAST)
    sizes = {a.path: a.size for a in run.artifacts("evaluation") if a.path.endswith(".html")}
    assert sizes and max(sizes.values()) < 200_000


def test_equalized_odds_takes_the_larger_of_the_rate_gaps() -> None:
    from loopml.evaluation._metrics import Predictions
    from loopml.evaluation._slices import fairness_report

    # group a: tpr 1.0, fpr 0.0; group b: tpr 0.75, fpr 0.5 -> gaps 0.25 and 0.5
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0] * 2)
    predicted = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 0, 0])
    groups = pd.DataFrame({"group": ["a"] * 8 + ["b"] * 8})
    found = fairness_report(groups, "group", Predictions("binary", y, predicted))
    assert found["equalized_odds_difference"] == pytest.approx(0.5)
    assert found["demographic_parity_difference"] == pytest.approx(0.625 - 0.5)
    assert found["by_group"]["b"]["true_positive_rate"] == pytest.approx(0.75)


def test_a_regressor_gets_error_metrics_by_sensitive_group(
    sqlite_workspace: loopml.Workspace,
) -> None:
    from tests.evaluation._samples import regression_frame, regression_model

    frame = regression_frame()
    frame["group"] = np.where(frame["size"] > 0, "big", "small")
    model = regression_model(frame)
    fairness = sqlite_workspace.evaluate(model, frame, "price", sensitive="group", **FAST).fairness
    assert fairness is not None
    assert set(fairness["by_group"]) == {"big", "small"}
    maes = [group["mae"] for group in fairness["by_group"].values()]
    assert fairness["mae_difference"] == pytest.approx(max(maes) - min(maes))


def test_fairness_of_a_multiclass_model_points_to_slices(
    sqlite_workspace: loopml.Workspace,
) -> None:
    from sklearn.linear_model import LogisticRegression

    from loopml.errors import ValidationError

    frame = binary_frame()
    frame["plan"] = np.select([frame["tenure"] < -0.5, frame["tenure"] < 0.5], ["a", "b"], "c")
    model = LogisticRegression().fit(frame[["tenure", "spend"]], frame["plan"])
    with pytest.raises(ValidationError, match="slices="):
        sqlite_workspace.evaluate(
            model, frame.drop(columns="churned"), "plan", sensitive="gender", **FAST
        )
