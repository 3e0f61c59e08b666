"""The Workspace: the one entry point, opening the metadata store and the artifact store."""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import sys
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

from loopml._identity import current_user
from loopml._time import now_ms
from loopml.artifacts import ArtifactStore
from loopml.config import Settings
from loopml.errors import ConfigError, ConflictError, NotFoundError, ValidationError
from loopml.store import Database, Experiment, RunStatus
from loopml.store.repositories import BlobRepository, ExperimentRepository, RunRepository
from loopml.store.search import (
    compile_search,
    count_matches,
    parse_filter,
    parse_order_by,
    run_search,
)
from loopml.tracking.provenance import code_version, environment
from loopml.tracking.run import Run, active_run, param_text
from loopml.tracking.writer import MetricWriter

if TYPE_CHECKING:
    import pandas as pd

    from loopml.data.catalog import DataCatalog
    from loopml.evaluation import Evaluation
    from loopml.evaluation.gate import GateResult
    from loopml.monitoring import Monitor
    from loopml.registry import Registry
    from loopml.serving.feedback import TimeLike
    from loopml.training import TrainResult
    from loopml.training.search import TuneResult

__all__ = ["GcReport", "Workspace"]

_OPEN: weakref.WeakSet[Workspace] = weakref.WeakSet()
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class GcReport:
    """What ``Workspace.gc`` removed."""

    runs: int
    experiments: int
    blobs: int
    bytes_freed: int
    model_versions: int = 0


