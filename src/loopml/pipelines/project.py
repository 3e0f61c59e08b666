"""The project file ``loopml.yaml``: what the continuous-training pipeline trains and ships.

Read by :func:`load_project` into a frozen :class:`ProjectConfig` (``loopml ct run``
and :func:`loopml.pipelines.ct.run_ct` use it)::

    model: breast-cancer-classifier        # the registered model's name (required)
    data:
      name: breast-cancer                  # the dataset (required)
      source: data/*.parquet               # ingest this (path, glob or SQL with sql_url) on
                                           # each run; absent: the newest version of `name`
      sql_url: postgresql://...            # for a SQL source
      contract: contract.yaml              # validate the ingest (a path, or the mapping)
      on_invalid: quarantine               # fail (default) | quarantine | warn
      split:                               # as ws.data.split takes it
        by: stratified                     # random | stratified (default) | time | group
        column: target                     # default: train.target when stratified
        fractions: {train: 0.6, valid: 0.2, test: 0.2}   # train and valid; test held out
        seed: 0
    train:
      target: target                       # the label column (required)
      estimator: sklearn.linear_model.LogisticRegression   # dotted class path (required)
      params: {max_iter: 2000}             # passed to the estimator
      features: [a, b]                     # default: every other column
      experiment: ct                       # default: the model's name
      search:                              # tune (Optuna) instead of one fit
        space: {C: {low: 0.01, high: 100, log: true}}    # ws.tune's space; a range
                                           # without `type` is int when both bounds are
                                           # whole numbers, else float
        trials: 6                          # default 20
        metric: roc_auc                    # default: ws.tune's
        direction: maximize                # default: from the metric
    gate:
      policy: {checks: [roc_auc >= 0.9, roc_auc >= champion.roc_auc - 0.01]}
                                           # or the path of a policy file (as ws.gate takes)
    deploy:
      alias: production                    # default production
      approvals: 1                         # approvals needed before going live (default 0)
      canary:                              # absent: promote directly
        steps: [10, 50, 100]               # percent of traffic per step
        interval: 30s                      # time per step
        min_requests: 50                   # per step, before it is judged
        max_error_rate: 0.01
        max_latency_ratio: 1.5             # canary p99 over stable p99...
        latency_slack_ms: 10               # ...and over stable p99 + this (ms) to fail
        max_prediction_psi: 0.2
        min_drift_rows: 200
        check_every: 5s                    # how often the server checks the guards
        pickup_timeout: 60s                # for a server following the alias to start it
        timeout: 30m                       # for the whole canary
    alerts:
      notify: [log, {type: webhook, url: "http://127.0.0.1:9000/hook"}]
                                           # where a stopped run's alert goes (default [log])

Relative paths (``source``, ``contract``, a policy file) are read from the project
file's folder. The gate judges the held-out part (``test``, else ``valid``) against the
alias's current holder; the first model, with no holder, is judged by the checks that
name no champion, so a policy needs at least one. Every problem names the file, the line
and the field, e.g. ``loopml.yaml line 7, train.search.trials: must be a whole number
≥ 1``; all of them are reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from loopml.pipelines._project_reading import Lines

__all__ = [
    "AlertsConfig",
    "CanaryConfig",
    "DataConfig",
    "DeployConfig",
    "GateConfig",
    "ProjectConfig",
    "ProjectError",
    "SearchConfig",
    "TrainConfig",
    "load_project",
    "parse_project",
    "starter_project",
]

PROJECT_FILE = "loopml.yaml"

FieldPath = tuple[str | int, ...]
_PLAN_NAMES = {"interval_s": "interval"}  # CanaryPlan field -> project key, where they differ


class ProjectError(ValidationError):
    """Every problem of one project file, each with its line and field."""

    def __init__(self, source: str, problems: list[tuple[int | None, str, str]]) -> None:
        self.problems = problems
        ordered = sorted(problems, key=lambda p: (p[0] or 0, p[1]))
        lines = [_place(line, path) + message for line, path, message in ordered]
        if len(lines) == 1:
            line, path, _ = ordered[0]
            text = f"{source}{' ' if line else ', ' if path else ': '}{lines[0]}"
        else:
            text = f"{source} has {len(lines)} problems:\n  " + "\n  ".join(lines)
        super().__init__(text)


def _place(line: int | None, path: str) -> str:
    """``line 7, train.search.trials: `` (either part may be missing)."""
    where = ", ".join(part for part in (f"line {line}" if line else "", path) if part)
    return f"{where}: " if where else ""


@dataclass(frozen=True)
class SplitConfig:
    """The split of every training version: ``ws.data.split`` arguments."""

    by: str = "stratified"
    column: str | None = None
    fractions: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    @property
    def held_out(self) -> str:
        """The part the evaluation and the gate judge: ``test``, else ``valid``."""
        return "test" if "test" in self.fractions else "valid"

    def to_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "column": self.column,
            "fractions": dict(self.fractions),
            "seed": self.seed,
        }


@dataclass(frozen=True)
class DataConfig:
    """Where each run's training data comes from."""

    name: str
    split: SplitConfig
    source: str | None = None
    sql_url: str | None = None
    contract: str | dict[str, Any] | None = None
    on_invalid: str = "fail"


