"""The parent run of a hyperparameter search, kept in step with its Optuna study.

Not public: :func:`loopml.training.search.tune` is the interface. The study remembers its
parent run (a study user attribute) and each trial its child run, so a search started
again finds both: :func:`open_parent` reuses the unfinished parent of an earlier attempt,
:func:`recover_interrupted` repairs what a dead search process left behind, and
:func:`record_best` gives the parent the best trial's params, metrics and refit model.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from loopml.store import RunStatus
from loopml.training import _study
from loopml.training._study import INTERRUPTED, PARENT_RUN_ID, RUN_ID
from loopml.training.trainer import TrainingError, _estimator_params, _texts

if TYPE_CHECKING:
    import pandas as pd

    from loopml.tracking.run import Run
    from loopml.training._space import SearchSpace
    from loopml.training._tune_problem import TuneProblem
    from loopml.workspace import Workspace

__all__ = [
    "best_model",
    "finished_trials",
    "open_parent",
    "record_best",
    "recover_interrupted",
    "trials_frame",
]


def open_parent(
    workspace: Workspace,
    study: Any,
    space: SearchSpace,
    problem: TuneProblem,
    metric: str,
    experiment: str,
    model: Any,
    n_trials: int,
    sampler: Any,
    run_name: str | None,
) -> tuple[Run, bool]:
    """The parent run and whether trials remain: the unfinished run of an earlier attempt,
    the finished one when the study already holds ``n_trials``, else a new run."""
    from loopml.errors import NotFoundError

    earlier = study.user_attrs.get(PARENT_RUN_ID)
    previous = None
    if earlier:
        with contextlib.suppress(NotFoundError):
            previous = workspace.get_run(earlier)
    if previous is not None and not previous.info.deleted:
        unfinished = previous.info.status != RunStatus.FINISHED
        if unfinished or finished_trials(study) >= n_trials:
            return previous, unfinished
    tags = {"loopml.task": problem.task, "loopml.tune.study": study.study_name}
    if previous is not None:
        tags["loopml.tune.continues"] = previous.id
    parent = workspace.start_run(
        experiment=experiment, run_name=run_name or f"tune-{_study.model_name(model)}", tags=tags
    )
    parent.log_params(
        _texts(
            {
                **problem.settings,
                "tune.space": space.declared,
                "tune.metric": metric,
                "tune.direction": study.direction.name.lower(),
                "tune.study": study.study_name,
                "tune.sampler": _study.describe(sampler) or "tpe",
            }
        )
    )
    loaded = problem.loaded
    if loaded.version is not None:  # the same lineage as a ws.train run
        parent.log_input(loaded.version, role="train")
        if loaded.parts is not None:
            parent.log_input(loaded.version, role="valid")
    study.set_user_attr(PARENT_RUN_ID, parent.id)
    return parent, True


def finished_trials(study: Any) -> int:
    """Trials that count towards ``n_trials``: complete, pruned or failed, not interrupted."""
    states = _study.trial_states()
    done = (states.COMPLETE, states.PRUNED, states.FAIL)
    return sum(
        1
        for trial in study.get_trials(deepcopy=False, states=done)
        if not trial.system_attrs.get(INTERRUPTED)
    )


def recover_interrupted(workspace: Workspace, study: Any, parent: Run) -> None:
    """Repairs what a dead search process left behind: trials still RUNNING are marked
    FAIL (``loopml.interrupted``), their runs FAILED, and their params queued to run
    again; a run left open after its trial was told (the process died in between)
    is ended with the trial's outcome, and one whose trial never learned its id (the
    process died in between) is ended FAILED."""
    states = _study.trial_states()
    still_open = {c.id for c in parent.children() if c.info.status == RunStatus.RUNNING}
    storage = study._storage
    for trial in study.get_trials(deepcopy=False):
        run_id = trial.user_attrs.get(RUN_ID)
        if trial.state == states.RUNNING:
            still_open.discard(run_id)
            storage.set_trial_system_attr(trial._trial_id, INTERRUPTED, True)
            storage.set_trial_state_values(trial._trial_id, states.FAIL)
            if run_id:
                workspace.get_run(run_id).end(
                    RunStatus.FAILED,
                    f"Interrupted: the search process stopped during trial "
                    f"{trial.number}; the resumed search tries its params again.",
                )
            if trial.params:
                study.enqueue_trial(trial.params, skip_if_exists=False)
        elif run_id in still_open and trial.state != states.WAITING:
            still_open.discard(run_id)
            run = workspace.get_run(run_id)
            run.set_tags({"loopml.tune.state": trial.state.name})
            failed = trial.state == states.FAIL
            run.end(RunStatus.FAILED if failed else RunStatus.FINISHED)
    for orphan in still_open:
        workspace.get_run(orphan).end(
            RunStatus.FAILED,
            "Interrupted: the search process stopped before this trial was recorded; the "
            "resumed search runs it again.",
        )


def record_best(
    study: Any,
    space: SearchSpace,
    problem: TuneProblem,
    parent: Run,
    model: Any,
    log_model: bool,
    experiment: str,
) -> Any:
    """Logs the best trial's params and metrics and the trial counts on the parent, and
    the best params refit as its model; returns that model.

    Raises:
        TrainingError: no trial completed, so there is nothing to record.
    """
    states = _study.trial_states()
    if not study.get_trials(deepcopy=False, states=(states.COMPLETE,)):
        errors = [
            t.user_attrs["error"] for t in study.get_trials(deepcopy=False)
            if "error" in t.user_attrs
        ]  # fmt: skip
        first = f" The first error: {errors[0]}." if errors else ""
        raise TrainingError(
            f"No trial of study {study.study_name!r} completed, so there are no best "
            f"params.{first} See the trial runs with `loopml runs list --experiment "
            f"{experiment}`.",
            parent.id,
        )
    best = study.best_trial
    searched = {**space.fixed, **best.params}
    fitted = problem.refit(model, searched)
    counts = {
        state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
        for state in (states.COMPLETE, states.PRUNED, states.FAIL)
    }
    parent.log_params(
        _estimator_params(model, {**problem.fixed_params, **searched}, problem.is_trainer)
    )
    parent.log_metrics(dict(best.user_attrs.get("metrics", {})))
    parent.log_metrics(
        {"tune.best_trial": best.number, **{f"tune.n_{k}": v for k, v in counts.items()}}
    )
    parent.set_tags({"loopml.tune.best_run": best.user_attrs.get(RUN_ID, "")})
    if log_model:
        problem.loaded.log_model(parent, fitted, problem.features)
    return fitted


def best_model(
    study: Any, space: SearchSpace, problem: TuneProblem, parent: Run, model: Any
) -> Any:
    """The best params' model of a finished search: the parent's stored one, else refit."""
    if parent.artifacts("model/model.joblib"):
        return parent.load_model()
    return problem.refit(model, {**space.fixed, **study.best_trial.params})


def trials_frame(study: Any) -> pd.DataFrame:
    """One row per trial: number, state, value, run id, params (``params.<name>``), ..."""
    import pandas as pd

    rows = []
    for trial in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "value": trial.value,
            "run_id": trial.user_attrs.get(RUN_ID),
            "interrupted": bool(trial.system_attrs.get(INTERRUPTED, False)),
            "started": trial.datetime_start,
            "completed": trial.datetime_complete,
        }
        row.update({f"params.{k}": v for k, v in trial.params.items()})
        rows.append(row)
    return pd.DataFrame(rows)
