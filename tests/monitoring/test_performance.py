"""Windowed performance from delayed labels: metrics, intervals, coverage, label joins."""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

import loopml
from loopml.errors import ValidationError
from loopml.monitoring.performance import join_labels, performance, performance_from_log
from loopml.serving.predlog import PredictionLog

START = pd.Timestamp("2026-03-01", tz="UTC")


def binary_frame(
    n: int = 3000, hours: float = 3, seed: int = 0, flip_from: float | None = None
) -> pd.DataFrame:
    """A scored binary classifier's log: ~10% of labels disagree with the prediction.

    With ``flip_from`` (hours), labels of region "a" are inverted from then on.
    """
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.uniform(0, hours * 3600, n))
    score = rng.uniform(size=n)
    prediction = (score > 0.5).astype(int)
    truth = np.where(rng.uniform(size=n) < score, 1, 0)  # calibrated scores
    region = rng.choice(["a", "b"], size=n)
    if flip_from is not None:
        flipped = (seconds >= flip_from * 3600) & (region == "a")
        truth = np.where(flipped, 1 - truth, truth)
    return pd.DataFrame(
        {
            "time": START + pd.to_timedelta(seconds, unit="s"),
            "region": region,
            "prediction": prediction,
            "proba_0": 1 - score,
            "proba_1": score,
            "label": truth,
        }
    )