class Workspace:
    """Everything loopml stores, reached through one object.

    Open one with :meth:`Workspace.open`; the constructor takes ready settings and does
    no I/O until :meth:`connect`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.db_url)
        self.artifacts = ArtifactStore(settings.artifacts_url, settings.artifacts_options)
        self._experiments = ExperimentRepository(self.db)
        self._runs = RunRepository(self.db)
        self._blobs = BlobRepository(self.db)
        self._writer = MetricWriter(self._runs.insert_metrics, settings.metric_flush_seconds)
        self._experiment_ids: dict[str, int] = {}
        self._open_runs: dict[str, Run] = {}
        self._stored_environments: set[str] = set()

    @classmethod
    def open(
        cls,
        home: str | os.PathLike[str] | None = None,
        *,
        db_url: str | None = None,
        artifacts_url: str | None = None,
        artifacts_options: dict[str, Any] | None = None,
        create: bool = True,
    ) -> Workspace:
        """Opens (creating on first use) the workspace in ``home``.

        ``home`` defaults to ``LOOPML_HOME`` or ``./.loopml``; ``LOOPML_DB_URL`` and
        ``LOOPML_ARTIFACTS_URL`` put the metadata and the artifacts elsewhere. With
        ``create=False`` a missing workspace is a NotFoundError instead of a new one.
        """
        settings = Settings.resolve(home, db_url, artifacts_url, artifacts_options)
        workspace = cls(settings)
        workspace.connect(create=create)
        return workspace

    def connect(self, create: bool = True) -> None:
        """Creates the folders, brings the database schema up to date, opens the stores."""
        home = self.settings.home
        if not create and not self.db.exists():
            raise NotFoundError(
                f"No loopml workspace at {home} (database {self.db.safe_url()}). Create one "
                "with `loopml init`, or point --home / LOOPML_HOME at an existing one."
            )
        try:
            home.mkdir(parents=True, exist_ok=True)
            probe = home / f".write-test-{uuid.uuid4().hex}"
            probe.touch()
            probe.unlink()
        except OSError as error:
            raise ConfigError(
                f"Cannot use {home} as the loopml workspace: {error.strerror or error}. "
                "Set LOOPML_HOME to a folder you can write to."
            ) from None
        self.artifacts.ensure()
        self.db.upgrade()
        _OPEN.add(self)

    def close(self) -> None:
        """Ends open runs, writes pending metrics and releases connections."""
        for run in list(self._open_runs.values()):
            run.end(RunStatus.FINISHED)
        self._writer.close()
        self.db.dispose()
        _OPEN.discard(self)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace(home={str(self.settings.home)!r})"

    @functools.cached_property
    def data(self) -> DataCatalog:
        """The data layer: ``ws.data.ingest(...)``, ``ws.data.get("churn@3")``, ..."""
        from loopml.data.catalog import DataCatalog

        return DataCatalog(self)

    @functools.cached_property
    def registry(self) -> Registry:
        """The model registry: ``ws.registry.register(run, name="churn")``, ``promote``, ..."""
        from loopml.registry import Registry

        return Registry(self)

    @functools.cached_property
    def monitor(self) -> Monitor:
        """Monitoring: ``ws.monitor.drift(reference_df, current_df)``, ``check``, ``run``,
        ``series``, ``alerts`` and ``report`` (see :mod:`loopml.monitoring`)."""
        from loopml.monitoring import Monitor

        return Monitor(self)

    # -- experiments ----------------------------------------------------------
    def experiment(self, name: str) -> Experiment:
        """The experiment called ``name`` (created when missing)."""
        return self._experiments.get_or_create(name)

    def experiments(self, include_deleted: bool = False) -> list[Experiment]:
        return self._experiments.list(include_deleted)

    def delete_experiment(self, name: str) -> None:
        """Soft-deletes an experiment: hidden from lists, restorable until ``gc``."""
        self._experiments.set_deleted(self._experiments.get(name).experiment_id, True)
        self._experiment_ids.pop(name, None)

    def restore_experiment(self, name: str) -> None:
        self._experiments.set_deleted(self._experiments.get(name).experiment_id, False)

    def _experiment_id(self, name: str) -> int:
        found = self._experiment_ids.get(name)
        if found is None:
            found = self._experiments.get_or_create(name).experiment_id
            self._experiment_ids[name] = found
        return found

    # -- runs -----------------------------------------------------------------
    def start_run(
        self,
        experiment: str = "default",
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        parent: Run | str | None = None,
    ) -> Run:
        """Starts a run; use it in a ``with`` block so it ends, and fails, by itself.

        Inside another run's block, the new run becomes that run's child unless
        ``parent`` says otherwise.
        """
        parent_id = parent.id if isinstance(parent, Run) else parent
        if parent_id is None and (current := active_run()) is not None and current._ws is self:
            parent_id = current.id
        if parent_id is not None:
            self._runs.get(parent_id)
        run_id = uuid.uuid4().hex
        env = environment()
        if env.environment_id not in self._stored_environments:
            self._runs.ensure_environment(
                env.environment_id, env.python_version, env.platform, env.packages_json()
            )
            self._stored_environments.add(env.environment_id)
        code = code_version()
        diff_sha = None
        if code is not None and code.dirty and code.diff:
            blob = self.artifacts.put_bytes(code.diff)
            self._blobs.touch([(blob.sha256, blob.size)])
            diff_sha = blob.sha256
        info = self._runs.create(
            {
                "run_id": run_id,
                "experiment_id": self._experiment_id(experiment),
                "name": run_name or _default_run_name(run_id),
                "parent_run_id": parent_id,
                "status": RunStatus.RUNNING,
                "start_time": now_ms(),
                "user": current_user(),
                "source": " ".join(sys.argv)[:2000] or None,
                "git_commit": code.commit if code else None,
                "git_dirty": code.dirty if code else None,
                "git_diff_sha256": diff_sha,
                "environment_id": env.environment_id,
            },
            {k: param_text(v) for k, v in (tags or {}).items()},
        )
        run = Run(self, info)
        self._open_runs[run_id] = run
        return run

    def get_run(self, run_id: str) -> Run:
        """A handle on a stored run (to read it or log more to it).

        ``run_id`` may be a unique prefix of at least 6 characters, as the CLI prints.
        """
        if len(run_id) != 32 or not all(c in _HEX for c in run_id):
            if len(run_id) < 6 or not all(c in _HEX for c in run_id):
                raise NotFoundError(
                    f"No run {run_id!r}: run ids are 32 hexadecimal characters, and a prefix "
                    "needs at least 6 of them. `loopml runs list` shows run ids."
                )
            matches = self._runs.ids_starting_with(run_id)
            if len(matches) > 1:
                raise ValidationError(
                    f"More than one run id starts with {run_id!r} ({', '.join(matches[:3])}"
                    f"{', ...' if len(matches) > 3 else ''}); give more characters."
                )
            if matches:
                run_id = matches[0]
        return Run(self, self._runs.get(run_id))

    def delete_run(self, run_id: str) -> None:
        """Soft-deletes a run and its children: hidden, restorable until ``gc``.

        Refused while a registered model version comes from one of them: the version's
        lineage starts at its run.
        """
        ids = [run_id, *self._descendants(run_id)]
        registered = self.registry._repo.versions_of_run(ids)
        if registered:
            names = ", ".join(f"models:/{v.name}/{v.version}" for v in registered[:5])
            raise ConflictError(
                f"Run {run_id} (or a child) is the source of {names}; delete those versions "
                "first (`ws.registry.delete_version`), then the run."
            )
        self._runs.set_deleted(ids, True)

    def restore_run(self, run_id: str) -> None:
        ids = [run_id, *self._descendants(run_id)]
        self._runs.set_deleted(ids, False)

    def _descendants(self, run_id: str) -> list[str]:
        self._runs.get(run_id)
        found: list[str] = []
        frontier = [run_id]
        while frontier:
            children = [c.run_id for parent in frontier for c in self._runs.children(parent)]
            found += children
            frontier = children
        return found

    @overload
    def search_runs(
        self,
        experiment: str | Sequence[str] | None = ...,
        filter: str | None = ...,
        order_by: Sequence[str] | None = ...,
        max_results: int = ...,
        offset: int = ...,
        include_deleted: bool = ...,
        output: Literal["frame"] = ...,
    ) -> pd.DataFrame: ...

    @overload
    def search_runs(
        self,
        experiment: str | Sequence[str] | None = ...,
        filter: str | None = ...,
        order_by: Sequence[str] | None = ...,
        max_results: int = ...,
        offset: int = ...,
        include_deleted: bool = ...,
        *,
        output: Literal["runs"],
    ) -> list[Run]: ...

    def search_runs(
        self,
        experiment: str | Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 1000,
        offset: int = 0,
        include_deleted: bool = False,
        output: Literal["frame", "runs"] = "frame",
    ) -> pd.DataFrame | list[Run]:
        """Finds runs by a filter such as ``metrics.auc > 0.8 and params.model = 'rf'``.

        Args:
            experiment: An experiment name, several, or None for all.
            filter: The filter expression (see ``loopml.store.search``).
            order_by: Items like ``"metrics.auc desc"``; newest first by default.
            max_results: Page size; use ``offset`` for the next page.
            output: ``"frame"`` for a DataFrame (one row per run; ``metrics.*``,
                ``params.*`` and ``tags.*`` columns) or ``"runs"`` for Run objects.
        """
        if max_results < 1:
            raise ValidationError(f"max_results must be at least 1, got {max_results}.")
        queries = self._search_queries(experiment, filter, order_by, include_deleted)
        with self.db.read() as session:
            run_ids = run_search(session, queries, max_results, offset)
        records = self._runs.records(run_ids)
        if output == "runs":
            return [Run(self, record.info) for record in records]
        experiments = self.experiments(include_deleted=True)
        return _runs_frame(
            records,
            {e.experiment_id: e.name for e in experiments},
            {e.experiment_id for e in experiments if e.deleted},
        )

    def count_runs(
        self,
        experiment: str | Sequence[str] | None = None,
        filter: str | None = None,
        include_deleted: bool = False,
    ) -> int:
        """How many runs ``search_runs`` would find with the same arguments, at any page size."""
        queries = self._search_queries(experiment, filter, None, include_deleted)
        with self.db.read() as session:
            return count_matches(session, queries)

    def _search_queries(
        self,
        experiment: str | Sequence[str] | None,
        filter: str | None,
        order_by: Sequence[str] | None,
        include_deleted: bool,
    ) -> list[Any]:
        self._writer.flush()
        experiment_ids = None
        if experiment is not None:
            names = [experiment] if isinstance(experiment, str) else list(experiment)
            experiment_ids = [self._experiments.get(name).experiment_id for name in names]
        tree = parse_filter(filter) if filter and filter.strip() else None
        return compile_search(
            experiment_ids, tree, parse_order_by(list(order_by or [])), include_deleted
        )

    # -- training -------------------------------------------------------------
    def train(self, model: Any, data: Any, target: str, **options: Any) -> TrainResult:
        """Fits ``model`` on ``data`` and tracks the run; see :func:`loopml.training.train`."""
        from loopml.training import train

        return train(self, model, data, target, **options)

    def tune(
        self, model: Any, space: Mapping[str, Any], data: Any, target: str, **options: Any
    ) -> TuneResult:
        """Searches ``space`` for the best params of ``model`` on Optuna, each trial a child
        run of one parent run; see :func:`loopml.training.search.tune` for the options
        (``n_trials``, ``executor="local"|"ray"``, ``metric``, ``cv``, ``sampler``, ...)."""
        from loopml.training.search import tune

        return tune(self, model, space, data, target, **options)

    # -- evaluation -----------------------------------------------------------
    def evaluate(self, model: Any, data: Any, target: str, **options: Any) -> Evaluation:
        """Evaluates a model (estimator, Run, run id, ``runs:/<id>/model``) on data (a
        DataFrame or ``"churn@4"``); see :func:`loopml.evaluation.evaluate` for options."""
        from loopml.evaluation import evaluate

        return evaluate(self, model, data, target, **options)

    def evaluations(self, run: Run | str) -> list[Evaluation]:
        """The stored evaluations of a run's model, oldest first."""
        from loopml.evaluation import evaluations

        return evaluations(self, run)

    def gate(
        self,
        candidate: Any,
        policy: Any,
        champion: Any = None,
        data: Any = None,
        target: str | None = None,
    ) -> GateResult:
        """Passes or fails ``candidate`` on a gate policy (YAML path, YAML text or dict),
        optionally against ``champion``; see :func:`loopml.evaluation.gate.gate`."""
        from loopml.evaluation.gate import gate

        return gate(self, candidate, policy, champion=champion, data=data, target=target)

    # -- prediction log and feedback -------------------------------------------
    def predictions(
        self,
        model: str,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        version: int | None = None,
        source: str | None = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """The logged predictions of ``model`` with ``since <= time < until``, oldest first
        (only ``columns`` of them when given: only those are read); see
        :func:`loopml.serving.feedback.predictions` (``source``: online or batch)."""
        from loopml.serving.feedback import predictions

        return predictions(self, model, since, until, version, source, columns)

    def delete_predictions(self, before: TimeLike, model: str | None = None) -> int:
        """Drops logged predictions older than ``before`` (whole files); returns the rows
        dropped. ``gc`` then frees their storage."""
        from loopml.serving.feedback import delete_predictions

        return delete_predictions(self, before, model)

    def log_feedback(
        self,
        request_id: str,
        label: Any,
        *,
        row: int = 0,
        entity: str | None = None,
        time: TimeLike | None = None,
        model: str | None = None,
    ) -> None:
        """Records the true label of a logged prediction (row ``row`` of ``request_id``).
        Idempotent: the same request id and row again replaces the label."""
        from loopml.serving.feedback import log_feedback

        log_feedback(self, request_id, label, row=row, entity=entity, time=time, model=model)

    def log_feedback_frame(self, frame: pd.DataFrame) -> int:
        """Records many labels from a DataFrame (``request_id``, ``label``; optionally
        ``row``, ``entity``, ``time``, ``model``); returns how many were stored."""
        from loopml.serving.feedback import log_feedback_frame

        return log_feedback_frame(self, frame)

    def feedback(self, model: str | None = None, since: TimeLike | None = None) -> pd.DataFrame:
        """The labels recorded since ``since``, of ``model`` when given."""
        from loopml.serving.feedback import feedback

        return feedback(self, model, since)

    def predictions_with_feedback(
        self, model: str, since: TimeLike | None = None, until: TimeLike | None = None
    ) -> pd.DataFrame:
        """The logged predictions of ``model`` left-joined to their labels by request id
        and row (``label``, ``label_time``, ``labelled_at``; missing while unlabelled)."""
        from loopml.serving.feedback import predictions_with_feedback

        return predictions_with_feedback(self, model, since, until)

    # -- maintenance ----------------------------------------------------------
    def gc(self, grace_seconds: float = 3600.0, dry_run: bool = False) -> GcReport:
        """Permanently removes deleted model versions, runs and experiments and frees
        unreferenced artifacts.

        Artifacts stored in the last ``grace_seconds`` are kept even when unreferenced,
        so a run that is logging right now never loses a file. ``dry_run`` reports what
        would go and changes nothing.
        """
        self._writer.flush()
        cutoff = now_ms() - int(grace_seconds * 1000)
        plan = self._blobs.collect(cutoff, dry_run=dry_run)
        doomed = list(plan.blobs)
        # Objects with no blob row: a writer died between storing the bytes and recording them.
        orphans = [o for o in self.artifacts.list_objects() if o[2] * 1000 < cutoff]
        collected = {sha for sha, _ in doomed}
        for start in range(0, len(orphans), 500):
            chunk = [o for o in orphans[start : start + 500] if o[0] not in collected]
            known = self._blobs.known([sha for sha, _, _ in chunk])
            doomed += [(sha, size) for sha, size, _ in chunk if sha not in known]
        if not dry_run:
            for sha256, _ in doomed:
                self.artifacts.delete(sha256)
            self.artifacts.clean_tmp(cutoff / 1000)
            self._experiment_ids.clear()
        return GcReport(
            plan.runs, plan.experiments, len(doomed), sum(s for _, s in doomed), plan.model_versions
        )


def _runs_frame(
    records: Sequence[Any], experiment_names: dict[int, str], deleted_experiments: set[int]
) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for record in records:
        info = record.info
        row: dict[str, Any] = {
            "run_id": info.run_id,
            "experiment": experiment_names.get(info.experiment_id),
            "run_name": info.name,
            "status": info.status,
            "start_time": info.start_time,
            "end_time": info.end_time,
            "parent_run_id": info.parent_run_id,
            "user": info.user,
            "git_commit": info.git_commit,
            "deleted": info.deleted or info.experiment_id in deleted_experiments,
        }
        row.update({f"metrics.{k}": v for k, v in record.metrics.items()})
        row.update({f"params.{k}": v for k, v in record.params.items()})
        row.update({f"tags.{k}": v for k, v in record.tags.items()})
        rows.append(row)
    columns = ["run_id", "experiment", "run_name", "status", "start_time", "end_time",
               "parent_run_id", "user", "git_commit", "deleted"]  # fmt: skip
    frame = pd.DataFrame(
        rows, columns=columns + sorted({c for r in rows for c in r} - set(columns))
    )
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    return frame


def _default_run_name(run_id: str) -> str:
    return f"run-{run_id[:8]}"


@atexit.register
def _close_open_runs_at_exit() -> None:
    for workspace in list(_OPEN):
        for run in list(workspace._open_runs.values()):
            with contextlib.suppress(Exception):
                run.end(RunStatus.FINISHED)
