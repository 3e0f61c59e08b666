"""The built-in continuous-training (CT) pipeline: a project's ``loopml.yaml`` as real steps.

::

    ingest -> train -> evaluate -> gate -> register [-> approval] [-> canary] -> promote

``ingest`` ingests (and validates) ``data.source``, or takes the newest version of
``data.name`` (or the version a dataset trigger passes as ``data``); ``train`` fits with
``ws.train`` (``ws.tune`` with a ``search``) on the train and valid parts of the split;
``evaluate`` scores the model on the held-out part (``test``, else ``valid``); ``gate``
judges it there with the policy against the champion, the current holder of the alias
(the first model has none: only the checks that name no champion apply); ``register``
makes it the next version with the champion as its parent; ``approval`` waits for
``deploy.approvals`` approvals; ``canary`` has the server following
``models:/<model>@<alias>`` release it step by step; ``promote`` moves the alias.

A failed gate and a canary that did not promote stop the run (FAILED); a missing
approval makes it wait (WAITING: the step raises :class:`~loopml.pipelines.StepWaiting`).
Either way the reason is the run's error and an alert is raised (``loopml monitor
alerts``; rules ``ct-gate-failed``, ``ct-canary-failed``, ``ct-awaiting-approval``) told
to ``alerts.notify``; a promotion resolves them. ``loopml pipeline resume <run>``
continues a stopped or waiting run: what succeeded is reused, so after ``loopml models
approve`` (which names the waiting run) it goes on from the approval. Training and
evaluation are cached on the data version's content, so a run on unchanged data reuses
the model it trained before.

It is an ordinary pipeline run (tracked, shown by ``loopml pipeline show``), started by
:func:`run_ct`, ``loopml ct run``, or any pipeline target: ``ct`` (``./loopml.yaml``
of the process that runs it) or ``ct:path/to/loopml.yaml``, so an alert rule's
``action: {pipeline: ct, max_runs: 1, per: 1d}`` retrains on the newest data, with the
alert as the run's reason. The run keeps the whole project as its ``project`` param, so
a resume uses the configuration the run started with.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import ValidationError
from loopml.pipelines._ct_steps import (
    APPROVAL,
    CANARY,
    CT_RULES,
    EVALUATE,
    GATE,
    INGEST,
    PROMOTE,
    REGISTER,
    TRAIN,
    ApprovalPendingError,
    CanaryFailedError,
)
from loopml.pipelines.dag import Graph, Node, Pipeline
from loopml.pipelines.project import PROJECT_FILE, ProjectConfig, load_project, parse_project

if TYPE_CHECKING:
    from loopml.pipelines._driver import OnUpdate
    from loopml.pipelines.records import PipelineRun
    from loopml.workspace import Workspace

__all__ = [
    "CT_RULES",
    "ApprovalPendingError",
    "CanaryFailedError",
    "ContinuousTraining",
    "awaiting_approval",
    "ct_nodes",
    "ct_project",
    "run_ct",
]


# -- the pipeline ---------------------------------------------------------------------------
class ContinuousTraining(Pipeline):
    """The CT pipeline of a project: a :class:`Pipeline` named ``ct`` whose params are
    ``project`` (the project as ``ProjectConfig.to_dict()``, read from the file when not
    given) and ``data`` (a dataset version to train on instead of the newest).

    Args:
        project: A :class:`ProjectConfig` or the path of its file (read when first needed).
    """

    def __init__(self, project: ProjectConfig | str | Path = PROJECT_FILE) -> None:
        if isinstance(project, ProjectConfig):
            self._config: ProjectConfig | None = project
            self._path = Path(project.path) if project.path else None
        else:
            self._config, self._path = None, Path(project)
        target = f"ct:{self._path.resolve()}" if self._path is not None else "ct"
        super().__init__(nodes=[], name="ct", target=target)
        self.builder = self._nodes

    @property
    def config(self) -> ProjectConfig:
        """The project (its file read once, on first use)."""
        if self._config is None:
            assert self._path is not None
            self._config = load_project(self._path)
        return self._config

    def bind_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        bound = dict(params or {})
        unknown = sorted(set(bound) - {"project", "data"})
        if unknown:
            raise ValidationError(
                f"The ct pipeline takes the params `data` (a dataset version to train on, "
                f"e.g. churn@5) and `project`; not {unknown}."
            )
        if bound.get("project") is None:
            bound["project"] = self.config.to_dict()
        data = bound.setdefault("data", None)
        if data is not None and not isinstance(data, str):
            raise ValidationError(
                f"`data` must be a dataset version such as churn@5, got {data!r}."
            )
        return bound

    def graph(self, params: Mapping[str, Any] | None = None) -> Graph:
        found = super().graph(params)
        found.result = {"$step": "promote"}  # a run's result: where the alias went
        return found

    def _nodes(self, params: dict[str, Any]) -> list[Node]:
        config = parse_project(params["project"], "the project of this ct run")
        return ct_nodes(config, params.get("data"))


def ct_nodes(config: ProjectConfig, data: str | None = None) -> list[Node]:
    """The DAG of a project's CT pipeline (``data``: a dataset version to train on)."""
    split = config.data.split.to_dict()
    notify = list(config.alerts.notify)
    name, alias, target = config.model, config.deploy.alias, config.train.target
    train = config.train
    search = None
    if train.search is not None:
        search = {
            "space": train.search.space,
            "trials": train.search.trials,
            "metric": train.search.metric,
            "direction": train.search.direction,
        }
    nodes = [
        Node(
            "ingest",
            INGEST,
            {
                "name": config.data.name,
                "source": config.data.source,
                "sql_url": config.data.sql_url,
                "contract": config.data.contract,
                "on_invalid": config.data.on_invalid,
                "version": data,
            },
        ),
        Node(
            "train",
            TRAIN,
            {
                "target": target,
                "estimator": train.estimator,
                "params": train.params,
                "features": list(train.features) if train.features else None,
                "split": split,
                "experiment": config.experiment,
                "search": search,
            },
            {"data": "ingest"},
        ),
        Node(
            "evaluate",
            EVALUATE,
            {"target": target, "split": split},
            {"model": "train", "data": "ingest"},
        ),
        Node(
            "gate",
            GATE,
            {
                "policy": config.gate.policy,
                "target": target,
                "split": split,
                "name": name,
                "alias": alias,
                "notify": notify,
            },
            {"model": "train", "data": "ingest", "evaluation": "evaluate"},
        ),
        Node(
            "register",
            REGISTER,
            {"name": name, "split": split},
            {"model": "train", "data": "ingest", "gate": "gate"},
        ),
    ]
    last = "register"
    if config.deploy.approvals:
        nodes.append(
            Node(
                "approval",
                APPROVAL,
                {"alias": alias, "approvals": config.deploy.approvals, "notify": notify},
                {"model": "register"},
            )
        )
        last = "approval"
    canary = config.deploy.canary
    if canary is not None:
        options = {
            "plan": canary.plan,
            "check_every": canary.check_every,
            "pickup_timeout": canary.pickup_timeout,
            "timeout": canary.timeout,
        }
        nodes.append(
            Node(
                "canary",
                CANARY,
                {"alias": alias, "canary": options, "notify": notify},
                {"model": "register"},
                after=(last,),
            )
        )
        last = "canary"
    after = (last,) if last != "register" else ()
    nodes.append(Node("promote", PROMOTE, {"alias": alias}, {"model": "register"}, after=after))
    return nodes


