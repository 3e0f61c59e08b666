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
all the bookkeeping, the workers only fit and score. The Optuna side (storage, study
name, samplers and pruners by name) is in :mod:`loopml.training._study`, the space in
:mod:`loopml.training._space`; this module stays one piece past ~400 lines because the
search loop and the run bookkeeping it drives are one concern.

Storage note: Optuna's Alembic table is also called ``alembic_version``; on a loopml
database Optuna finds loopml's revision there, so it never stamps its own, and its
schema check is skipped (its ``version_info`` table still records its schema).
``tests/store/test_database.py`` compares a fresh workspace's schema, which holds no
Optuna tables; a database that ran a search holds them beside loopml's.
"""

from __future__ import annotations

import contextlib
import math
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.errors import ValidationError
from loopml.store import RunStatus
from loopml.training import _study
from loopml.training._cross_validation import _folds, cv_spec
from loopml.training._data import check_classes, check_columns, check_target, resolve_data
from loopml.training._data import split_spec as _split_spec
from loopml.training._executors import Executor, LocalExecutor, RayExecutor
from loopml.training._metrics import metric_names, task_of
from loopml.training._space import SearchSpace, parse_space
from loopml.training.trainer import (
    TrainingError,
    _columns_and_target,
    _estimator_params,
    _fitter,
    _texts,
    training_settings,
)

if TYPE_CHECKING:
    import pandas as pd

    from loopml.tracking.run import Run
    from loopml.training._data import TrainingData
    from loopml.workspace import Workspace

__all__ = ["TuneResult", "tune"]

_TRAIN_OPTIONS = ("features", "split", "metrics", "params", "preprocess", "task", "run_name")
_RUN_ID = "loopml.run_id"
_INTERRUPTED = "loopml.interrupted"
_PARENT = "loopml.parent_run_id"


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
    problem = _Problem.build(workspace, model, data, target, cv, is_trainer, train_options)
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
            search = _Search(workspace, study, checked, problem, metric, experiment, train_options)
            return search.run(model, n_trials, executor, workers, timeout, log_model, sampler)
        finally:
            storage.remove_session()
            storage.engine.dispose()


# -- the data and the steps -----------------------------------------------------
@dataclass
class _Problem:
    """The data of a search, split into steps, and how to build a fit for some params."""

    loaded: TrainingData
    task: str
    features: list[str]
    target: str
    names: list[str]
    folds: dict[str, Any] | None
    settings: dict[str, Any]
    fixed_params: dict[str, Any]
    is_trainer: bool
    preprocess: bool

    @classmethod
    def build(
        cls,
        workspace: Workspace,
        model: Any,
        data: Any,
        target: str,
        cv: Any,
        is_trainer: bool,
        options: Mapping[str, Any],
    ) -> _Problem:
        """The same checks and data as ``ws.train`` makes (see :func:`~.trainer.train`)."""
        task = options.get("task")
        if task is not None and task not in ("classification", "regression"):
            raise ValidationError(f"task must be 'classification' or 'regression', got {task!r}.")
        columns, target_values = _columns_and_target(workspace, data, target)
        features = options.get("features")
        feature_names = check_columns(columns, target, list(features) if features else None)
        check_target(target_values, target)
        task = task or task_of(model, target_values)
        names = metric_names(task, options.get("metrics"))
        folds = cv_spec(cv, task) if cv is not None else None
        split = options.get("split")
        spec = _split_spec(split, task, target) if split is not None or folds is None else None
        loaded = resolve_data(workspace, data, spec)
        if loaded.parts is not None and task == "classification" and spec is not None:
            check_classes(
                loaded.parts["train"][target], loaded.parts["valid"][target], target, spec["by"]
            )
        preprocess = bool(options.get("preprocess", True))
        settings = training_settings(loaded, target, feature_names, task, spec, folds, preprocess)
        settings = {key: value for key, value in settings.items() if value is not None}
        fixed = dict(options.get("params") or {})
        return cls(
            loaded, task, feature_names, target, names, folds, settings, fixed, is_trainer,
            preprocess,
        )  # fmt: skip

    def steps(self) -> list[tuple[str, Any, str, Any]]:
        """(train frame, train rows, valid frame, valid rows) of each step."""
        if self.folds is not None:
            whole = self.loaded.fit_rows
            return [
                ("fit", train, "fit", valid)
                for train, valid in _folds(whole, self.target, self.folds)
            ]
        return [("train", None, "valid", None)]

    def frames(self) -> dict[str, Any]:
        if self.folds is not None:
            return {"fit": self.loaded.fit_rows}
        parts = self.loaded.parts or {}
        return {"train": parts["train"], "valid": parts["valid"]}

    def fit_for(self, model: Any, params: Mapping[str, Any]) -> Any:
        return _fitter(
            model,
            {**self.fixed_params, **params},
            self.is_trainer,
            self.preprocess,
            self.loaded,
            self.features,
        )


# -- the search loop ------------------------------------------------------------
@dataclass
class _Trial:
    """One trial in flight: its Optuna trial, its run and the scores of its steps so far."""

    trial: Any
    run: Run
    params: dict[str, Any]
    fit: Any
    scores: list[dict[str, float]] = field(default_factory=list)


class _Search:
    def __init__(
        self,
        workspace: Workspace,
        study: Any,
        space: SearchSpace,
        problem: _Problem,
        metric: str,
        experiment: str,
        options: Mapping[str, Any],
    ) -> None:
        self.ws = workspace
        self.study = study
        self.space = space
        self.problem = problem
        self.metric = metric
        self.experiment = experiment
        self.options = options
        import optuna

        self.optuna = optuna
        self.states = optuna.trial.TrialState

    def run(
        self,
        model: Any,
        n_trials: int,
        executor_name: str,
        workers: int | None,
        timeout: float | None,
        log_model: bool,
        sampler: Any,
    ) -> TuneResult:
        parent, active = self._parent(model, n_trials, sampler)
        if not active:  # every trial is done and the parent holds the outcome
            return self._result(parent, model, None)
        parent.set_tags({"loopml.tune.executor": executor_name, "loopml.tune.n_trials": n_trials})
        self._recover_interrupted(parent)
        executor: Executor | None = None
        try:
            executor = RayExecutor(workers) if executor_name == "ray" else LocalExecutor()
            self._loop(executor, model, parent, n_trials, timeout)
            executor.close()
            executor = None
            result = self._finish(parent, model, log_model)
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
        return result

    # -- the parent run ---------------------------------------------------------
    def _parent(self, model: Any, n_trials: int, sampler: Any) -> tuple[Run, bool]:
        """The run of this search: the unfinished one of an earlier attempt, else new."""
        from loopml.errors import NotFoundError

        earlier = self.study.user_attrs.get(_PARENT)
        previous = None
        if earlier:
            with contextlib.suppress(NotFoundError):
                previous = self.ws.get_run(earlier)
        if previous is not None and not previous.info.deleted:
            unfinished = previous.info.status != RunStatus.FINISHED
            if unfinished or self._finished() >= n_trials:
                return previous, unfinished
        run_name = self.options.get("run_name") or f"tune-{_study.model_name(model)}"
        tags = {"loopml.task": self.problem.task, "loopml.tune.study": self.study.study_name}
        if previous is not None:
            tags["loopml.tune.continues"] = previous.id
        parent = self.ws.start_run(experiment=self.experiment, run_name=run_name, tags=tags)
        parent.log_params(
            _texts(
                {
                    **self.problem.settings,
                    "tune.space": self.space.declared,
                    "tune.metric": self.metric,
                    "tune.direction": self.study.direction.name.lower(),
                    "tune.study": self.study.study_name,
                    "tune.sampler": _study.describe(sampler) or "tpe",
                }
            )
        )
        self.study.set_user_attr(_PARENT, parent.id)
        return parent, True

    def _finished(self) -> int:
        done = (self.states.COMPLETE, self.states.PRUNED, self.states.FAIL)
        return sum(
            1
            for trial in self.study.get_trials(deepcopy=False, states=done)
            if not trial.system_attrs.get(_INTERRUPTED)
        )

    def _recover_interrupted(self, parent: Run) -> None:
        """Repairs what a dead search process left behind: trials still RUNNING are marked
        FAIL (``loopml.interrupted``), their runs FAILED, and their params queued to run
        again; a run left open after its trial was told (the process died in between)
        is ended with the trial's outcome."""
        still_open = {c.id for c in parent.children() if c.info.status == RunStatus.RUNNING}
        storage = self.study._storage
        for trial in self.study.get_trials(deepcopy=False):
            run_id = trial.user_attrs.get(_RUN_ID)
            if trial.state == self.states.RUNNING:
                storage.set_trial_system_attr(trial._trial_id, _INTERRUPTED, True)
                storage.set_trial_state_values(trial._trial_id, self.states.FAIL)
                if run_id:
                    self.ws.get_run(run_id).end(
                        RunStatus.FAILED,
                        f"Interrupted: the search process stopped during trial "
                        f"{trial.number}; the resumed search tries its params again.",
                    )
                if trial.params:
                    self.study.enqueue_trial(trial.params, skip_if_exists=False)
            elif run_id in still_open and trial.state != self.states.WAITING:
                run = self.ws.get_run(run_id)
                run.set_tags({"loopml.tune.state": trial.state.name})
                failed = trial.state == self.states.FAIL
                run.end(RunStatus.FAILED if failed else RunStatus.FINISHED)

    # -- trials -----------------------------------------------------------------
    def _loop(
        self,
        executor: Executor,
        model: Any,
        parent: Run,
        n_trials: int,
        timeout: float | None,
    ) -> None:
        started = time.monotonic()
        finished = self._finished()
        frames = {key: executor.put(frame) for key, frame in self.problem.frames().items()}
        steps = self.problem.steps()
        flying: dict[int, _Trial] = {}
        parent_name = parent.info.name

        def submit(trial: _Trial) -> None:
            train_key, train_rows, valid_key, valid_rows = steps[len(trial.scores)]
            args = (
                trial.fit, frames[train_key], frames[valid_key], train_rows, valid_rows,
                self.problem.target, self.problem.features, self.problem.task,
                self.problem.names,
            )  # fmt: skip
            executor.submit(trial.trial.number, args)

        try:
            while True:
                while (
                    len(flying) < executor.capacity
                    and finished + len(flying) < n_trials
                    and (timeout is None or time.monotonic() - started < timeout)
                ):
                    trial = self._start(model, parent, parent_name)
                    if trial is None:
                        finished += 1
                        continue
                    flying[trial.trial.number] = trial
                    submit(trial)
                if not flying:
                    return
                number, outcome = executor.next()
                current = flying[number]
                if isinstance(outcome, BaseException):
                    self._fail(current, outcome)
                elif self._record(current, outcome, len(steps)):
                    submit(current)
                    continue
                del flying[number]
                finished += 1
        except BaseException:
            for trial in flying.values():  # best effort: the error raised is what matters
                with contextlib.suppress(Exception):
                    storage = self.study._storage
                    storage.set_trial_system_attr(trial.trial._trial_id, _INTERRUPTED, True)
                    self.study.tell(trial.trial, state=self.states.FAIL)
                with contextlib.suppress(Exception):
                    trial.run.end(RunStatus.KILLED, "The search stopped during this trial.")
            raise

    def _start(self, model: Any, parent: Run, parent_name: str) -> _Trial | None:
        """Asks for a trial and starts its run; None when it failed at once (bad params)."""
        trial = self.study.ask()
        params = self.space.sample(trial)
        run = self.ws.start_run(
            experiment=self.experiment,
            run_name=f"{parent_name}-trial-{trial.number}",
            parent=parent,
            tags={
                "loopml.tune.study": self.study.study_name,
                "loopml.tune.trial": trial.number,
                "loopml.task": self.problem.task,
            },
        )
        trial.set_user_attr(_RUN_ID, run.id)
        current = _Trial(trial, run, params, None)
        try:
            run.log_params(_texts({**self.problem.fixed_params, **params}))
            current.fit = self.problem.fit_for(model, params)
        except Exception as error:
            self._fail(current, error)
            return None
        return current

    def _record(self, trial: _Trial, scores: dict[str, float], n_steps: int) -> bool:
        """Stores one step's scores; True when the trial goes on to its next step."""
        trial.scores.append(scores)
        step = len(trial.scores) - 1
        if self.problem.folds is not None:
            trial.run.log_metrics(
                {f"cv_{k}": v for k, v in scores.items() if k != "fit_seconds"}, step=step
            )
            value = scores[self.metric]
            if math.isfinite(value):
                trial.trial.report(value, step)
                if trial.trial.should_prune():
                    self._end(trial, self.states.PRUNED)
                    return False
        if len(trial.scores) < n_steps:
            return True
        self._end(trial, self.states.COMPLETE)
        return False

    def _end(self, trial: _Trial, state: Any) -> None:
        metrics = _summary(trial.scores, self.problem.names, self.problem.folds is not None)
        trial.run.log_metrics(metrics)
        value = metrics.get(self.metric, float("nan"))
        if state == self.states.COMPLETE and not math.isfinite(value):
            message = (
                f"The metric {self.metric!r} is {value} for these params, so the trial "
                "cannot be ranked; it is marked FAIL."
            )
            self.study.tell(trial.trial, state=self.states.FAIL)
            trial.run.set_tags({"loopml.tune.state": "FAIL"})
            trial.run.end(RunStatus.FAILED, message)
            return
        trial.trial.set_user_attr("metrics", metrics)
        if state == self.states.COMPLETE:
            self.study.tell(trial.trial, value)
        else:
            self.study.tell(trial.trial, state=state)
        trial.run.set_tags({"loopml.tune.state": state.name})
        trial.run.end(RunStatus.FINISHED)

    def _fail(self, trial: _Trial, error: BaseException) -> None:
        text = "".join(traceback.format_exception(error))[-20_000:]
        trial.trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:2000])
        self.study.tell(trial.trial, state=self.states.FAIL)
        trial.run.set_tags({"loopml.tune.state": "FAIL"})
        trial.run.end(RunStatus.FAILED, text)

    # -- the outcome ------------------------------------------------------------
    def _finish(self, parent: Run, model: Any, log_model: bool) -> TuneResult:
        complete = self.study.get_trials(deepcopy=False, states=(self.states.COMPLETE,))
        if not complete:
            errors = [
                t.user_attrs["error"] for t in self.study.get_trials(deepcopy=False)
                if "error" in t.user_attrs
            ]  # fmt: skip
            first = f" The first error: {errors[0]}." if errors else ""
            raise TrainingError(
                f"No trial of study {self.study.study_name!r} completed, so there are no "
                f"best params.{first} See the trial runs with `loopml runs list "
                f"--experiment {self.experiment}`.",
                parent.id,
            )
        best = self.study.best_trial
        params = {**self.problem.fixed_params, **self.space.fixed, **best.params}
        fitted = self.problem.fit_for(model, {**self.space.fixed, **best.params})
        rows = self.problem.loaded.fit_rows
        valid = self.problem.loaded.parts["valid"] if self.problem.loaded.parts else None
        fitted = fitted(rows, valid, rows[self.problem.target])
        counts = {
            state.name.lower(): len(self.study.get_trials(deepcopy=False, states=(state,)))
            for state in (self.states.COMPLETE, self.states.PRUNED, self.states.FAIL)
        }
        parent.log_params(_estimator_params(model, params, self.problem.is_trainer))
        parent.log_metrics(dict(best.user_attrs.get("metrics", {})))
        parent.log_metrics(
            {"tune.best_trial": best.number, **{f"tune.n_{k}": v for k, v in counts.items()}}
        )
        parent.set_tags({"loopml.tune.best_run": best.user_attrs.get(_RUN_ID, "")})
        if log_model:
            parent.log_model(fitted)
        return self._result(parent, model, fitted)

    def _result(self, parent: Run, model: Any, fitted: Any) -> TuneResult:
        best = self.study.best_trial
        if fitted is None and parent.artifacts("model/model.joblib"):
            fitted = parent.load_model()
        elif fitted is None:
            built = self.problem.fit_for(model, {**self.space.fixed, **best.params})
            rows = self.problem.loaded.fit_rows
            fitted = built(rows, None, rows[self.problem.target])
        return TuneResult(
            run=parent,
            best_params={**self.problem.fixed_params, **self.space.fixed, **best.params},
            best_metrics=dict(best.user_attrs.get("metrics", {})),
            best_model=fitted,
            trials=_trials_frame(self.study),
            study_name=self.study.study_name,
            metric=self.metric,
            direction=self.study.direction.name.lower(),
            best_trial=best.number,
        )


def _summary(scores: list[dict[str, float]], names: list[str], cv: bool) -> dict[str, float]:
    """A trial's metrics, named as ``ws.train`` names them."""
    import numpy as np

    seconds = float(sum(step.get("fit_seconds", 0.0) for step in scores))
    if not cv:
        return {**{name: scores[0][name] for name in names}, "fit_seconds": seconds}
    summary: dict[str, float] = {}
    for name in names:
        values = np.array([step[name] for step in scores], dtype="float64")
        summary[f"cv_{name}_mean"] = float(values.mean())
        summary[f"cv_{name}_std"] = float(values.std())
        summary[name] = summary[f"cv_{name}_mean"]
    summary["cv_folds_done"] = float(len(scores))
    summary["fit_seconds"] = seconds
    return summary


def _trials_frame(study: Any) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for trial in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "value": trial.value,
            "run_id": trial.user_attrs.get(_RUN_ID),
            "interrupted": bool(trial.system_attrs.get(_INTERRUPTED, False)),
            "started": trial.datetime_start,
            "completed": trial.datetime_complete,
        }
        row.update({f"params.{k}": v for k, v in trial.params.items()})
        rows.append(row)
    return pd.DataFrame(rows)
