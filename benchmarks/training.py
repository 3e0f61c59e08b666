"""Training overhead: ``ws.train`` against a bare scikit-learn fit of the same model.

    .venv/bin/python benchmarks/training.py            # 1,000,000 rows, 5 repeats (~1 min)
    .venv/bin/python benchmarks/training.py --quick    # 100,000 rows, 3 repeats

Both sides train the same scikit-learn Pipeline (loopml's default preprocessing, built
by the same code, in front of a LogisticRegression) on the same in-memory DataFrame
(6 numeric columns, 2 text categories, a bool target) and deliver the same thing: a
model fit on a stratified 80 % and scored on the other 20 %.

- bare:    ``train_test_split(stratify=y)``, ``pipeline.fit``, one ``predict_proba``
           and accuracy, f1, roc_auc and log_loss from ``sklearn.metrics``;
- fit:     the bare ``pipeline.fit`` alone on an 80 % part split beforehand (no split,
           no scoring timed): the strictest reference, delivering less than the others;
- loopml:  ``ws.train(LogisticRegression(), data=frame, target="churned")``: the checks,
           the split, the fit, the same four metrics, and the run with its params,
           metrics and stored model, in a SQLite workspace opened before the timings.

Repeats alternate which side goes first; medians are compared. Progress goes to
stderr; one JSON line with every figure goes to stdout. The target is an overhead of at
most 5 % of the bare wall time.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

TARGET_OVERHEAD = 0.05


def make_frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    columns: dict[str, Any] = {f"x{i}": rng.normal(size=rows) for i in range(6)}
    columns["plan"] = rng.choice(["basic", "pro", "team"], rows)
    columns["region"] = rng.choice(list("abcdefgh"), rows)
    score = columns["x0"] + 0.5 * columns["x1"] + (columns["plan"] == "basic")
    columns["churned"] = score + rng.normal(size=rows) > 0.5
    return pd.DataFrame(columns)


def bare(frame: pd.DataFrame, score: bool = True) -> dict[str, float]:
    from sklearn import metrics
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline

    from loopml.training._preprocess import build_preprocessor, column_kinds

    features = [c for c in frame.columns if c != "churned"]
    pipeline = Pipeline(
        [
            ("preprocess", build_preprocessor(column_kinds(frame, features, None))),
            ("model", LogisticRegression()),
        ]
    )
    if not score:  # ``frame`` is the train part already
        pipeline.fit(frame[features], frame["churned"])
        return {}
    x_train, x_valid, y_train, y_valid = train_test_split(
        frame[features], frame["churned"], test_size=0.2, stratify=frame["churned"],
        random_state=0,
    )  # fmt: skip
    pipeline.fit(x_train, y_train)
    probabilities = pipeline.predict_proba(x_valid)
    predicted = pipeline.classes_[probabilities.argmax(axis=1)]
    return {
        "accuracy": metrics.accuracy_score(y_valid, predicted),
        "f1": metrics.f1_score(y_valid, predicted),
        "roc_auc": metrics.roc_auc_score(y_valid, probabilities[:, 1]),
        "log_loss": metrics.log_loss(y_valid, probabilities),
    }


def with_loopml(ws: Any, frame: pd.DataFrame) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression

    result = ws.train(LogisticRegression(), data=frame, target="churned")
    metrics: dict[str, float] = result.metrics
    return metrics


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 3 repeats")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    options = parser.parse_args()
    rows = options.rows or (100_000 if options.quick else 1_000_000)
    repeats = options.repeats or (3 if options.quick else 5)
    frame = make_frame(rows)
    import loopml  # imported, opened and warmed up outside the timings, as in any session

    folder = tempfile.TemporaryDirectory()
    ws = loopml.Workspace.open(folder.name)
    with_loopml(ws, frame.head(1000))
    from sklearn.model_selection import train_test_split

    train_part = train_test_split(frame, test_size=0.2, stratify=frame["churned"], random_state=0)[
        0
    ]
    samples: dict[str, list[float]] = {"bare": [], "fit": [], "loopml": []}
    sides: dict[str, Callable[[], Any]] = {
        "bare": lambda: bare(frame),
        "fit": lambda: bare(train_part, score=False),
        "loopml": lambda: with_loopml(ws, frame),
    }
    for repeat in range(repeats):
        order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
        for name in order:
            samples[name].append(timed(sides[name]))
            print(
                f"repeat {repeat + 1}/{repeats} {name}: {samples[name][-1]:.3f}s", file=sys.stderr
            )
    ws.close()
    folder.cleanup()
    medians = {name: statistics.median(values) for name, values in samples.items()}
    overhead = medians["loopml"] / medians["bare"] - 1
    print(
        json.dumps(
            {
                "benchmark": "training",
                "rows": rows,
                "repeats": repeats,
                "model": "Pipeline(loopml default preprocessing, LogisticRegression())",
                "median_seconds": medians,
                "samples_seconds": samples,
                "overhead_vs_bare_split_fit_score": round(overhead, 4),
                "overhead_vs_fit_only_same_rows": round(medians["loopml"] / medians["fit"] - 1, 4),
                "target_overhead_max": TARGET_OVERHEAD,
                "meets_target": overhead <= TARGET_OVERHEAD,
                "loopml": loopml.__version__,
                "python": platform.python_version(),
                "machine": platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
