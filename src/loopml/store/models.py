"""SQLAlchemy tables of the metadata store; rows never leave ``loopml.store``.

Migrations in ``store/migrations`` create and upgrade these tables; a test compares
the migrated schema with this module so the two cannot drift apart.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AlertRow",
    "AliasEventRow",
    "ApprovalRow",
    "Base",
    "BlobRow",
    "ContractRow",
    "DatasetRow",
    "DatasetVersionRow",
    "DeploymentRequestRow",
    "EnvironmentRow",
    "EvaluationRow",
    "ExperimentRow",
    "FeedbackRow",
    "GateRow",
    "LatestMetricRow",
    "MetricRow",
    "ModelAliasRow",
    "ModelVersionFileRow",
    "ModelVersionRow",
    "ModelVersionTagRow",
    "MonitorCursorRow",
    "MonitorPointRow",
    "ParamRow",
    "PipelineFiringRow",
    "PipelineRunLinkRow",
    "PipelineRunRow",
    "PipelineStepRunRow",
    "PipelineTriggerRow",
    "PredictionFileRow",
    "RegisteredModelRow",
    "RegisteredModelTagRow",
    "RunArtifactRow",
    "RunInputRow",
    "RunRow",
    "SplitRow",
    "TagRow",
]

# Stable constraint names so migrations can refer to them on every backend.
_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


class ExperimentRow(Base):
    __tablename__ = "experiments"

    experiment_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    deleted_at: Mapped[int | None] = mapped_column(BigInteger)


class EnvironmentRow(Base):
    """A Python environment, stored once per distinct content (runs point at it)."""

    __tablename__ = "environments"

    environment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    python_version: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(256))
    packages: Mapped[str] = mapped_column(Text)  # JSON object: distribution -> version


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (Index(None, "experiment_id", "start_time"),)

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.experiment_id"))
    name: Mapped[str] = mapped_column(String(256))
    parent_run_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.run_id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    start_time: Mapped[int] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    user: Mapped[str | None] = mapped_column(String(256))
    source: Mapped[str | None] = mapped_column(Text)
    git_commit: Mapped[str | None] = mapped_column(String(64))
    git_dirty: Mapped[bool | None] = mapped_column(Boolean)
    git_diff_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    environment_id: Mapped[str | None] = mapped_column(ForeignKey("environments.environment_id"))
    deleted_at: Mapped[int | None] = mapped_column(BigInteger)


class ParamRow(Base):
    __tablename__ = "params"
    __table_args__ = (Index(None, "key", "value_number"),)

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    # The value as a number when it reads as one, so `params.lr < 0.1` compares numbers.
    value_number: Mapped[float | None] = mapped_column(Float)


class TagRow(Base):
    __tablename__ = "tags"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class MetricRow(Base):
    """Every logged metric value: the full history. NaN is kept as value NULL + is_nan."""

    __tablename__ = "metrics"
    __table_args__ = (Index(None, "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(256))
    value: Mapped[float | None] = mapped_column(Float)
    is_nan: Mapped[bool] = mapped_column(Boolean, default=False)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)


class LatestMetricRow(Base):
    """The newest value of each metric per run (highest step, then time): what search reads."""

    __tablename__ = "latest_metrics"
    __table_args__ = (Index(None, "key", "value"),)

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)
    is_nan: Mapped[bool] = mapped_column(Boolean, default=False)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)


class BlobRow(Base):
    """One stored content hash in the artifact store; references live in other tables."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    # Last time anything stored this content: gc spares blobs touched within its grace time.
    touched_at: Mapped[int] = mapped_column(BigInteger)


class RunArtifactRow(Base):
    __tablename__ = "run_artifacts"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)


# -- data layer -------------------------------------------------------------------
class DatasetRow(Base):
    __tablename__ = "datasets"

    dataset_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)


class ContractRow(Base):
    """One version of a named data contract (its body is the contract as JSON)."""

    __tablename__ = "contracts"
    __table_args__ = (UniqueConstraint("name", "version"), UniqueConstraint("name", "sha256"))

    contract_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)


