"""Streaming change detection on error streams: ADWIN, DDM, Page-Hinkley."""

from __future__ import annotations

import datetime as dt
import pickle

import numpy as np
import pandas as pd
import pytest

from loopml.errors import ValidationError
from loopml.monitoring.detectors import METHODS, ChangeDetector, detect_concept_drift
from loopml.monitoring.performance import LabelJoin

START = pd.Timestamp("2026-03-01", tz="UTC")
# The most rows after an abrupt jump of the error rate from 10% to 40% before each
# detector must have fired (measured medians: ADWIN ~80, DDM ~100, Page-Hinkley ~150).
DELAY_BOUND = 400


def errors(seed: int, rates: list[tuple[int, float]]) -> np.ndarray:
    """A 0/1 error stream: ``n`` rows at each error rate in turn."""
    rng = np.random.default_rng(seed)
    return np.concatenate([(rng.uniform(size=n) < rate).astype(float) for n, rate in rates])


@pytest.mark.parametrize("method", METHODS)
def test_abrupt_change_is_found_within_a_bounded_number_of_rows(method: str) -> None:
    for seed in range(5):
        stream = errors(seed, [(3000, 0.1), (2000, 0.4)])
        found = ChangeDetector(method).scan(stream)
        after = [i for i in found if i >= 3000]
        assert after and after[0] - 3000 < DELAY_BOUND, (seed, found)
        assert len(found) - len(after) <= 1, (seed, found)  # at most one false alarm before


@pytest.mark.parametrize("method", METHODS)
def test_a_stable_stream_raises_few_false_alarms(method: str) -> None:
    # 100,000 rows at a steady 10% or 40% error rate; measured: ADWIN and Page-Hinkley 0.
    alarms = [
        len(ChangeDetector(method).scan(errors(seed, [(10_000, rate)])))
        for rate in (0.1, 0.4)
        for seed in range(5)
    ]
    assert sum(alarms) <= (6 if method == "ddm" else 1), alarms


def test_a_stable_regressor_raises_no_false_alarms() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    truth = rng.normal(100.0, 20.0, n)
    frame = pd.DataFrame(
        {
            "time": START + pd.to_timedelta(np.arange(n), unit="s"),
            "prediction": truth + rng.normal(0, 5.0, n),
            "label": truth,
        }
    )
    assert detect_concept_drift(frame, methods=["adwin", "page_hinkley"], model="m") == []


@pytest.mark.parametrize("method", METHODS)
def test_pickled_state_resumes_exactly(method: str) -> None:
    stream = errors(7, [(2500, 0.1), (1500, 0.5), (2000, 0.1)])
    whole = ChangeDetector(method)
    expected = whole.scan(stream)
    assert expected  # the stream has changes to find

    first = ChangeDetector(method)
    head = first.scan(stream[:2800])
    resumed = pickle.loads(pickle.dumps(first))  # a monitor restarts mid-stream
    tail = [2800 + i for i in resumed.scan(stream[2800:])]
    assert head + tail == expected
    assert resumed.detections == expected and resumed.seen == len(stream)


def test_update_reports_the_detecting_value() -> None:
    detector = ChangeDetector("page_hinkley", threshold=5.0, min_instances=10)
    flags = [detector.update(v) for v in [0.0] * 50 + [1.0] * 30]
    assert flags.index(True) == detector.detections[0]
    assert 50 <= detector.detections[0] < 60
    assert detector.drift_detected is flags[-1]


def test_page_hinkley_watches_error_increases_only_by_default() -> None:
    falling = errors(3, [(2000, 0.5), (2000, 0.05)])
    assert ChangeDetector("page_hinkley").scan(falling) == []
    assert ChangeDetector("page_hinkley", mode="both").scan(falling) != []


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("cusum",), {}, "method must be one of adwin, ddm, page_hinkley"),
        (("adwin",), {"threshold": 3}, r"Unknown parameter\(s\) \['threshold'\] for adwin"),
        (("page_hinkley",), {"mode": "sideways"}, "Invalid page_hinkley parameters"),
        (("adwin",), {"scale": 0.0}, "scale must be a positive number"),
    ],
)
def test_bad_detector_settings(args: tuple[str], kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ChangeDetector(*args, **kwargs)  # type: ignore[arg-type]


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValidationError, match="ddm reads a stream of 0"):
        ChangeDetector("ddm").update(0.5)
    with pytest.raises(ValidationError, match="finite numbers"):
        ChangeDetector("adwin").update(float("nan"))


