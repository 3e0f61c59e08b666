"""Model evaluation: loopml's ``ws.evaluate`` beside scikit-learn's own metric functions
and ``mlflow.models.evaluate``, on this machine.

    bash benchmarks/setup.sh
    benchmarks/.venv/bin/python benchmarks/evaluation.py            # 1M rows (~2 min)
    benchmarks/.venv/bin/python benchmarks/evaluation.py --quick    # 100k rows

One seeded binary classification dataset (10 numeric features, one category column)
and one fitted LogisticRegression. Timed, each from the fitted model to the metrics:

1. sklearn     predict + predict_proba, then accuracy, precision, recall, F1, ROC AUC,
               average precision, log loss and Brier score (the floor: no intervals,
               no storage);
2. loopml      ``ws.evaluate`` with the same metrics plus ECE, 200 bootstrap resamples
               for intervals, plots and storage (``robustness=False``), and again with
               slices on the category column and a sensitive column;
3. mlflow      ``mlflow.models.evaluate(model_type="classifier")`` on the model logged
               with ``mlflow.sklearn.log_model``, explainability off.

Before timing, loopml's ROC AUC, F1 and log loss must equal scikit-learn's. Progress
goes to stderr; one JSON line with every figure goes to stdout.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "1"

import argparse
import json
import math
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import say
from sklearn import metrics as sk
from sklearn.linear_model import LogisticRegression

import loopml


def make_data(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(10)})
    frame["segment"] = rng.choice(["a", "b", "c", "d"], rows)
    frame["group"] = rng.choice(["f", "m"], rows)
    frame["label"] = (frame["x0"] + 0.5 * frame["x1"] + rng.normal(size=rows) > 0).astype(int)
    return frame


def time_it(function: Callable[[], Any], repeats: int) -> list[float]:
    found = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        found.append(time.perf_counter() - start)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k rows, one repeat")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    repeats = args.repeats or (1 if args.quick else 3)

    frame = make_data(rows)
    features = [f"x{i}" for i in range(10)]
    model = LogisticRegression().fit(frame[features].iloc[:50_000], frame["label"].iloc[:50_000])
    data = frame[[*features, "segment", "group", "label"]]

    def sklearn_metrics() -> dict[str, float]:
        X = data[features]
        y = data["label"]
        predicted = model.predict(X)
        scores = model.predict_proba(X)[:, 1]
        return {
            "accuracy": sk.accuracy_score(y, predicted),
            "precision": sk.precision_score(y, predicted),
            "recall": sk.recall_score(y, predicted),
            "f1": sk.f1_score(y, predicted),
            "roc_auc": sk.roc_auc_score(y, scores),
            "pr_auc": sk.average_precision_score(y, scores),
            "log_loss": sk.log_loss(y, scores),
            "brier_score": sk.brier_score_loss(y, scores),
        }

    results: dict[str, Any] = {
        "benchmark": "evaluation",
        "rows": rows,
        "repeats": repeats,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as folder:
        ws = loopml.Workspace.open(Path(folder) / "loopml")
        with ws.start_run("bench") as run:
            run.log_model(model)
        expected = sklearn_metrics()
        check = ws.evaluate(run, data, "label", bootstrap=0, robustness=False)
        for name in ("roc_auc", "f1", "log_loss", "pr_auc"):
            if not math.isclose(check.metrics[name], expected[name], rel_tol=1e-9):
                raise SystemExit(f"loopml {name} {check.metrics[name]} != sklearn {expected[name]}")

        say(f"sklearn metric functions on {rows:,} rows ...")
        results["sklearn_seconds"] = time_it(sklearn_metrics, repeats)
        say("loopml ws.evaluate (bootstrap=200, robustness=False) ...")
        results["loopml_seconds"] = time_it(
            lambda: ws.evaluate(run, data, "label", bootstrap=200, robustness=False), repeats
        )
        say("loopml ws.evaluate (+ slices, sensitive, robustness) ...")
        results["loopml_full_seconds"] = time_it(
            lambda: ws.evaluate(
                run, data, "label", slices=["segment", "x0"], sensitive="group", robustness=True
            ),
            repeats,
        )
        ws.close()

        if not args.skip_mlflow:
            import mlflow

            mlflow.set_tracking_uri(f"sqlite:///{Path(folder) / 'mlflow.db'}")
            mlflow_data = data.drop(columns=["segment", "group"])
            # Artifacts inside the temporary folder too (by default MLflow writes ./mlruns).
            experiment = mlflow.create_experiment(
                "evaluation-benchmark", artifact_location=(Path(folder) / "artifacts").as_uri()
            )
            with mlflow.start_run(experiment_id=experiment):
                info = mlflow.sklearn.log_model(model, name="model")

                def run_mlflow() -> None:
                    mlflow.models.evaluate(
                        info.model_uri,
                        mlflow_data,
                        targets="label",
                        model_type="classifier",
                        evaluator_config={"log_model_explainability": False},
                    )

                say("mlflow.models.evaluate ...")
                results["mlflow_seconds"] = time_it(run_mlflow, repeats)

    for key in [k for k in results if k.endswith("_seconds")]:
        results[key.replace("_seconds", "_median")] = statistics.median(results[key])
    if "mlflow_median" in results:
        results["speedup_vs_mlflow"] = results["mlflow_median"] / results["loopml_median"]
    results["ratio_to_sklearn"] = results["loopml_median"] / results["sklearn_median"]
    say(json.dumps({k: v for k, v in results.items() if not k.endswith("_seconds")}, indent=1))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
