"""Model registry: loopml's ``ws.registry`` beside MLflow's registry, both on SQLite.

    bash benchmarks/setup.sh
    benchmarks/.venv/bin/python benchmarks/registry.py            # ~3 min
    benchmarks/.venv/bin/python benchmarks/registry.py --quick    # fewer versions

One fitted scikit-learn pipeline (impute + scale + one-hot + LogisticRegression, the
model ``ws.train`` builds), logged once per run. Timed, side by side:

1. register     a version from a run that already logged the model:
                loopml ``ws.registry.register(run, name=...)``;
                MLflow ``mlflow.register_model("runs:/<id>/model", name)``.
2. log+register the model logged and registered in one go: loopml ``run.log_model``
                then ``register``; MLflow ``mlflow.sklearn.log_model(...,
                registered_model_name=...)`` with ``pip_requirements`` given (its fast
                path) and, a few times, at its defaults (it infers requirements in a
                subprocess).
3. alias        resolving ``models:/churn@production`` to a version, warm: loopml
                ``ws.registry.get(...)``; MLflow ``client.get_model_version_by_alias``.
4. load         the aliased model ready to predict: ``loopml.models.load(...)`` (verified
                against its manifest) and ``mlflow.pyfunc.load_model(...)``.

Progress goes to stderr; one JSON line with every figure goes to stdout.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "1"
# MLflow 3.17 saves scikit-learn models with skops by default, which refuses this pipeline
# ("untrusted types: numpy.dtype"); cloudpickle, its earlier default, needs this to load.
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"

import argparse
import importlib.metadata
import json
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
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import loopml

TARGETS = {"register_speedup_vs_mlflow_fast_path_min": 10.0, "alias_median_ms_max": 0.5}


def make_model(rows: int = 5_000) -> tuple[Pipeline, pd.DataFrame]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(8)})
    frame["plan"] = rng.choice(["basic", "plus", "pro"], rows)
    label = (frame["x0"] + rng.normal(size=rows) > 0).astype(int)
    numbers = [f"x{i}" for i in range(8)]
    pipeline = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(), StandardScaler()), numbers),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
            ]
        ),
        LogisticRegression(max_iter=500),
    )
    return pipeline.fit(frame, label), frame


def timed(function: Callable[[], Any], repeats: int) -> list[float]:
    found = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        found.append(time.perf_counter() - start)
    return found


def summary(seconds: list[float], scale: float = 1000.0) -> dict[str, float]:
    values = sorted(s * scale for s in seconds)
    return {
        "median": statistics.median(values),
        "p10": values[len(values) // 10],
        "p90": values[min(len(values) - 1, (9 * len(values)) // 10)],
        "n": len(values),
    }


def bench_loopml(
    root: Path, model: Pipeline, frame: pd.DataFrame, n: int, lookups: int
) -> dict[str, Any]:
    ws = loopml.Workspace.open(root / "loopml")
    example = frame.head(5)
    runs = []
    for _ in range(n):
        with ws.start_run("bench") as run:
            run.log_model(model, input_example=example)
        runs.append(run)
    register: list[float] = []
    for run in runs:
        start = time.perf_counter()
        ws.registry.register(run, name="churn")
        register.append(time.perf_counter() - start)

    def log_and_register() -> None:
        with ws.start_run("bench") as run:
            run.log_model(model, input_example=example)
        ws.registry.register(run, name="churn-logged")

    log_register = timed(log_and_register, max(5, n // 4))
    ws.registry.promote("churn", 1, "staging")
    ws.registry.get("models:/churn@staging")  # warm
    alias = timed(lambda: ws.registry.get("models:/churn@staging"), lookups)
    loopml.models.load("models:/churn@staging", workspace=ws)  # the bundle cached locally
    load = timed(lambda: loopml.models.load("models:/churn@staging", workspace=ws), 20)
    predictions = loopml.models.load("models:/churn@staging", workspace=ws).predict(frame.head(100))
    ws.close()
    return {
        "register_ms": summary(register),
        "log_and_register_ms": summary(log_register),
        "alias_ms": summary(alias),
        "load_ms": summary(load),
        "predictions": [int(p) for p in predictions[:5]],
    }


def bench_mlflow(
    root: Path, model: Pipeline, frame: pd.DataFrame, n: int, lookups: int, defaults: int
) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_experiment("bench")
    requirements = [
        f"{name}=={importlib.metadata.version(name)}"
        for name in ("scikit-learn", "numpy", "scipy", "pandas", "joblib")
    ]
    example = frame.head(5)
    run_ids = []
    for _ in range(n):
        with mlflow.start_run() as run:
            mlflow.sklearn.log_model(
                model,
                name="model",
                pip_requirements=requirements,
                input_example=example,
                serialization_format="cloudpickle",
            )
        run_ids.append(run.info.run_id)
    register = []
    for run_id in run_ids:
        start = time.perf_counter()
        mlflow.register_model(f"runs:/{run_id}/model", "churn")
        register.append(time.perf_counter() - start)

    def log_and_register(pip: list[str] | None) -> Callable[[], None]:
        def go() -> None:
            with mlflow.start_run():
                mlflow.sklearn.log_model(
                    model,
                    name="model",
                    registered_model_name="churn-logged",
                    pip_requirements=pip,
                    input_example=example,
                    serialization_format="cloudpickle",
                )

        return go

    fast = timed(log_and_register(requirements), max(5, n // 4))
    slow = timed(log_and_register(None), defaults)
    client = MlflowClient()
    client.set_registered_model_alias("churn", "staging", "1")
    client.get_model_version_by_alias("churn", "staging")
    alias = timed(lambda: client.get_model_version_by_alias("churn", "staging"), lookups)
    mlflow.pyfunc.load_model("models:/churn@staging")
    load = timed(lambda: mlflow.pyfunc.load_model("models:/churn@staging"), 20)
    predictions = mlflow.pyfunc.load_model("models:/churn@staging").predict(frame.head(100))
    return {
        "version": mlflow.__version__,
        "register_ms": summary(register),
        "log_and_register_fast_ms": summary(fast),
        "log_and_register_defaults_ms": summary(slow),
        "alias_ms": summary(alias),
        "load_ms": summary(load),
        "predictions": [int(p) for p in predictions[:5]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 versions, 200 lookups")
    parser.add_argument("--versions", type=int, default=None)
    parser.add_argument("--lookups", type=int, default=None)
    parser.add_argument("--defaults", type=int, default=3, help="MLflow default log_model calls")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    n = args.versions or (20 if args.quick else 100)
    lookups = args.lookups or (200 if args.quick else 2000)
    model, frame = make_model()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        say(f"loopml: {n} runs, then register each ...")
        ours = bench_loopml(root, model, frame, n, lookups)
        say(f"mlflow: {n} runs, then register each ...")
        theirs = bench_mlflow(root, model, frame, n, lookups, args.defaults)
    assert ours["predictions"] == theirs["predictions"], "both sides must load the same model"
    speedup_register = theirs["register_ms"]["median"] / ours["register_ms"]["median"]
    speedup_fast = theirs["log_and_register_fast_ms"]["median"] / ours["register_ms"]["median"]
    result = {
        "benchmark": "registry",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_start": load_before,
            "load_end": os.getloadavg(),
        },
        "versions": n,
        "lookups": lookups,
        "loopml": ours,
        "mlflow": theirs,
        "ratios": {
            "register_vs_mlflow_register_model": speedup_register,
            "register_vs_mlflow_fast_log_model": speedup_fast,
            "log_and_register_vs_mlflow_fast": theirs["log_and_register_fast_ms"]["median"]
            / ours["log_and_register_ms"]["median"],
            "alias": theirs["alias_ms"]["median"] / ours["alias_ms"]["median"],
            "load": theirs["load_ms"]["median"] / ours["load_ms"]["median"],
        },
        "targets": {
            "register_speedup_vs_mlflow_fast_path": {
                "need": TARGETS["register_speedup_vs_mlflow_fast_path_min"],
                "got": speedup_fast,
                "met": speedup_fast >= TARGETS["register_speedup_vs_mlflow_fast_path_min"],
            },
            "alias_median_ms": {
                "need": TARGETS["alias_median_ms_max"],
                "got": ours["alias_ms"]["median"],
                "met": ours["alias_ms"]["median"] <= TARGETS["alias_median_ms_max"],
            },
        },
    }
    line = json.dumps(result)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