class DatasetVersionRow(Base):
    """An immutable version of a dataset: its Parquet file, schema, provenance and report."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version"),
        UniqueConstraint("dataset_id", "content_sha256"),
        Index(None, "content_sha256"),
    )

    version_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.dataset_id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    # Hash of the data itself (Arrow IPC of the rows), whatever file layout stores it.
    content_sha256: Mapped[str] = mapped_column(String(64))
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    rows: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[int] = mapped_column(Integer)
    schema: Mapped[str] = mapped_column(Text)  # JSON list of {name, type}
    source: Mapped[str] = mapped_column(Text)
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.contract_id"))
    on_invalid: Mapped[str] = mapped_column(String(16))
    report: Mapped[str | None] = mapped_column(Text)  # JSON validation report
    # For a quarantine version: the version whose invalid rows it holds.
    parent_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset_versions.version_id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str | None] = mapped_column(String(256))
    run_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.run_id", ondelete="SET NULL"), index=True
    )


class RunInputRow(Base):
    """A dataset version a run read, and in which role (train, valid, test, ...)."""

    __tablename__ = "run_inputs"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    version_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_versions.version_id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(64), primary_key=True)


class SplitRow(Base):
    """A stored split definition of a dataset version and the row assignment it produced."""

    __tablename__ = "splits"
    __table_args__ = (UniqueConstraint("version_id", "definition_sha256"),)

    split_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_versions.version_id", ondelete="CASCADE")
    )
    definition: Mapped[str] = mapped_column(Text)  # JSON
    definition_sha256: Mapped[str] = mapped_column(String(64))
    assignment_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


# -- evaluation layer ---------------------------------------------------------------
class EvaluationRow(Base):
    """One stored evaluation of a model on data: its headline metrics and its full result."""

    __tablename__ = "evaluations"
    __table_args__ = (Index(None, "run_id", "created_at"),)

    evaluation_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The run whose model was evaluated (or the run it was logged to); NULL for a bare model.
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset_versions.version_id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[int] = mapped_column(BigInteger)
    metrics: Mapped[str] = mapped_column(Text)  # JSON object: metric -> value
    result: Mapped[str] = mapped_column(Text)  # JSON of Evaluation.to_dict()


# -- evaluation gates ---------------------------------------------------------------
class GateRow(Base):
    """One validation gate of a candidate model: passed or not, with every check's verdict."""

    __tablename__ = "gates"
    __table_args__ = (Index(None, "run_id", "created_at"),)

    gate_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The candidate's run; NULL for a bare model object.
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    champion_run_id: Mapped[str | None] = mapped_column(String(32))
    evaluation_id: Mapped[str | None] = mapped_column(
        ForeignKey("evaluations.evaluation_id", ondelete="SET NULL"), index=True
    )
    passed: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[int] = mapped_column(BigInteger)
    result: Mapped[str] = mapped_column(Text)  # JSON of GateResult.to_dict()


# -- model registry -----------------------------------------------------------------
class RegisteredModelRow(Base):
    """A named model: the home of its numbered versions and its aliases."""

    __tablename__ = "registered_models"

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str | None] = mapped_column(String(256))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class RegisteredModelTagRow(Base):
    __tablename__ = "registered_model_tags"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelVersionRow(Base):
    """One immutable version: a model bundle stored by a run, with its lineage links."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        # Registering the same run's model twice finds this row instead of a new version.
        UniqueConstraint("model_id", "run_id", "model_path"),
    )

    version_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.model_id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    # Every version comes from a run (objects and bundles get one at registration), so
    # lineage always starts at a run; gc keeps runs that a version still names.
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), index=True)
    model_path: Mapped[str] = mapped_column(String(1024))
    manifest_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    flavor: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    parent_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.version_id", ondelete="SET NULL")
    )
    created_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str | None] = mapped_column(String(256))
    deleted_at: Mapped[int | None] = mapped_column(BigInteger)


class ModelVersionTagRow(Base):
    __tablename__ = "model_version_tags"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.version_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelVersionFileRow(Base):
    """A file of a version's bundle: its own reference to the blob, so a version keeps
    its files whatever happens to the run's artifacts."""

    __tablename__ = "model_version_files"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.version_id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)