def ct_project(target: str) -> str | None:
    """The project file a pipeline target names: ``ct`` (``loopml.yaml``) or
    ``ct:path/to/loopml.yaml``; None when it names something else."""
    if target == "ct":
        return PROJECT_FILE
    prefix, colon, rest = target.partition(":")
    if prefix == "ct" and colon and rest.endswith((".yaml", ".yml")):
        return rest
    return None


def awaiting_approval(
    ws: Workspace, name: str, version: int, alias: str
) -> list[tuple[PipelineRun, int]]:
    """The WAITING CT runs whose approval step waits for ``version`` of ``name`` on
    ``alias`` and that no run resumed since, newest first, each with the number of
    approvals it needs (``loopml models approve`` says which run to resume)."""
    from loopml.pipelines.runner import list_runs

    runs = list_runs(ws, "ct", limit=200)
    resumed = {run.resumed_from for run in runs}
    found = []
    for run in runs:
        if run.status != "WAITING" or run.run_id in resumed:
            continue
        steps = {s.step: s for s in run.steps}
        approval, register = steps.get("approval"), steps.get("register")
        if approval is None or approval.status != "WAITING" or register is None:
            continue
        model = (register.outputs or {}).get("value") or {}
        if (model.get("name"), model.get("version"), approval.params.get("alias")) == (
            name,
            version,
            alias,
        ):
            found.append((run, int(approval.params["approvals"])))
    return found


def run_ct(
    ws: Workspace,
    project: ProjectConfig | str | Path = PROJECT_FILE,
    *,
    reason: str | None = None,
    trigger: str | None = None,
    data: str | None = None,
    executor: str = "local",
    cache: bool = True,
    on_update: OnUpdate | None = None,
) -> PipelineRun:
    """Runs the CT pipeline of ``project`` once and returns its run (a stopped run is
    returned FAILED, one awaiting approval WAITING, with the reason as its error;
    ``run.result`` is the promotion).

    Args:
        ws: The workspace.
        project: A :class:`ProjectConfig` or the path of a project file.
        reason: Why it runs (kept on the run, and on the promotion it makes).
        trigger: What started it (``manual`` by default, ``alert:<id>``, ...).
        data: A dataset version to train on instead of ``data.source`` or the newest.
        executor: As :func:`~loopml.pipelines.run_pipeline` takes it.
        cache: False retrains even when the data did not change.
        on_update: Told each step's state changes (the CLI's live view).

    Raises:
        NotFoundError: No project file there.
        ProjectError: The project file is malformed (every problem, with its line).
    """
    from loopml.pipelines.runner import run_pipeline

    return run_pipeline(
        ws,
        ContinuousTraining(project),
        {"data": data} if data is not None else None,
        executor=executor,
        cache=cache,
        reason=reason,
        trigger=trigger or "manual",
        on_update=on_update,
    )