# -- on a labelled prediction frame -----------------------------------------------------------
def flipped_frame(n: int = 6000, flip_at: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A classifier right 90% of the time, until region "a"'s labels flip at row ``flip_at``
    (error rate 10% -> 50%). Rows come shuffled: the detector must order them by time."""
    rng = np.random.default_rng(seed)
    prediction = rng.integers(0, 2, n)
    truth = np.where(rng.uniform(size=n) < 0.1, 1 - prediction, prediction)
    region = rng.choice(["a", "b"], size=n)
    flipped = (np.arange(n) >= flip_at) & (region == "a")
    frame = pd.DataFrame(
        {
            "time": START + pd.to_timedelta(np.arange(n), unit="s"),
            "model": "churn",
            "version": 2,
            "prediction": prediction,
            "label": np.where(flipped, 1 - truth, truth).astype(float),
        }
    )
    frame.loc[rng.uniform(size=n) < 0.2, "label"] = np.nan  # not labelled yet
    return frame.sample(frac=1.0, random_state=seed)


def test_concept_flip_is_found_by_every_method_soon_after_it_starts() -> None:
    frame = flipped_frame()
    points = detect_concept_drift(frame)
    flip_time = START + pd.Timedelta(seconds=3000)
    labelled = frame[frame["label"].notna()].sort_values("time")
    flip_index = int((labelled["time"] < flip_time).sum())

    for method in METHODS:
        found = [p for p in points if p.name == method]
        after = [p for p in found if pd.Timestamp(p.detail["time"]) >= flip_time]
        assert len(found) - len(after) <= 1, method  # at most one false alarm before
        first = after[0]
        assert first.detail["index"] - flip_index < DELAY_BOUND, method
        assert (first.kind, first.key, first.flagged) == ("concept", f"concept.{method}", True)
        assert (first.model, first.version) == ("churn", 2)
        row = labelled.iloc[first.detail["index"]]
        assert pd.Timestamp(first.detail["time"]) == row["time"]
        assert first.end > row["time"].to_pydatetime() >= first.start
        assert first.value > 0.25  # the recent error rate, up from ~0.1
        assert first.detail["baseline_error"] < first.value


def test_detectors_continue_across_calls() -> None:
    frame = flipped_frame(seed=1).sort_values("time")
    once = detect_concept_drift(frame, methods=["adwin"])

    detectors = [ChangeDetector("adwin")]
    early = detect_concept_drift(frame.iloc[:2500], detectors=detectors)
    detectors = pickle.loads(pickle.dumps(detectors))  # persisted between evaluations
    late = detect_concept_drift(frame.iloc[2500:], detectors=detectors)
    assert [p.detail["sample"] for p in early + late] == [p.detail["sample"] for p in once]
    assert [p.detail["time"] for p in early + late] == [p.detail["time"] for p in once]


def test_regression_errors_are_scaled_and_ddm_refused() -> None:
    rng = np.random.default_rng(2)
    n = 4000
    truth = rng.normal(1000.0, 200.0, n)
    noise = np.where(np.arange(n) < 2000, 20.0, 80.0)  # errors grow fourfold at row 2000
    frame = pd.DataFrame(
        {
            "time": START + pd.to_timedelta(np.arange(n), unit="s"),
            "prediction": truth + rng.normal(0, noise),
            "label": truth,
        }
    )
    points = detect_concept_drift(frame, methods=["adwin", "page_hinkley"], model="price")
    for method in ("adwin", "page_hinkley"):
        first = next(p for p in points if p.name == method)
        assert 2000 <= first.detail["index"] < 2000 + DELAY_BOUND, method
    with pytest.raises(ValidationError, match="ddm reads a 0/1 error stream"):
        detect_concept_drift(frame, methods=["ddm"], model="price")


def test_bad_frames() -> None:
    frame = flipped_frame(n=100)
    assert detect_concept_drift(frame.assign(label=np.nan)) == []  # nothing labelled yet
    assert detect_concept_drift(LabelJoin(frame.iloc[:0], 0, 0)) == []
    with pytest.raises(ValidationError, match="Pass model="):
        detect_concept_drift(frame.drop(columns=["model"]))
    with pytest.raises(ValidationError, match="lack the column"):
        detect_concept_drift(frame.drop(columns=["time"]))
    text = frame.assign(label=np.where(frame["label"] == 1, "yes", "no"))
    with pytest.raises(ValidationError, match="labels are text"):
        detect_concept_drift(text)


def test_points_are_dated_by_row_times() -> None:
    frame = flipped_frame()
    for point in detect_concept_drift(frame, methods=["adwin"]):
        assert point.start.tzinfo == dt.UTC and point.start < point.end