class ModelAliasRow(Base):
    """Where an alias points now; ``alias_events`` holds how it got there."""

    __tablename__ = "model_aliases"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(128), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.version_id"), index=True)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class AliasEventRow(Base):
    """One move of an alias: who, when, from which version to which, why and on what grounds."""

    __tablename__ = "alias_events"
    __table_args__ = (Index(None, "model_id", "alias", "event_id"),)

    event_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.model_id", ondelete="CASCADE")
    )
    alias: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))  # promote | rollback | remove
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    user: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(Text)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    gate_id: Mapped[str | None] = mapped_column(String(32))
    approvals: Mapped[str | None] = mapped_column(Text)  # JSON list of approving users


class ApprovalRow(Base):
    """One person's approval of a version for an alias; distinct users are counted."""

    __tablename__ = "model_approvals"
    __table_args__ = (UniqueConstraint("version_id", "alias", "user"),)

    approval_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.version_id", ondelete="CASCADE")
    )
    alias: Mapped[str] = mapped_column(String(128))
    user: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)
    comment: Mapped[str | None] = mapped_column(Text)


# -- serving ----------------------------------------------------------------------
class PredictionFileRow(Base):
    """One Parquet file of the prediction log: whose predictions, which time range, where."""

    __tablename__ = "prediction_files"
    __table_args__ = (Index(None, "model", "max_time"),)

    file_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(Integer)
    arm: Mapped[str | None] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(16))  # online | batch
    min_time: Mapped[int] = mapped_column(BigInteger)  # epoch ms, rounded down
    max_time: Mapped[int] = mapped_column(BigInteger)  # epoch ms, rounded up
    rows: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    schema: Mapped[str] = mapped_column(Text)  # JSON list of [name, Arrow type]
    created_at: Mapped[int] = mapped_column(BigInteger)
    # A batch job's file holds no inputs: they are rows of this Parquet blob (its input
    # file, or the dataset version it scored), row n being the logged row n.
    inputs_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    inputs_columns: Mapped[str | None] = mapped_column(Text)  # JSON list of the blob's columns


class FeedbackRow(Base):
    """The true label of one logged prediction (request id and row); a new label replaces it."""

    __tablename__ = "feedback"
    __table_args__ = (Index(None, "created_at"), Index(None, "model", "created_at"))

    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    row: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(Text)  # JSON, so numbers, text and booleans round-trip
    model: Mapped[str | None] = mapped_column(String(256))
    entity: Mapped[str | None] = mapped_column(String(256), index=True)
    time: Mapped[int] = mapped_column(BigInteger)  # when the outcome happened, epoch ms
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


# -- monitoring -------------------------------------------------------------------
class MonitorPointRow(Base):
    """One value of a monitored series in one window (see ``loopml.monitoring.series``)."""

    __tablename__ = "monitor_points"
    __table_args__ = (
        UniqueConstraint(
            "model",
            "version",
            "start_time",
            "end_time",
            "kind",
            "name",
            "test",
            name="uq_monitor_points_window",  # the convention's name passes PostgreSQL's 63
        ),
        Index(None, "model", "kind", "name", "end_time"),
    )

    point_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(Integer)  # 0: every version of the model
    start_time: Mapped[int] = mapped_column(BigInteger)  # epoch ms, inclusive
    end_time: Mapped[int] = mapped_column(BigInteger)  # epoch ms, exclusive
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(256))
    test: Mapped[str] = mapped_column(String(32))
    value: Mapped[float | None] = mapped_column(Float)  # NULL for NaN, which SQLite drops
    p_value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    flagged: Mapped[bool | None] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(Text)  # JSON object
    created_at: Mapped[int] = mapped_column(BigInteger)