@dataclass(frozen=True)
class SearchConfig:
    """A hyperparameter search (``ws.tune``) instead of one fit."""

    space: dict[str, Any]
    trials: int = 20
    metric: str | None = None
    direction: str | None = None


@dataclass(frozen=True)
class TrainConfig:
    """What is trained: the estimator, its params, the label and the features."""

    target: str
    estimator: str
    params: dict[str, Any] = field(default_factory=dict)
    features: tuple[str, ...] | None = None
    experiment: str | None = None
    search: SearchConfig | None = None


@dataclass(frozen=True)
class GateConfig:
    """The gate policy (the mapping ``ws.gate`` takes), read from its file if one was named."""

    policy: dict[str, Any]


@dataclass(frozen=True)
class CanaryConfig:
    """A canary release by the server following the alias (``request_deployment``).

    ``plan`` holds the :class:`~loopml.serving.policies.CanaryPlan` fields the file set;
    the others keep the plan's defaults.
    """

    plan: dict[str, Any] = field(default_factory=dict)
    check_every: float = 5.0
    pickup_timeout: float = 60.0
    timeout: float = 1800.0


@dataclass(frozen=True)
class DeployConfig:
    """Where a candidate that passed goes, and what it waits for on the way."""

    alias: str = "production"
    approvals: int = 0
    canary: CanaryConfig | None = None


@dataclass(frozen=True)
class AlertsConfig:
    """Notifiers of a stopped run's alert: names (``log``) or notifier mappings."""

    notify: tuple[Any, ...] = ("log",)


@dataclass(frozen=True)
class ProjectConfig:
    """A checked ``loopml.yaml`` (see the module docstring for the format).

    ``to_dict()`` gives plain JSON that :func:`parse_project` reads back: what a
    pipeline run stores, so a resumed run keeps its original configuration.
    """

    model: str
    data: DataConfig
    train: TrainConfig
    gate: GateConfig
    deploy: DeployConfig = field(default_factory=DeployConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    path: str | None = field(default=None, compare=False)  # the file it was read from

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.data.name,
            "split": self.data.split.to_dict(),
            "on_invalid": self.data.on_invalid,
        }
        for key in ("source", "sql_url", "contract"):
            if getattr(self.data, key) is not None:
                data[key] = getattr(self.data, key)
        train: dict[str, Any] = {
            "target": self.train.target,
            "estimator": self.train.estimator,
            "params": dict(self.train.params),
        }
        if self.train.features is not None:
            train["features"] = list(self.train.features)
        if self.train.experiment is not None:
            train["experiment"] = self.train.experiment
        search = self.train.search
        if search is not None:
            train["search"] = {"space": search.space, "trials": search.trials}
            for key in ("metric", "direction"):
                if getattr(search, key) is not None:
                    train["search"][key] = getattr(search, key)
        deploy: dict[str, Any] = {"alias": self.deploy.alias, "approvals": self.deploy.approvals}
        canary = self.deploy.canary
        if canary is not None:
            deploy["canary"] = {
                **{_PLAN_NAMES.get(k, k): v for k, v in canary.plan.items()},
                "check_every": canary.check_every,
                "pickup_timeout": canary.pickup_timeout,
                "timeout": canary.timeout,
            }
        return {
            "model": self.model,
            "data": data,
            "train": train,
            "gate": {"policy": self.gate.policy},
            "deploy": deploy,
            "alerts": {"notify": list(self.alerts.notify)},
        }

    @property
    def experiment(self) -> str:
        """The experiment of the training runs: ``train.experiment``, else the model name."""
        return self.train.experiment or self.model


