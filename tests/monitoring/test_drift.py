"""The drift API: the report's views, inputs of every kind, overrides and bad input."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.data.summary import FrameSummary, summarize
from loopml.errors import ValidationError
from loopml.monitoring import drift as drift_module
from loopml.monitoring.drift import DriftReport, drift
from tests.browser import chromium_page

START = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
END = START + dt.timedelta(days=1)


def _frame(rows: int, seed: int, *, shift: float = 0.0, mix: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    shares = [0.2, 0.3, 0.5] if mix else [0.5, 0.3, 0.2]
    return pd.DataFrame(
        {
            "age": rng.normal(40.0 + shift * 10.0, 10.0, rows),
            "income": rng.lognormal(10.0, 0.5, rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows, p=shares),
            "score": rng.random(rows),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return _frame(20_000, seed=0)


def test_report_names_drifted_features_and_share(reference: pd.DataFrame) -> None:
    report = drift(reference, _frame(5_000, seed=1, shift=0.5, mix=True))
    assert report.drifted_features == ["age", "plan"]
    assert report.share == pytest.approx(2 / 4)
    frame = report.to_frame()
    assert list(frame.columns) == [
        "feature",
        "role",
        "kind",
        "test",
        "statistic",
        "p_value",
        "threshold",
        "drifted",
        "n_reference",
        "n_current",
        "missing_reference",
        "missing_current",
        "detail",
    ]
    # Large samples: effect sizes decide, plus the missing and categories checks.
    age = frame[frame.feature == "age"].set_index("test")
    assert list(age.index) == ["wasserstein", "missing"]
    assert age.loc["wasserstein", "statistic"] == pytest.approx(0.5, abs=0.05)
    assert bool(age.loc["wasserstein", "drifted"]) and age.loc["wasserstein", "threshold"] == 0.1
    plan = frame[frame.feature == "plan"].set_index("test")
    assert list(plan.index) == ["jensenshannon", "missing", "categories"]
    assert (frame.n_reference == 20_000).all() and (frame.n_current == 5_000).all()


def test_small_windows_use_corrected_p_values(reference: pd.DataFrame) -> None:
    report = drift(reference, _frame(300, seed=2, shift=0.8))
    frame = report.to_frame().set_index(["feature", "test"])
    assert report.drifted_features == ["age"]
    assert frame.loc[("age", "ks"), "p_value"] < 1e-6
    assert frame.loc[("plan", "chisquare"), "p_value"] > 0.01
    # Bonferroni across every p-value test: 4 features x missing + 3 ks + chisquare
    # + categories = 9 tests share alpha 0.005.
    assert frame.loc[("age", "ks"), "threshold"] == pytest.approx(0.005 / 9)


def test_points_carry_every_test_and_the_share(reference: pd.DataFrame) -> None:
    current = _frame(3_000, seed=3, shift=0.5)
    current["prediction"] = current.score > 0.9  # far fewer positives than the reference's
    ref = reference.assign(prediction=reference.score > 0.5)
    report = drift(ref, current, prediction="prediction")
    assert report.prediction_drifted is True
    assert "prediction" not in report.drifted_features and report.share == pytest.approx(1 / 4)
    points = report.to_points("churn", 3, START, END)
    assert {p.kind for p in points} == {"drift"}
    by_key = {(p.name, p.test): p for p in points}
    assert by_key[("share", "")].value == pytest.approx(0.25)
    assert by_key[("share", "")].detail["drifted"] == ["age"]
    assert by_key[("age", "wasserstein")].flagged is True
    assert by_key[("prediction", "jensenshannon")].flagged is True
    assert by_key[("prediction", "jensenshannon")].detail["column"] == "prediction"
    assert len(points) == len(report.tests) + 1
    json.dumps([p.detail for p in points])  # details are JSON-able


def test_a_stored_reference_summary_gives_the_same_report(reference: pd.DataFrame) -> None:
    current = _frame(4_000, seed=4, mix=True)
    stored = FrameSummary.from_dict(json.loads(json.dumps(summarize(reference).to_dict())))
    from_rows = drift(reference, current).to_frame()
    from_summary = drift(stored, current).to_frame()
    pd.testing.assert_frame_equal(from_rows, from_summary)
    window = summarize(current, like=stored)
    pd.testing.assert_frame_equal(drift(stored, window).to_frame(), from_rows)


def test_parquet_files_are_read_in_batches(
    reference: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = _frame(6_000, seed=5, shift=0.5)
    paths = []
    for part in range(3):
        path = tmp_path / f"part-{part}.parquet"
        chunk = current.iloc[part * 2_000 : (part + 1) * 2_000]
        pq.write_table(pa.Table.from_pandas(chunk, preserve_index=False), path)
        paths.append(path)
    monkeypatch.setattr(drift_module, "_PARQUET_BATCH_ROWS", 500)  # many batches per file
    from_files = drift(reference, paths).to_frame()
    from_frame = drift(reference, current).to_frame()
    pd.testing.assert_frame_equal(from_files, from_frame, check_exact=False, rtol=1e-9)


def test_tests_and_thresholds_can_be_overridden(reference: pd.DataFrame) -> None:
    current = _frame(5_000, seed=6, shift=0.05)
    assert drift(reference, current).drifted_features == []
    report = drift(reference, current, tests={"age": ["ks", "psi"]}, thresholds={"alpha": 0.05})
    age = report.to_frame().query("feature == 'age'")
    assert list(age.test) == ["ks", "psi", "missing"]
    assert report.drifted_features == ["age"]  # ks at 5,000 rows sees a 0.05-sd shift
    assert drift(reference, current, thresholds={"wasserstein": 0.04}).drifted_features == ["age"]
    every = drift(reference, current, tests="psi").to_frame()
    assert set(every[every.test != "missing"].test) == {"psi", "categories"}
    with pytest.raises(ValidationError, match="do not apply to categorical column 'plan'"):
        drift(reference, current, tests={"plan": "ks"})
    with pytest.raises(ValidationError, match="Unknown tests"):
        drift(reference, current, tests="t-test")
    with pytest.raises(ValidationError, match="Unknown threshold"):
        drift(reference, current, thresholds={"kl": 0.1})


def test_empty_windows_are_refused_by_name(reference: pd.DataFrame) -> None:
    with pytest.raises(ValidationError, match="current window is empty"):
        drift(reference, reference.iloc[:0])
    with pytest.raises(ValidationError, match="reference is empty"):
        drift(reference.iloc[:0], reference)
    with pytest.raises(ValidationError, match="current window must be"):
        drift(reference, {"age": [1.0]})  # type: ignore[arg-type]


def test_a_one_row_window_works_and_flags_nothing(reference: pd.DataFrame) -> None:
    row = pd.DataFrame({"age": [95.0], "income": [None], "plan": ["enterprise"], "score": [1.0]})
    report = drift(reference, row)
    frame = report.to_frame()
    assert report.drifted_features == [] and not frame.drifted.any()
    assert all(detail.get("too_few_values") for detail in frame.detail)
    plan = frame.set_index(["feature", "test"]).loc[("plan", "categories")]
    assert plan.detail["new"] == ["enterprise"]  # still reported


def test_all_missing_and_constant_columns(reference: pd.DataFrame) -> None:
    ref = reference.assign(empty=np.nan, constant=7.0)
    same = _frame(2_000, seed=7).assign(empty=np.nan, constant=7.0)
    report = drift(ref, same)
    frame = report.to_frame().set_index(["feature", "test"])
    assert report.drifted_features == []
    assert math.isnan(frame.loc[("empty", "ks"), "statistic"])  # no values: n = 0, small
    assert frame.loc[("empty", "missing"), "statistic"] == 0.0
    assert frame.loc[("constant", "wasserstein"), "statistic"] == 0.0
    moved = _frame(2_000, seed=7).assign(empty=1.0, constant=7.5)
    report = drift(ref, moved)
    frame = report.to_frame().set_index(["feature", "test"])
    assert report.drifted_features == ["empty", "constant"]
    assert frame.loc[("empty", "missing"), "statistic"] == -1.0  # values where none were
    # A constant reference has no spread: the distance is in the column's units.
    assert frame.loc[("constant", "wasserstein"), "statistic"] == pytest.approx(0.5, rel=0.01)


def test_a_column_missing_from_the_window_is_reported(reference: pd.DataFrame) -> None:
    report = drift(reference, _frame(2_000, seed=8).drop(columns=["income"]))
    assert report.absent_columns == ("income",)
    assert report.drifted_features == ["income"]
    (row,) = [t for t in report.tests if t.feature == "income"]
    assert (row.test, row.statistic, row.detail) == ("missing", 1.0, {"absent": True})


def test_a_new_category_is_reported_and_flagged(reference: pd.DataFrame) -> None:
    current = _frame(2_000, seed=9)
    current.loc[current.index[:200], "plan"] = "enterprise"
    report = drift(reference, current)
    categories = next(t for t in report.tests if (t.feature, t.test) == ("plan", "categories"))
    assert categories.drifted and categories.detail["new"] == ["enterprise"]
    assert categories.statistic == pytest.approx(0.1)
    assert report.drifted_features == ["plan"]


def test_text_where_the_reference_has_numbers(reference: pd.DataFrame) -> None:
    current = _frame(500, seed=10)
    as_text = current.assign(age=current.age.map(lambda v: f"{v:.3f}"))
    frame = drift(reference, as_text).to_frame()  # numbers as text are parsed
    assert frame.query("feature == 'age'").n_current.iloc[0] == 500
    words = current.assign(age=["old"] * 500)
    with pytest.raises(ValidationError, match="'age' is numeric in the reference"):
        drift(reference, words)


def test_sampling_caps_both_sides(reference: pd.DataFrame) -> None:
    report = drift(reference, _frame(5_000, seed=11), sample=1_000)
    frame = report.to_frame()
    assert (frame.n_reference == 1_000).all() and (frame.n_current == 1_000).all()


def test_domain_classifier_sees_a_joint_shift_univariate_tests_miss() -> None:
    rng = np.random.default_rng(12)

    def pairs(correlation: float, rows: int) -> pd.DataFrame:
        cov = [[1.0, correlation], [correlation, 1.0]]
        values = rng.multivariate_normal([0.0, 0.0], cov, rows)
        return pd.DataFrame({"a": values[:, 0], "b": values[:, 1]})

    reference, current = pairs(0.9, 3_000), pairs(-0.9, 3_000)
    report = drift(reference, current, multivariate=True)
    assert report.drifted_features == []
    result = report.multivariate
    assert result is not None and result.drifted and result.statistic > 0.8
    stable = drift(reference, pairs(0.9, 3_000), multivariate=True).multivariate
    assert stable is not None and not stable.drifted and stable.statistic < 0.56
    with pytest.raises(ValidationError, match="multivariate=True needs raw rows"):
        drift(summarize(reference), current, multivariate=True)


def test_html_report_draws_from_summaries(reference: pd.DataFrame) -> None:
    report = drift(reference, _frame(5_000, seed=13, shift=0.5, mix=True))
    page = report.to_html(title="Churn drift")
    assert page.startswith("<!DOCTYPE html>") and "<title>Churn drift</title>" in page
    assert "Plotly.newPlot" in page and len(page) < 5_000_000
    figures = json.loads(
        re.search(r'id="loopml-figures">(.*?)</script>', page, re.S).group(1)  # type: ignore[union-attr]
    )
    assert [len(f["data"]) for f in figures] == [2, 2, 2, 2]
    age = figures[0]["data"]
    # Display bins, not rows: at most 40 bins plus one below and one above the range.
    assert len(age[0]["x"]) <= 42 and sum(age[1]["customdata"]) == pytest.approx(1.0)
    assert report.figure("plan")["data"][0]["x"] == ["basic", "plus", "pro"]
    with pytest.raises(ValidationError, match="not in both summaries"):
        report.figure("nope")


def test_report_keeps_its_summaries(reference: pd.DataFrame) -> None:
    report = drift(reference, _frame(1_000, seed=14), columns=["age", "plan"])
    assert isinstance(report, DriftReport)
    assert list(report.reference) == ["age", "plan"] == list(report.current)
    assert report.current.rows == 1_000 and report.features == ("age", "plan")


@pytest.mark.slow
def test_html_report_draws_offline_in_chromium(reference: pd.DataFrame, tmp_path: Path) -> None:
    current = _frame(5_000, seed=15, shift=0.5, mix=True)
    current.loc[current.index[:300], "plan"] = "enterprise"
    path = tmp_path / "drift.html"
    path.write_text(drift(reference, current).to_html(), encoding="utf-8")
    with chromium_page() as session:
        session.open(path)
        session.page.wait_for_function("document.body.dataset.charts !== 'pending'", timeout=30_000)
        assert session.page.evaluate("document.body.dataset.charts") == "drawn", session.errors()
        bars = session.page.evaluate(
            """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
                .map((plot) => plot.querySelectorAll('.point path').length)"""
        )
        session.page.screenshot(path=str(tmp_path / "drift.png"), full_page=True)
        assert len(bars) == 4 and all(count > 0 for count in bars), bars
        assert session.errors() == [] and session.remote_requests() == []