def window_rows(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    inside = (frame["time"] >= start) & (frame["time"] < end)
    return frame[inside & frame["label"].notna()]


def test_binary_windows_agree_with_sklearn() -> None:
    frame = binary_frame()
    frame.loc[frame.index % 3 == 0, "label"] = np.nan  # a third not labelled yet
    report = performance(frame, window="1h", resamples=50)

    assert report.task == "binary"
    assert [w.start for w in report.windows] == [START + pd.Timedelta(hours=h) for h in range(3)]
    for w in report.windows:
        rows = window_rows(frame, pd.Timestamp(w.start), pd.Timestamp(w.end))
        y, predicted, score = rows["label"].astype(int), rows["prediction"], rows["proba_1"]
        assert w.labelled == len(rows)
        expected = {
            "accuracy": skm.accuracy_score(y, predicted),
            "precision": skm.precision_score(y, predicted),
            "recall": skm.recall_score(y, predicted),
            "f1": skm.f1_score(y, predicted),
            "roc_auc": skm.roc_auc_score(y, score),
            "pr_auc": skm.average_precision_score(y, score),
            "log_loss": skm.log_loss(y, score),
            "brier_score": skm.brier_score_loss(y, score),
        }
        for name, value in expected.items():
            assert w.metrics[name] == pytest.approx(value, abs=1e-9), name


def test_multiclass_and_regression_windows_agree_with_sklearn() -> None:
    rng = np.random.default_rng(1)
    n = 1200
    times = START + pd.to_timedelta(np.sort(rng.uniform(0, 7200, n)), unit="s")
    proba = rng.dirichlet([1, 1, 1], size=n)
    classes = np.array(["cat", "dog", "eel"])
    truth = np.array([rng.choice(classes, p=p) for p in proba])
    multiclass = pd.DataFrame(
        {"time": times, "prediction": classes[proba.argmax(axis=1)], "label": truth}
        | {f"proba_{c}": proba[:, i] for i, c in enumerate(classes)}
    )
    report = performance(multiclass, window="1h", resamples=0)
    assert report.task == "multiclass" and report.classes == ["cat", "dog", "eel"]
    for w in report.windows:
        rows = window_rows(multiclass, pd.Timestamp(w.start), pd.Timestamp(w.end))
        scores = rows[[f"proba_{c}" for c in classes]].to_numpy()
        assert w.metrics["accuracy"] == pytest.approx(
            skm.accuracy_score(rows["label"], rows["prediction"])
        )
        assert w.metrics["f1"] == pytest.approx(
            skm.f1_score(rows["label"], rows["prediction"], average="macro")
        )
        assert w.metrics["roc_auc"] == pytest.approx(
            skm.roc_auc_score(rows["label"], scores, multi_class="ovr", labels=classes)
        )
        assert w.intervals == {}  # resamples=0

    value = rng.normal(10, 3, n)
    regression = pd.DataFrame(
        {"time": times, "prediction": value + rng.normal(0, 1, n), "label": value}
    )
    report = performance(regression, window="1h", resamples=100)
    assert report.task == "regression"
    for w in report.windows:
        rows = window_rows(regression, pd.Timestamp(w.start), pd.Timestamp(w.end))
        assert w.metrics["mae"] == pytest.approx(
            skm.mean_absolute_error(rows["label"], rows["prediction"])
        )
        assert w.metrics["rmse"] == pytest.approx(
            math.sqrt(skm.mean_squared_error(rows["label"], rows["prediction"]))
        )
        assert w.metrics["r2"] == pytest.approx(skm.r2_score(rows["label"], rows["prediction"]))
        low, high = w.intervals["rmse"]
        assert low <= w.metrics["rmse"] <= high


def test_intervals_contain_the_estimate_and_narrow_with_more_rows() -> None:
    widths = {}
    for n in (200, 20_000):
        report = performance(binary_frame(n=n, hours=1, seed=2), window="1h", resamples=200)
        (w,) = report.windows
        for name in ("accuracy", "f1", "roc_auc"):
            low, high = w.intervals[name]
            assert low <= w.metrics[name] <= high, name
        widths[n] = w.intervals["accuracy"][1] - w.intervals["accuracy"][0]
    # The width of a proportion's interval shrinks as 1/sqrt(n): 100x rows, ~10x narrower.
    assert widths[20_000] < widths[200] / 5


def test_windows_of_rows_hold_that_many_predictions() -> None:
    frame = binary_frame(n=1050)
    report = performance(frame, window=500, resamples=0)
    assert [w.rows for w in report.windows] == [500, 500, 50]
    ordered = frame.sort_values("time")
    first = ordered.iloc[:500]
    assert report.windows[0].metrics["accuracy"] == pytest.approx(
        skm.accuracy_score(first["label"], first["prediction"])
    )
    assert report.windows[1].start == ordered["time"].iloc[500].floor("us")  # datetimes hold µs
    assert report.windows[0].end == report.windows[1].start


def test_incomplete_and_unlabelled_windows_are_marked() -> None:
    frame = binary_frame(n=900)
    hour = (frame["time"] - START) // pd.Timedelta(hours=1)
    rng = np.random.default_rng(3)
    # Window 0 fully labelled, window 1 a fifth labelled, window 2 none yet.
    keep = (hour == 0) | ((hour == 1) & (rng.uniform(size=len(frame)) < 0.2))
    frame.loc[~keep, "label"] = np.nan
    report = performance(frame, window="1h", min_coverage=0.5, resamples=20)

    full, partial, empty = report.windows
    assert (full.coverage, full.complete) == (1.0, True)
    assert partial.coverage == pytest.approx(((hour == 1) & keep).sum() / (hour == 1).sum())
    assert 0.1 < partial.coverage < 0.3 and not partial.complete
    assert "accuracy" in partial.metrics  # an incomplete window still reports
    assert (empty.labelled, empty.coverage, empty.complete, empty.metrics) == (0, 0.0, False, {})

    table = report.to_frame()
    assert list(table.columns) == [
        "start",
        "end",
        "metric",
        "value",
        "low",
        "high",
        "n",
        "labelled",
        "coverage",
        "complete",
    ]
    assert table[table["start"] == empty.start]["metric"].tolist() == ["coverage"]
    accuracy = table[(table["metric"] == "accuracy") & (table["start"] == partial.start)].iloc[0]
    assert accuracy["value"] == partial.metrics["accuracy"]
    assert accuracy["low"] <= accuracy["value"] <= accuracy["high"]
    assert (accuracy["n"], accuracy["labelled"], accuracy["complete"]) == (
        partial.rows,
        partial.labelled,
        False,
    )


def test_points_carry_interval_coverage_and_completeness() -> None:
    frame = binary_frame(n=400, hours=2)
    frame.loc[frame["time"] >= START + pd.Timedelta(hours=1), "label"] = np.nan
    points = performance(frame, window="1h", resamples=50).to_points("churn", 3)

    by_key = {(p.start, p.name): p for p in points}
    first, second = START.to_pydatetime(), (START + pd.Timedelta(hours=1)).to_pydatetime()
    accuracy = by_key[(first, "accuracy")]
    assert (accuracy.kind, accuracy.model, accuracy.version, accuracy.key) == (
        "performance",
        "churn",
        3,
        "performance.accuracy",
    )
    assert accuracy.detail["low"] <= accuracy.value <= accuracy.detail["high"]
    assert accuracy.detail["complete"] is True and accuracy.detail["coverage"] == 1.0
    assert by_key[(second, "coverage")].value == 0.0
    assert {p.name for p in points if p.start == second} == {"coverage"}


def test_label_concept_flip_drops_accuracy_in_later_windows() -> None:
    frame = binary_frame(n=6000, hours=6, seed=4, flip_from=3)
    accuracy = [w.metrics["accuracy"] for w in performance(frame, resamples=0).windows]
    before, after = np.mean(accuracy[:3]), np.mean(accuracy[3:])
    assert min(accuracy[:3]) > 0.7
    assert max(accuracy[3:]) < 0.6
    assert before - after > 0.2


# -- bad input -----------------------------------------------------------------------------
def test_empty_frame_gives_a_report_without_windows() -> None:
    empty = binary_frame().iloc[:0]
    report = performance(empty)
    assert report.windows == [] and report.to_points("m") == []
    assert report.to_frame().empty


def test_a_window_of_one_row_reports_what_one_row_can() -> None:
    frame = binary_frame(n=1, hours=0.5)
    (w,) = performance(frame, resamples=50).windows
    right = float(frame["label"].iloc[0] == frame["prediction"].iloc[0])
    assert (w.rows, w.labelled, w.metrics["accuracy"]) == (1, 1, right)
    assert w.intervals["accuracy"] == (right, right)
    assert math.isnan(w.metrics["roc_auc"])  # one class: undefined...
    names = {p.name for p in performance(frame).to_points("m")}
    assert "roc_auc" not in names and "accuracy" in names  # ...and left out of the series


def test_labels_of_another_type_than_the_predictions_are_refused() -> None:
    frame = binary_frame(n=50)
    frame["label"] = np.where(frame["label"] == 1, "yes", "no")
    with pytest.raises(ValidationError, match="labels are text but the predictions are numbers"):
        performance(frame)

    regression = pd.DataFrame(
        {"time": [START] * 3, "prediction": [1.5, 2.5, 3.5], "label": ["a", "b", "c"]}
    )
    with pytest.raises(ValidationError, match="model is a regressor"):
        performance(regression)

    frame = binary_frame(n=50)
    frame.loc[0, "label"] = 7  # a class the probabilities never mention
    with pytest.raises(ValidationError, match=r"Label\(s\) \['7'\] are not among"):
        performance(frame)
    with pytest.raises(ValidationError, match=r"Prediction\(s\) \['1'\] are not among"):
        performance(binary_frame(n=50).assign(label=0), classes=[0, 2])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0}, "at least 1 row"),
        ({"window": "soon"}, "duration such as"),
        ({"window": "-1h"}, "positive duration"),
        ({"metrics": ["auc"]}, r"Unknown metric\(s\) \['auc'\]"),
        ({"min_coverage": 1.5}, r"share in \[0, 1\]"),
        ({"task": "ranking"}, "task must be one of"),
    ],
)
def test_bad_settings_say_what_to_pass(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        performance(binary_frame(n=20), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("window", ["1d", "1D", "24h", "1 day", dt.timedelta(days=1)])
def test_durations_are_spelled_as_people_write_them(window: object) -> None:
    report = performance(binary_frame(n=100), window=window, resamples=0)  # type: ignore[arg-type]
    assert [(w.start, w.end - w.start) for w in report.windows] == [(START, dt.timedelta(days=1))]


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValidationError, match="lack the column"):
        performance(binary_frame(n=20).drop(columns=["label"]))


# -- joining labels ----------------------------------------------------------------------------
def test_join_by_request_id_counts_labels_for_unknown_requests() -> None:
    predictions = pd.DataFrame(
        {
            "request_id": ["r1", "r1", "r2"],
            "row": [0, 1, 0],
            "time": [START] * 3,
            "prediction": [1, 0, 1],
        }
    )
    labels = pd.DataFrame(
        {"request_id": ["r1", "r2", "r9", "r1"], "row": [1, 0, 0, 1], "label": [1, 1, 0, 0]}
    )
    joined = join_labels(predictions, labels)
    assert joined.frame["label"].tolist()[1:] == [0, 1]  # r1/1: the last label given wins
    assert math.isnan(joined.frame["label"].iloc[0])
    assert (joined.matched_labels, joined.unmatched_labels) == (2, 1)
    assert performance(joined, resamples=0).unmatched_labels == 1


def test_join_by_entity_uses_the_latest_prediction_before_the_label() -> None:
    hours = [pd.Timedelta(hours=h) for h in range(10)]
    predictions = pd.DataFrame(
        {
            "customer": ["c1", "c1", "c2", "c3"],
            "time": [START, START + hours[5], START + hours[1], START + hours[2]],
            "prediction": [1, 0, 1, 1],
        }
    )
    labels = pd.DataFrame(
        {
            "entity": ["c1", "c1", "c2", "c2", "c3", "c4"],
            "time": [
                START + hours[3],
                START + hours[6],
                START + hours[4],
                START + hours[8],
                START + hours[9],
                START + hours[1],
            ],
            "label": [1, 1, 0, 1, 0, 1],
            "request_id": ["x"] * 6,
        }
    )
    joined = join_labels(predictions, labels, on="entity", entity_column="customer")
    # c1's first prediction gets the 3h label, its second the 6h one; c2's prediction the
    # first label after it (4h; the 8h one is left over); c3's and c4's labels match.
    assert joined.frame["label"].tolist() == [1, 1, 0, 0]
    assert joined.frame["label_time"].iloc[1] == START + hours[6]
    assert (joined.matched_labels, joined.unmatched_labels) == (4, 2)

    within = join_labels(predictions, labels, on="entity", entity_column="customer", tolerance="3h")
    # c3's label came 7 hours after its prediction: too late with a 3-hour tolerance.
    assert within.frame["label"].iloc[:3].tolist() == [1, 1, 0]
    assert math.isnan(within.frame["label"].iloc[3])
    assert within.unmatched_labels == 3


def test_join_settings_are_checked() -> None:
    frame = pd.DataFrame({"request_id": ["r"], "row": [0], "time": [START], "prediction": [1]})
    labels = pd.DataFrame({"request_id": ["r"], "label": [1]})
    with pytest.raises(ValidationError, match="entity_column"):
        join_labels(frame, labels, on="entity")
    with pytest.raises(ValidationError, match="tolerance applies to on='entity'"):
        join_labels(frame, labels, tolerance="1h")
    with pytest.raises(ValidationError, match="on must be"):
        join_labels(frame, labels, on="time")


# -- on a real workspace ------------------------------------------------------------------------
def log_traffic(ws: loopml.Workspace, n: int, seed: int = 0) -> pd.DataFrame:
    """Logs ``n`` single-row requests of model "churn"; returns what the truth is."""
    rng = np.random.default_rng(seed)
    score = rng.uniform(size=n)
    truth = (rng.uniform(size=n) < score).astype(int)
    ids = [uuid.uuid4().hex for _ in range(n)]
    with PredictionLog(ws, flush_seconds=0.05) as log:
        for i in range(n):
            log.log(
                model="churn",
                version=1,
                request_id=ids[i],
                inputs={"x": [score[i]]},
                predictions=[int(score[i] > 0.5)],
                probabilities=[[1 - score[i], score[i]]],
                classes=[0, 1],
                latency_ms=1.0,
            )
    return pd.DataFrame({"request_id": ids, "label": truth, "model": "churn"})


def test_labels_arriving_later_complete_a_window(sqlite_workspace: loopml.Workspace) -> None:
    ws = sqlite_workspace
    truth = log_traffic(ws, 200)
    ws.log_feedback_frame(truth.iloc[:100])  # the first window's labels...
    ws.log_feedback_frame(truth.iloc[100:120])  # ...and a fifth of the second's

    first, second = performance_from_log(ws, "churn", window=100, resamples=0).windows
    assert (first.coverage, first.complete) == (1.0, True)
    assert (second.labelled, second.complete) == (20, False)

    ws.log_feedback_frame(truth.iloc[120:170])  # days later, more outcomes
    report = performance_from_log(ws, "churn", window=100, resamples=0)
    second = report.windows[1]
    assert (second.labelled, second.coverage, second.complete) == (70, 0.7, True)
    logged = ws.predictions("churn").merge(truth, on="request_id").iloc[100:170]
    assert second.metrics["accuracy"] == pytest.approx(
        skm.accuracy_score(logged["label"], logged["prediction"])
    )
    assert report.unmatched_labels == 0


def test_labels_for_unknown_requests_are_kept_and_counted(
    sqlite_workspace: loopml.Workspace,
) -> None:
    ws = sqlite_workspace
    truth = log_traffic(ws, 30)
    strays = pd.DataFrame(
        {"request_id": ["ghost-1", "ghost-2", "ghost-3"], "label": [1, 0, 1], "model": "churn"}
    )
    ws.log_feedback_frame(pd.concat([truth, strays]))

    report = performance_from_log(ws, "churn", window=100, resamples=0)
    assert report.unmatched_labels == 3
    assert report.windows[0].labelled == 30
    assert set(strays["request_id"]) <= set(ws.feedback("churn")["request_id"])  # kept
    joined = join_labels(ws.predictions("churn"), ws.feedback())
    assert (joined.matched_labels, joined.unmatched_labels) == (30, 3)


def test_duplicate_feedback_changes_nothing(workspace: loopml.Workspace) -> None:
    ws = workspace  # on every metadata backend: the upsert is the store's
    truth = log_traffic(ws, 120, seed=5)
    ws.log_feedback_frame(truth.iloc[:80])
    before = performance_from_log(ws, "churn", window=60, resamples=100).to_frame()

    ws.log_feedback_frame(truth.iloc[:80])  # a retried delivery
    for request_id, label in zip(truth["request_id"][:10], truth["label"][:10], strict=True):
        ws.log_feedback(request_id, label, model="churn")
    after = performance_from_log(ws, "churn", window=60, resamples=100).to_frame()

    pd.testing.assert_frame_equal(before, after)
    assert len(ws.feedback("churn")) == 80


def test_version_filter_does_not_count_other_versions_labels_as_unmatched(
    sqlite_workspace: loopml.Workspace,
) -> None:
    ws = sqlite_workspace
    truth = log_traffic(ws, 10)
    with PredictionLog(ws, flush_seconds=0.05) as log:
        log.log(
            model="churn",
            version=2,
            request_id="v2",
            inputs={"x": [0.9]},
            predictions=[1],
            latency_ms=1.0,
        )
    ws.log_feedback_frame(
        pd.concat([truth, pd.DataFrame({"request_id": ["v2"], "label": [1], "model": ["churn"]})])
    )
    report = performance_from_log(ws, "churn", version=1, window=100, resamples=0)
    assert (report.windows[0].labelled, report.unmatched_labels) == (10, 0)


def test_labels_of_predictions_before_since_are_not_unmatched(
    sqlite_workspace: loopml.Workspace,
) -> None:
    ws = sqlite_workspace
    before = log_traffic(ws, 20)
    time.sleep(0.01)
    after = log_traffic(ws, 15, seed=1)
    ws.log_feedback_frame(pd.concat([before, after]))
    logged = ws.predictions("churn")
    since = logged[logged["request_id"].isin(after["request_id"])]["time"].min().floor("ms")
    assert len(ws.predictions("churn", since=since)) == 15

    report = performance_from_log(ws, "churn", since=since, window=100, resamples=0)
    assert (report.windows[0].labelled, report.unmatched_labels) == (15, 0)


def test_an_empty_log_gives_an_empty_report(sqlite_workspace: loopml.Workspace) -> None:
    sqlite_workspace.log_feedback("ghost", 1, model="churn")
    report = performance_from_log(sqlite_workspace, "churn")
    assert (report.windows, report.unmatched_labels) == ([], 1)
