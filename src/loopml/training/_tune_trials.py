"""The trial loop of a hyperparameter search: the Optuna objective, run step by step.

Not public: :func:`loopml.training.search.tune` is the interface. Optuna's ``optimize``
would call one objective function per trial in this process; loopml uses ask and tell
instead, so that the steps of several trials (one per cross-validation fold, or one
holdout step) can run on an executor at once (see :mod:`loopml.training._executors`).
This process keeps all the bookkeeping: it asks for each trial, starts its child run,
reports each step's score (so a pruner can stop the trial between folds) and tells
Optuna the outcome, which it also records on the child run.
"""

from __future__ import annotations

import contextlib
import math
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.store import RunStatus
from loopml.training import _study
from loopml.training._study import INTERRUPTED, RUN_ID
from loopml.training._tune_problem import trial_metrics
from loopml.training._tune_runs import finished_trials
from loopml.training.trainer import _texts

if TYPE_CHECKING:
    from loopml.tracking.run import Run
    from loopml.training._executors import Executor
    from loopml.training._space import SearchSpace
    from loopml.training._tune_problem import TuneProblem
    from loopml.workspace import Workspace

__all__ = ["TrialLoop"]


@dataclass
class _Trial:
    """One trial in flight: its Optuna trial, its run and the scores of its steps so far."""

    trial: Any
    run: Run
    fit: Any = None
    scores: list[dict[str, float]] = field(default_factory=list)


class TrialLoop:
    """Runs trials of ``study`` until it holds ``n_trials`` finished ones (or time is up)."""

    def __init__(
        self,
        workspace: Workspace,
        study: Any,
        space: SearchSpace,
        problem: TuneProblem,
        metric: str,
        experiment: str,
    ) -> None:
        self.ws = workspace
        self.study = study
        self.space = space
        self.problem = problem
        self.metric = metric
        self.experiment = experiment
        self.states = _study.trial_states()

    def run(
        self,
        executor: Executor,
        model: Any,
        parent: Run,
        n_trials: int,
        timeout: float | None,
    ) -> None:
        """Keeps ``executor`` busy with the steps of up to ``executor.capacity`` trials."""
        started = time.monotonic()
        finished = finished_trials(self.study)
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
                    storage.set_trial_system_attr(trial.trial._trial_id, INTERRUPTED, True)
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
        trial.set_user_attr(RUN_ID, run.id)
        current = _Trial(trial, run)
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
        metrics = trial_metrics(trial.scores, self.problem.names, self.problem.folds is not None)
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
