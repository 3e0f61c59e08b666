"""The demo: a versioned dataset and a few tracked scikit-learn models trained on it.

``loopml demo`` calls :func:`run_demo`; it is just as usable from Python::

    import loopml
    from loopml.demo import run_demo

    with loopml.Workspace.open() as ws:
        for result in run_demo(ws):
            print(result.run_name, result.metrics["roc_auc"])

The breast cancer data that scikit-learn ships is split once into history (70 %) and
live rows (:func:`demo_frames`); the history is ingested as the dataset
``breast-cancer`` under a contract inferred from it, and split once (:data:`DEMO_SPLIT`:
stratified, stored, reproducible) into train, valid and test parts. Each model becomes
one run in the experiment ``demo`` that records the train and valid parts as its inputs,
with its params, validation metrics (accuracy, roc_auc, f1, log_loss), a Plotly ROC curve
(``roc_curve.html``), a confusion matrix (``confusion_matrix.json``) and the fitted
model. Gradient boosting also logs its validation loss after every boosting stage, as a
metric history. :func:`tune_and_gate` registers the best hand-picked model as
``breast-cancer-classifier`` and, once a gate on the test part passes, promotes it to
``@production``; it then searches on the same train and valid parts, registers the best
model and gates it against ``@production`` on the test part (rows that no model fit on
and no choice was made with), promoting it when the gate passes and naming it
``@challenger`` when it does not. :mod:`loopml.demo_loop` serves the result and plays
the live rows through it: the closed loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from loopml.evaluation.gate import GateResult
    from loopml.registry import AliasEvent, ModelVersion
    from loopml.tracking.run import Run
    from loopml.training.search import TuneResult
    from loopml.workspace import Workspace

__all__ = [
    "DEMO_DATASET",
    "DEMO_EXPERIMENT",
    "DEMO_LIVE_SHARE",
    "DEMO_MODEL",
    "DEMO_POLICY",
    "DEMO_SPLIT",
    "DemoGate",
    "DemoModel",
    "DemoResult",
    "demo_frames",
    "demo_models",
    "run_demo",
    "tune_and_gate",
]

DEMO_EXPERIMENT = "demo"
DEMO_MODEL = "breast-cancer-classifier"
DEMO_DATASET = "breast-cancer"
_SEED = 0
DEMO_SPLIT: dict[str, Any] = {
    "by": "stratified",
    "column": "target",
    "fractions": {"train": 0.6, "valid": 0.2, "test": 0.2},
    "seed": _SEED,
}
"""The demo's one split: models fit on train and are compared on valid; the gate judges
on test, rows held out from every fit and every choice."""

DEMO_LIVE_SHARE = 0.3
"""The share of the data held back as live traffic (never trained or gated on)."""

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``(model name, models done, models in total)`` before each model and at the end."""


@dataclass(frozen=True)
class DemoModel:
    """One candidate: a run name, the params to record, and a factory for the estimator."""

    name: str
    params: dict[str, Any]
    build: Callable[[], Any]


DEMO_POLICY = {
    "checks": [
        "roc_auc >= 0.95",
        "roc_auc >= champion.roc_auc - 0.01",
        "latency.p99_ms <= 50",
    ]
}
"""The gate a candidate must pass against the production model (without a production
model yet, its checks that name no champion)."""


@dataclass(frozen=True)
class DemoGate:
    """What :func:`tune_and_gate` produced: the search, its registered version, its gate
    on held-out rows, and the registry events (promotions) along the way."""

    search: TuneResult
    verdict: GateResult
    held_out_rows: int  # the test part of DEMO_SPLIT, which the gate evaluated on
    dataset: str
    version: ModelVersion  # the tuned model's version
    baseline: ModelVersion  # the best hand-picked model's version
    events: list[AliasEvent] = field(default_factory=list)


@dataclass(frozen=True)
class DemoResult:
    """What one demo run produced."""

    run_id: str
    run_name: str
    model: str
    metrics: dict[str, float] = field(default_factory=dict)