# -- reading --------------------------------------------------------------------------
def load_project(path: str | Path = PROJECT_FILE) -> ProjectConfig:
    """Reads and checks a project file.

    Raises:
        NotFoundError: There is no such file (``loopml ct init`` writes a starter one).
        ProjectError: Listing every problem with its line and field.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(
            f"No project file {str(file)!r} (looked in {Path.cwd()}); write one with "
            "`loopml ct init`, or pass its path (--project)."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValidationError(f"Cannot read the project file {file}: {error}.") from None
    from loopml.pipelines._project_reading import compose

    source = str(path)
    data, lines = compose(text, source)
    return _read(data, source, lines, file.resolve().parent, str(file.resolve()))


def parse_project(
    data: Any, source: str = "project", base: str | Path | None = None
) -> ProjectConfig:
    """A project from its plain data (a parsed YAML mapping, or ``to_dict()`` output);
    relative paths are read from ``base`` (default: the current folder)."""
    folder = Path(base) if base is not None else Path.cwd()
    return _read(data, source, None, folder, None)


def _read(
    data: Any, source: str, lines: Lines | None, base: Path, path: str | None
) -> ProjectConfig:
    from loopml.pipelines._project_reading import Lines, Reader

    reader = Reader(lines or Lines(), base)
    found = reader.project(data)
    if reader.problems or found is None:
        raise ProjectError(source, reader.problems)
    return replace(found, path=path)


# -- a starter file ---------------------------------------------------------------------
_STARTER = """\
# loopml.yaml: the continuous-training pipeline of one model (`loopml ct run`).
# Each run: ingest -> train -> evaluate -> gate vs the alias's holder -> register
# -> (approval) -> (canary) -> promote. Stopped runs raise an alert and say why;
# `loopml pipeline resume <run>` continues one. An alert rule retrains by itself with
#   action: {{pipeline: ct, max_runs: 1, per: 1d}}
model: {model}                  # the registered model's name

data:
  name: {dataset}                # the dataset to train on
  # source: data/*.parquet       # ingest this (a path, a glob or SQL) on each run;
  #                              # without it each run trains on the newest version
  # contract: contract.yaml      # validate what is ingested against this contract
  on_invalid: quarantine         # fail | quarantine | warn: what becomes of bad rows
  split:                         # train fits, valid compares, test judges the gate
    by: stratified
    column: {target}
    fractions: {{train: 0.6, valid: 0.2, test: 0.2}}
    seed: 0

train:
  target: {target}
  estimator: sklearn.linear_model.LogisticRegression
  params: {{max_iter: 2000}}
  # search:                      # tune with Optuna instead of one fit
  #   space: {{C: {{low: 0.01, high: 100, log: true}}}}
  #   trials: 6
  #   metric: roc_auc

gate:                            # on the test part, against the alias's holder
  policy:
    checks:
      - roc_auc >= 0.9
      - roc_auc >= champion.roc_auc - 0.01   # skipped while there is no champion

deploy:
  alias: production
  approvals: 0                   # approvals needed before the candidate goes live
  # canary:                      # through a running `loopml serve models:/{model}@production`
  #   steps: [10, 50, 100]       # percent of traffic
  #   interval: 30s
  #   min_requests: 50
  #   max_error_rate: 0.01
  #   timeout: 30m

alerts:
  notify: [log]                  # or {{type: webhook, url: "http://..."}}
"""


def starter_project(
    model: str = "breast-cancer-classifier", dataset: str = "breast-cancer", target: str = "target"
) -> str:
    """A commented ``loopml.yaml`` to start from (``loopml ct init`` writes it); the
    defaults fit the dataset ``loopml demo`` ingests."""
    return _STARTER.format(model=model, dataset=dataset, target=target)
