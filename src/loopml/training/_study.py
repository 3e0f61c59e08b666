"""The Optuna side of ``ws.tune``: the study's storage and name, samplers and pruners by
name, the metric to optimize, and the attributes loopml keeps on studies and trials.

Not public: :func:`loopml.training.search.tune` is the interface.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from loopml.errors import ConfigError, ValidationError
from loopml.training._space import SearchSpace
from loopml.training.trainer import _estimator_params

if TYPE_CHECKING:
    from loopml.training._tune_problem import TuneProblem
    from loopml.workspace import Workspace

__all__ = [
    "INTERRUPTED",
    "PARENT_RUN_ID",
    "RUN_ID",
    "check_param_names",
    "default_study_name",
    "describe",
    "import_optuna",
    "model_name",
    "objective",
    "pruner",
    "quiet",
    "sampler",
    "storage",
    "trial_states",
]

RUN_ID = "loopml.run_id"  # trial user attribute: the trial's child run
INTERRUPTED = "loopml.interrupted"  # trial system attribute: a dead process left it RUNNING
PARENT_RUN_ID = "loopml.parent_run_id"  # study user attribute: the search's parent run
_MINIMIZED = ("log_loss", "rmse", "mae")


def check_param_names(model: Any, space: SearchSpace) -> None:
    """Every param of the space is one the estimator takes (``get_params(deep=True)``)."""
    try:
        known = set(model.get_params(deep=True))
    except Exception:
        return
    for name in space.names:
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValidationError(
                f"Search space param {name!r} is not a parameter of {type(model).__name__}."
                f"{hint} Its params are: {', '.join(sorted(known)[:30])}."
            )


def objective(
    model: Any, problem: TuneProblem, metric: str | None, direction: str | None
) -> tuple[str, str]:
    """The metric to optimize and its direction, defaults filled in and checked."""
    if metric is None:
        if problem.task == "regression":
            metric = "rmse"
        else:
            metric = "roc_auc" if hasattr(model, "predict_proba") else "accuracy"
        if metric not in problem.names:
            metric = problem.names[0]
    if metric not in problem.names:
        raise ValidationError(
            f"metric {metric!r} is not computed for this {problem.task}; choose one of "
            f"{', '.join(problem.names)}."
        )
    if direction is None:
        direction = "minimize" if metric in _MINIMIZED else "maximize"
    if direction not in ("maximize", "minimize"):
        raise ValidationError(f"direction must be 'maximize' or 'minimize', got {direction!r}.")
    return metric, direction


def default_study_name(
    experiment: str,
    model: Any,
    space: SearchSpace,
    problem: TuneProblem,
    metric: str,
    direction: str,
) -> str:
    """``<experiment>-<model class>-<hash>``: the same search gets the same study."""
    described = {
        "experiment": experiment,
        "model": _estimator_params(model, problem.fixed_params, problem.is_trainer),
        "space": space.declared,
        "settings": problem.settings,
        "metric": metric,
        "direction": direction,
    }
    text = json.dumps(described, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{experiment}-{model_name(model)}-{digest}"


def model_name(model: Any) -> str:
    """The estimator's class name, or the trainer function's name."""
    if hasattr(model, "fit"):
        return type(model).__name__
    return str(getattr(model, "__name__", type(model).__name__))


def import_optuna() -> Any:
    """The optuna module, or a ConfigError saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("ws.tune needs Optuna; run: pip install optuna.") from None
    return optuna


def trial_states() -> Any:
    """Optuna's TrialState (imported on use: ``import loopml`` never loads Optuna)."""
    import optuna

    return optuna.trial.TrialState


def storage(workspace: Workspace, optuna: Any) -> Any:
    """Optuna's RDBStorage on the workspace database, with loopml's SQLite settings.

    Optuna shares loopml's ``alembic_version`` table name, so its schema check (which
    would read loopml's revision) is skipped; its own ``version_info`` table still says
    which Optuna schema the tables are at.
    """
    url = workspace.settings.db_url
    sqlite = url.startswith("sqlite")
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if sqlite:
        engine_kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
    storage = optuna.storages.RDBStorage(
        url, engine_kwargs=engine_kwargs, skip_compatibility_check=True
    )
    if sqlite:
        from loopml.store.database import _configure_sqlite

        # Every Optuna transaction starts with BEGIN IMMEDIATE: a deferred one that later
        # writes can fail at once with "database is locked" while loopml's writer writes.
        _configure_sqlite(storage.engine)
        storage.engine.update_execution_options(loopml_write=True)
        storage.engine.dispose()
    return storage


def sampler(optuna: Any, spec: Any, earlier_trials: int) -> Any:
    """A sampler from an object, a name or ``{"name": ..., **options}``; a seeded one is
    seeded ``seed + earlier_trials`` so a resumed study does not repeat its first points."""
    if spec is not None and not isinstance(spec, (str, Mapping)):
        return spec  # a sampler object
    options = dict(spec) if isinstance(spec, Mapping) else {"name": spec or "tpe"}
    name = options.pop("name", None)
    found = named(optuna.samplers, "Sampler", name, "sampler")
    if "seed" in inspect.signature(found).parameters:
        seed = options.get("seed", 0)
        if seed is not None:
            options["seed"] = int(seed) + earlier_trials
    return construct(found, options, "sampler")


def pruner(optuna: Any, spec: Any) -> Any:
    """A pruner from an object, a name or ``{"name": ..., **options}``; median by default."""
    if spec is not None and not isinstance(spec, (str, Mapping)):
        return spec
    if spec is None:
        return optuna.pruners.MedianPruner(n_startup_trials=5)
    options = dict(spec) if isinstance(spec, Mapping) else {"name": spec}
    name = options.pop("name", None)
    return construct(named(optuna.pruners, "Pruner", name, "pruner"), options, "pruner")


def named(module: Any, suffix: str, name: Any, what: str) -> Any:
    """The class of ``module`` called ``name`` (``"tpe"``, ``"TPESampler"``, ``"cma_es"``)."""

    def key(text: str) -> str:
        return text.lower().removesuffix(suffix.lower()).replace("_", "").replace("-", "")

    classes = {
        key(attribute): getattr(module, attribute)
        for attribute in module.__all__
        if attribute.endswith(suffix) and not attribute.startswith("Base")
        and attribute not in ("PartialFixedSampler", "PatientPruner")
    }  # fmt: skip
    if not isinstance(name, str) or key(name) not in classes:
        raise ValidationError(
            f"Unknown {what} {name!r}; choose one of {', '.join(sorted(classes))} (or pass "
            f"an Optuna {what} object)."
        )
    return classes[key(name)]


def construct(factory: Any, options: dict[str, Any], what: str) -> Any:
    """``factory(**options)``, a ValidationError naming the options when they do not fit."""
    try:
        return factory(**options)
    except (TypeError, ValueError) as error:
        raise ValidationError(
            f"Cannot make the {what} {factory.__name__} with options {options!r}: {error}."
        ) from None


def describe(spec: Any) -> Any:
    """How a sampler spec is logged: as given, or an object's class name."""
    if spec is None or isinstance(spec, (str, Mapping)):
        return spec
    return type(spec).__name__


@contextlib.contextmanager
def quiet(optuna: Any) -> Iterator[None]:
    """Optuna's per-trial log lines off while loopml tracks the trials as runs."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)
