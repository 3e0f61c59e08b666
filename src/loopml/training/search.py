"""Hyperparameter search: ``ws.tune(model, space=..., data=..., target=...)`` on Optuna.

One search is one *parent run*; each Optuna trial is a *child run* of it (the trial's
params, metrics and, with ``cv``, each fold's scores). At the end the parent gets the
best trial's params and metrics and the best params refit as its model, so the parent
can be registered like any ``ws.train`` run.

The Optuna study lives in the workspace's own database (Optuna's tables beside
loopml's), so an interrupted search resumes: the same call again (the default study
name is derived from the experiment, the model, the space and the data) continues the
study, keeps the runs of the completed trials and reuses the parent run. ``n_trials`` is
the number of finished trials (complete, pruned or failed) the study should hold;
trials left RUNNING by a process that died are marked FAIL (``loopml.interrupted``),
their runs FAILED, and their params are tried again. One search process per study at a
time is the supported use.

Trials run in this process (``executor="local"``, one at a time) or as Ray tasks
(``executor="ray"``, see :mod:`loopml.training._executors`): the driver process does
all the bookkeeping, the workers only fit and score. This module checks the arguments,
opens the study and ends the parent run; the pieces are internal modules:

    _space          the search space: declared, checked, sampled per trial
    _study          the Optuna side: storage, study name, samplers, pruners, the metric
    _tune_problem   the data, split once into the steps of every trial, and the fits
    _tune_trials    the trial loop: ask, child run, steps on the executor, report, tell
    _tune_runs      the parent run: opened or resumed, repaired, given the best trial

Storage note: Optuna's Alembic table is also called ``alembic_version``; on a loopml
database Optuna finds loopml's revision there, so it never stamps its own, and its
schema check is skipped (its ``version_info`` table still records its schema).
``tests/store/test_database.py`` compares a fresh workspace's schema, which holds no
Optuna tables; a database that ran a search holds them beside loopml's.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.errors import ValidationError
from loopml.store import RunStatus
from loopml.training import _study, _tune_runs
from loopml.training._executors import LocalExecutor, RayExecutor
from loopml.training._space import parse_space
from loopml.training._tune_problem import TuneProblem
from loopml.training._tune_trials import TrialLoop

if TYPE_CHECKING:
    import pandas as pd

    from loopml.tracking.run import Run
    from loopml.training._executors import Executor
    from loopml.training._space import SearchSpace
    from loopml.workspace import Workspace

__all__ = ["TuneResult", "tune"]

_TRAIN_OPTIONS = ("features", "split", "metrics", "params", "preprocess", "task", "run_name")


@dataclass
class TuneResult:
    """What :func:`tune` found: the parent run, the best trial and every trial."""

    run: Run
    best_params: dict[str, Any]
    best_metrics: dict[str, float]
    best_model: Any
    trials: pd.DataFrame
    study_name: str
    metric: str
    direction: str
    best_trial: int = -1
    earlier_trials: int = 0  # finished trials the study held before this call (a resume)

    def __repr__(self) -> str:
        score = self.best_metrics.get(self.metric, float("nan"))
        return (
            f"TuneResult(run={self.run.id[:8]!r}, trials={len(self.trials)}, "
            f"best {self.metric}={score:.4g}, best_params={self.best_params!r})"
        )


def tune(
    workspace: Workspace,
    model: Any,
    space: Mapping[str, Any],
    data: Any,
    target: str,
    n_trials: int = 50,
    executor: str = "local",
    metric: str | None = None,
    direction: str | None = None,
    cv: int | Mapping[str, Any] | None = None,
    sampler: Any = None,
    pruner: Any = None,
    study_name: str | None = None,
    experiment: str | None = None,
    timeout: float | None = None,
    *,
    workers: int | None = None,
    log_model: bool = True,
    **train_options: Any,
) -> TuneResult:
    """Searches ``space`` for the params of ``model`` that score best on ``data``.

    Args:
        workspace: Where the data comes from, and the runs and the study go.
        model: A scikit-learn style estimator (or a trainer function), as for ``ws.train``.
        space: The search space; see :mod:`loopml.training._space` for the format, e.g.
            ``{"C": {"type": "float", "low": 1e-3, "high": 100, "log": True},
            "penalty": ["l1", "l2"]}``.
        data: A dataset reference, DatasetVersion or DataFrame.
        target: The column to predict.
        n_trials: How many finished trials the study should hold (resumes count the
            trials of earlier attempts).
        executor: ``"local"`` (sequential, in this process) or ``"ray"``.
        metric: The metric to optimize; ``roc_auc`` (``accuracy`` for a model without
            ``predict_proba``) or ``rmse`` by default. With ``cv``, its fold mean.
        direction: ``"maximize"`` or ``"minimize"``; from the metric by default.
        cv: Cross-validation folds as for ``ws.train``; each fold's score is reported to
            the trial, so a pruner can stop a poor trial after any fold.
        sampler: An Optuna sampler, its name (``"tpe"``, ``"random"``, ``"cmaes"``,
            ``"gp"``, ``"qmc"``, ``"TPESampler"``, ...) or ``{"name": ..., **options}``;
            TPE by default. Named samplers are seeded (``seed`` option, 0 by default,
            moved on by the number of earlier trials so a resume proposes new points).
        pruner: An Optuna pruner, its name (``"median"``, ``"hyperband"``, ...) or
            ``{"name": ..., **options}``; median pruning by default (only acts with cv).
        study_name: The Optuna study; derived from the experiment, model, space and data
            by default, so the same call resumes the same study.
        experiment: The experiment of the runs; the dataset name by default.
        timeout: Seconds after which no new trial starts (running ones finish).
        workers: With Ray, how many trials run at once (the cluster's CPUs by default).
        log_model: Store the best params' model, refit, on the parent run.
        **train_options: ``features``, ``split``, ``metrics``, ``params`` (fixed params),
            ``preprocess``, ``task`` and ``run_name`` (of the parent), as for ``ws.train``.

    Raises:
        ValidationError: bad arguments, space or data (checked before any run starts).
        ConfigError: Optuna (or Ray for ``executor="ray"``) is not installed.
        TrainingError: no trial completed; the parent run ended FAILED.
    """
    unknown = sorted(set(train_options) - set(_TRAIN_OPTIONS))
    if unknown:
        raise ValidationError(
            f"Unknown tune option(s) {', '.join(unknown)}; tune also takes "
            f"{', '.join(_TRAIN_OPTIONS)}."
        )
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValidationError(f"n_trials must be a whole number of at least 1, got {n_trials!r}.")
    if executor not in ("local", "ray"):
        raise ValidationError(f"executor must be 'local' or 'ray', got {executor!r}.")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValidationError(f"workers must be a whole number of at least 1, got {workers!r}.")
    if isinstance(model, type):
        raise ValidationError(
            f"model must be an instance, got the class {model.__name__}; write "
            f"{model.__name__}() instead."
        )
    checked = parse_space(space)
    is_trainer = not hasattr(model, "fit")
    if is_trainer and not callable(model):
        raise ValidationError(
            f"model must be an estimator (with fit) or a training function, got "
            f"{type(model).__name__}."
        )
    if not is_trainer:
        _study.check_param_names(model, checked)
    optuna = _study.import_optuna()
    chosen_pruner = _study.pruner(optuna, pruner)
    _study.sampler(optuna, sampler, 0)  # a bad name fails before the study is made
    problem = TuneProblem.build(workspace, model, data, target, cv, is_trainer, train_options)
    metric, direction = _study.objective(model, problem, metric, direction)
    if experiment is None:
        version = problem.loaded.version
        experiment = version.name if version is not None else "default"
    name = study_name or _study.default_study_name(
        experiment, model, checked, problem, metric, direction
    )
    with _study.quiet(optuna):
        storage = _study.storage(workspace, optuna)
        try:
            study = optuna.create_study(
                storage=storage, study_name=name, direction=direction, load_if_exists=True
            )
            if study.direction.name.lower() != direction:
                raise ValidationError(
                    f"Study {name!r} exists and {study.direction.name.lower()}s; it cannot "
                    f"{direction}. Pass another study_name= or direction=."
                )
            study.sampler = _study.sampler(optuna, sampler, len(study.trials))
            study.pruner = chosen_pruner
            return _search(
                workspace, study, checked, problem, metric, experiment, model, n_trials,
                executor, workers, timeout, log_model, sampler, train_options.get("run_name"),
            )  # fmt: skip
        finally:
            storage.remove_session()
            storage.engine.dispose()


def _search(
    workspace: Workspace,
    study: Any,
    space: SearchSpace,
    problem: TuneProblem,
    metric: str,
    experiment: str,
    model: Any,
    n_trials: int,
    executor_name: str,
    workers: int | None,
    timeout: float | None,
    log_model: bool,
    sampler: Any,
    run_name: str | None,
) -> TuneResult:
    """Runs the missing trials under the parent run and ends that run with the outcome."""
    earlier = _tune_runs.finished_trials(study)
    parent, active = _tune_runs.open_parent(
        workspace, study, space, problem, metric, experiment, model, n_trials, sampler, run_name
    )
    if not active:  # every trial is done and the parent holds the outcome
        fitted = _tune_runs.best_model(study, space, problem, parent, model)
        return _result(study, space, problem, parent, metric, fitted, earlier)
    parent.set_tags({"loopml.tune.executor": executor_name, "loopml.tune.n_trials": n_trials})
    _tune_runs.recover_interrupted(workspace, study, parent)
    executor: Executor | None = None
    try:
        executor = RayExecutor(workers) if executor_name == "ray" else LocalExecutor()
        trials = TrialLoop(workspace, study, space, problem, metric, experiment)
        trials.run(executor, model, parent, n_trials, timeout)
        executor.close()
        executor = None
        fitted = _tune_runs.record_best(study, space, problem, parent, model, log_model, experiment)
    except KeyboardInterrupt:
        parent.end(RunStatus.KILLED, "KeyboardInterrupt")
        raise
    except BaseException as error:
        text = "".join(traceback.format_exception(error))
        parent.end(RunStatus.FAILED, text[-20_000:])
        raise
    finally:
        if executor is not None:
            executor.close()
    parent.end(RunStatus.FINISHED)
    return _result(study, space, problem, parent, metric, fitted, earlier)


def _result(
    study: Any,
    space: SearchSpace,
    problem: TuneProblem,
    parent: Run,
    metric: str,
    fitted: Any,
    earlier: int,
) -> TuneResult:
    best = study.best_trial
    return TuneResult(
        run=parent,
        best_params={**problem.fixed_params, **space.fixed, **best.params},
        best_metrics=dict(best.user_attrs.get("metrics", {})),
        best_model=fitted,
        trials=_tune_runs.trials_frame(study),
        study_name=study.study_name,
        metric=metric,
        direction=study.direction.name.lower(),
        best_trial=best.number,
        earlier_trials=earlier,
    )