def demo_models() -> list[DemoModel]:
    """The candidates the demo trains: three logistic regressions, a forest, boosting."""
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def logistic(c: float) -> DemoModel:
        return DemoModel(
            name=f"logreg-C{c:g}",
            params={"model": "logistic_regression", "C": c, "scaler": "standard"},
            build=lambda: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)),
        )

    forest = {"n_estimators": 200, "max_depth": 8, "min_samples_leaf": 2}
    boosting = {"n_estimators": 150, "learning_rate": 0.1, "max_depth": 3, "subsample": 0.8}
    return [
        logistic(0.01),
        logistic(1.0),
        logistic(100.0),
        DemoModel(
            name="random-forest",
            params={"model": "random_forest", **forest},
            build=lambda: RandomForestClassifier(**forest, random_state=_SEED, n_jobs=1),
        ),
        DemoModel(
            name="gradient-boosting",
            params={"model": "gradient_boosting", **boosting},
            build=lambda: GradientBoostingClassifier(**boosting, random_state=_SEED),
        ),
    ]


def demo_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """scikit-learn's breast cancer data (569 rows) in two seeded parts: the history the
    models learn from (``breast-cancer@1``, 70 %) and the live rows no model has seen,
    which the demo's server gets as traffic."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    shuffled = frame.sample(frac=1.0, random_state=_SEED).reset_index(drop=True)
    cut = round(len(frame) * (1 - DEMO_LIVE_SHARE))
    return shuffled.iloc[:cut].reset_index(drop=True), shuffled.iloc[cut:].reset_index(drop=True)


def run_demo(
    workspace: Workspace,
    experiment: str = DEMO_EXPERIMENT,
    *,
    models: list[DemoModel] | None = None,
    on_progress: ProgressCallback | None = None,
) -> list[DemoResult]:
    """Trains each demo model as a run in ``experiment`` and returns what each scored.

    Args:
        workspace: Where the runs go.
        experiment: The experiment to log into.
        models: The candidates; :func:`demo_models` by default.
        on_progress: Told ``(name, done, total)`` before each model and once at the end.
    """
    candidates = demo_models() if models is None else models
    frame, _ = demo_frames()
    contract = workspace.data.infer_contract(frame)
    version = workspace.data.ingest(frame, name=DEMO_DATASET, contract=contract)
    parts = workspace.data.split(version, **DEMO_SPLIT)
    x_train, y_train = parts["train"].drop(columns="target"), parts["train"]["target"]
    x_valid, y_valid = parts["valid"].drop(columns="target"), parts["valid"]["target"]
    dataset_params = {
        "dataset": version.ref,
        "n_train": len(x_train),
        "n_valid": len(x_valid),
        "n_test": len(parts["test"]),
    }
    results = []
    for done, candidate in enumerate(candidates):
        if on_progress is not None:
            on_progress(candidate.name, done, len(candidates))
        with workspace.start_run(
            experiment=experiment, run_name=candidate.name, tags={"source": "loopml demo"}
        ) as run:
            run.log_params({**candidate.params, **dataset_params})
            run.log_input(version, role="train")
            run.log_input(version, role="valid")
            model = candidate.build()
            started = time.perf_counter()
            model.fit(x_train, y_train)
            fit_seconds = time.perf_counter() - started
            metrics = _log_evaluation(run, model, candidate.name, x_valid, y_valid)
            run.log_metric("fit_seconds", fit_seconds)
            if hasattr(model, "staged_predict_proba"):
                _log_stage_losses(run, model, x_valid, y_valid)
            run.log_model(model, signature=contract, input_example=x_train.head(5))
        results.append(DemoResult(run.id, candidate.name, str(candidate.params["model"]), metrics))
    if on_progress is not None:
        on_progress("done", len(candidates), len(candidates))
    return results


def _log_evaluation(
    run: Run, model: Any, name: str, x_valid: Any, y_valid: Any
) -> dict[str, float]:
    from sklearn import metrics

    probability = model.predict_proba(x_valid)[:, 1]
    predicted = (probability >= 0.5).astype(int)
    scores = {
        "accuracy": float(metrics.accuracy_score(y_valid, predicted)),
        "roc_auc": float(metrics.roc_auc_score(y_valid, probability)),
        "f1": float(metrics.f1_score(y_valid, predicted)),
        "log_loss": float(metrics.log_loss(y_valid, probability)),
    }
    run.log_metrics(scores)
    false_positive, true_positive, _ = metrics.roc_curve(y_valid, probability)
    run.log_figure(
        _roc_figure(false_positive, true_positive, name, scores["roc_auc"]), "roc_curve.html"
    )
    matrix = metrics.confusion_matrix(y_valid, predicted)
    run.log_dict(
        {"labels": ["malignant", "benign"], "matrix": matrix.tolist()}, "confusion_matrix.json"
    )
    return scores


def _log_stage_losses(run: Run, model: Any, x_valid: Any, y_valid: Any) -> None:
    """Validation log loss after each boosting stage, and the training loss, as histories."""
    from sklearn.metrics import log_loss

    for stage, probabilities in enumerate(model.staged_predict_proba(x_valid), start=1):
        run.log_metric("val_log_loss", float(log_loss(y_valid, probabilities[:, 1])), step=stage)
    for stage, loss in enumerate(getattr(model, "train_score_", []), start=1):
        run.log_metric("train_loss", float(loss), step=stage)


def _roc_figure(false_positive: Any, true_positive: Any, name: str, auc: float) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    figure.add_trace(
        go.Scatter(x=false_positive, y=true_positive, mode="lines", name=f"{name} (AUC {auc:.3f})")
    )
    figure.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dash", "color": "gray"}
        )
    )
    figure.update_layout(
        title=f"ROC curve: {name} (validation AUC {auc:.3f})",
        xaxis_title="False positive rate",
        yaxis_title="True positive rate",
        width=640,
        height=520,
        template="plotly_white",
    )
    return figure


def tune_and_gate(
    workspace: Workspace,
    results: list[DemoResult],
    experiment: str = DEMO_EXPERIMENT,
    n_trials: int = 6,
) -> DemoGate:
    """Registers the best of ``results`` and promotes it to production once gated, then
    searches the regularization of a logistic regression on the train and valid parts of
    :data:`DEMO_SPLIT`, registers the best model and gates it against production with
    :data:`DEMO_POLICY` on the test part, which neither has seen; it takes production
    when the gate passes, ``@challenger`` when it does not.
    """
    from sklearn.linear_model import LogisticRegression

    version = workspace.data.version(DEMO_DATASET)
    held_out = workspace.data.split(version, **DEMO_SPLIT)["test"]  # the stored rows again
    champion = max(results, key=lambda r: r.metrics["roc_auc"])
    baseline = workspace.registry.register(
        workspace.get_run(champion.run_id),
        name=DEMO_MODEL,
        description=f"{champion.run_name}: the best hand-picked model of the demo",
    )
    events = [_gate_and_promote(workspace, baseline, held_out)[1]]
    search = workspace.tune(
        LogisticRegression(max_iter=2000),
        space={"C": {"type": "float", "low": 1e-3, "high": 100.0, "log": True}},
        data=version,
        target="target",
        split=DEMO_SPLIT,
        n_trials=n_trials,
        metric="roc_auc",
        sampler="tpe",
        experiment=experiment,
        run_name="logreg-search",
    )
    tuned = workspace.registry.register(
        search.run, name=DEMO_MODEL, description="logistic regression, C tuned by the demo"
    )
    verdict, event = _gate_and_promote(workspace, tuned, held_out)
    events.append(event)
    return DemoGate(
        search,
        verdict,
        len(held_out),
        version.ref,
        tuned,
        baseline,
        [e for e in events if e is not None],
    )


def _gate_and_promote(
    workspace: Workspace, version: ModelVersion, held_out: pd.DataFrame
) -> tuple[GateResult, AliasEvent | None]:
    """Gates ``version`` against production (or alone, before there is one) and moves
    ``@production`` to it when the gate passes, ``@challenger`` otherwise."""
    holder = workspace.registry.model(DEMO_MODEL).aliases.get("production")
    policy = DEMO_POLICY
    if holder is None:
        policy = {"checks": [c for c in DEMO_POLICY["checks"] if "champion." not in c]}
    champion = f"models:/{DEMO_MODEL}@production" if holder is not None else None
    verdict = workspace.gate(version.uri, policy, champion=champion, data=held_out, target="target")
    alias = "production" if verdict.passed else "challenger"
    reason = "gate passed on held-out rows" if verdict.passed else "gate failed"
    return verdict, workspace.registry.promote(
        DEMO_MODEL, version.version, alias, reason=f"loopml demo: {reason}"
    )