class AlertRow(Base):
    """An alert: fired by a rule on a model's series, open until its condition clears."""

    __tablename__ = "alerts"
    __table_args__ = (Index(None, "model", "fired_at"),)

    alert_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(256))
    model: Mapped[str] = mapped_column(String(256))
    series: Mapped[str] = mapped_column(String(512))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # firing | resolved
    # "<rule>|<model>" while firing, NULL once resolved: the unique constraint keeps one
    # open alert per rule and model, across processes, without a dialect's partial index.
    open_key: Mapped[str | None] = mapped_column(String(600), unique=True)
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    window_end: Mapped[int] = mapped_column(BigInteger)  # the window that fired it, epoch ms
    fired_at: Mapped[int] = mapped_column(BigInteger)
    resolved_at: Mapped[int | None] = mapped_column(BigInteger)
    notified_at: Mapped[int | None] = mapped_column(BigInteger)
    notify_attempts: Mapped[int] = mapped_column(Integer)
    notify_error: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(Text)  # JSON: what the alert triggered


class MonitorCursorRow(Base):
    """How far a named monitor has evaluated, and who holds it (a lease, not a lock)."""

    __tablename__ = "monitor_cursors"

    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    position: Mapped[int | None] = mapped_column(BigInteger)  # end of the last window, ms
    state: Mapped[str] = mapped_column(Text)  # JSON: what the monitor carries between windows
    owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


# -- pipelines --------------------------------------------------------------------
class PipelineRunRow(Base):
    """One run of a pipeline; ``heartbeat_at`` is its owner's lease (see loopml.pipelines)."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (Index(None, "pipeline", "started_at"), Index(None, "started_at"))

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(256))
    target: Mapped[str | None] = mapped_column(Text)  # how to load it again (resume)
    status: Mapped[str] = mapped_column(String(16))
    executor: Mapped[str] = mapped_column(String(16))
    params: Mapped[str] = mapped_column(Text)  # JSON object
    graph: Mapped[str] = mapped_column(Text)  # JSON: steps and their inputs
    reason: Mapped[str | None] = mapped_column(Text)
    trigger: Mapped[str | None] = mapped_column(String(256))
    resumed_from: Mapped[str | None] = mapped_column(String(32))
    user: Mapped[str | None] = mapped_column(String(256))
    error: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[int] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger)


class PipelineStepRunRow(Base):
    """One step of a pipeline run: its cache key, attempts, inputs, outputs and logs."""

    __tablename__ = "pipeline_step_runs"
    __table_args__ = (UniqueConstraint("run_id", "step"),)

    step_run_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("pipeline_runs.run_id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(256))
    function: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16))
    cache_key: Mapped[str | None] = mapped_column(String(64), index=True)
    code_hash: Mapped[str | None] = mapped_column(String(64))
    cached_from: Mapped[int | None] = mapped_column(Integer)  # the step run reused
    attempts: Mapped[int] = mapped_column(Integer)
    params: Mapped[str] = mapped_column(Text)  # JSON object: literal arguments
    inputs: Mapped[str] = mapped_column(Text)  # JSON object: argument -> artifact
    outputs: Mapped[str | None] = mapped_column(Text)  # JSON: the stored output artifact
    # The output's blob, when stored as an artifact: a column so `gc` keeps it.
    output_sha256: Mapped[str | None] = mapped_column(String(64))
    logs: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[int | None] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger)


class PipelineRunLinkRow(Base):
    """A tracking run started inside a pipeline step (lineage: version -> pipeline run)."""

    __tablename__ = "pipeline_run_links"

    tracking_run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    step_run_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline_step_runs.step_run_id", ondelete="CASCADE"), index=True
    )


# -- pipeline schedules and triggers ------------------------------------------------
class PipelineTriggerRow(Base):
    """What starts a pipeline: a cron schedule, a new dataset version, an alert or a call.

    One table for every kind so firings, rate limits and names work the same for all;
    the columns a kind does not use stay NULL.
    """

    __tablename__ = "pipeline_triggers"

    trigger_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # schedule | dataset | alert | manual
    target: Mapped[str] = mapped_column(Text)  # what run_pipeline takes, or py:module:function
    params: Mapped[str] = mapped_column(Text)  # JSON object
    enabled: Mapped[bool] = mapped_column(Boolean)
    cron: Mapped[str | None] = mapped_column(String(256))
    timezone: Mapped[str | None] = mapped_column(String(64))
    catch_up: Mapped[str | None] = mapped_column(String(8))  # none | all | skip
    max_catch_up: Mapped[int | None] = mapped_column(Integer)
    # Occurrences at or before this time (epoch ms) are never due: a new schedule does
    # not catch up on the time before it existed.
    start_at: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str | None] = mapped_column(String(256))  # dataset or model name
    rule: Mapped[str | None] = mapped_column(String(256))  # alert rule, NULL for any
    data_param: Mapped[str | None] = mapped_column(String(256))
    position: Mapped[int | None] = mapped_column(BigInteger)  # last dataset version or alert id
    max_runs: Mapped[int | None] = mapped_column(Integer)  # rate limit: runs per period
    period_ms: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class PipelineFiringRow(Base):
    """One occurrence or event of a trigger, claimed before it runs: the unique key is
    what makes each one run once across schedulers and restarts."""

    __tablename__ = "pipeline_firings"
    __table_args__ = (
        UniqueConstraint("trigger_id", "event"),
        Index(None, "trigger_id", "created_at"),
        Index(None, "status", "lease_until"),
    )

    firing_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trigger_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline_triggers.trigger_id", ondelete="CASCADE")
    )
    # "2026-11-23T03:00:00Z" (a schedule's occurrence), "dataset:churn@5", "alert:17",
    # "manual:<id>".
    event: Mapped[str] = mapped_column(String(256))
    occurrence: Mapped[int | None] = mapped_column(BigInteger)  # a schedule's time, epoch ms
    status: Mapped[str] = mapped_column(String(16))  # running | succeeded | failed | suppressed
    reason: Mapped[str] = mapped_column(Text)  # JSON: why the run started
    owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[int | None] = mapped_column(BigInteger)  # wall clock, epoch ms
    run_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)


# -- deployment requests -------------------------------------------------------------
class DeploymentRequestRow(Base):
    """A request that a running server following ``model@alias`` deploy a candidate
    version beside the alias's holder (see ``loopml.serving.deployment``)."""

    __tablename__ = "deployment_requests"
    __table_args__ = (Index(None, "model", "requested_at"), Index(None, "requested_at"))

    request_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(256))
    alias: Mapped[str] = mapped_column(String(128))
    candidate_version: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(16))
    plan: Mapped[str] = mapped_column(Text)  # JSON object: the canary plan
    check_seconds: Mapped[float] = mapped_column(Float)
    # pending | running | promoted | rolled_back | failed | expired | cancelled
    state: Mapped[str] = mapped_column(String(16))
    # "<model>@<alias>" while pending or running, NULL once done: the unique constraint
    # keeps one live request per alias across processes, without a partial index.
    live_key: Mapped[str | None] = mapped_column(String(400), unique=True)
    detail: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    cancel_reason: Mapped[str | None] = mapped_column(Text)  # a running one: the server acts
    requested_by: Mapped[str] = mapped_column(String(256))
    requested_at: Mapped[int] = mapped_column(BigInteger)
    claimed_by: Mapped[str | None] = mapped_column(String(128))  # host:pid of the server
    claimed_at: Mapped[int | None] = mapped_column(BigInteger)
    heartbeat_at: Mapped[int | None] = mapped_column(BigInteger)  # the server's, while running
    updated_at: Mapped[int] = mapped_column(BigInteger)
