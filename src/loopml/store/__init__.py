"""The metadata store: SQLAlchemy tables, Alembic migrations, repositories."""

from loopml.store.database import Database
from loopml.store.entities import ArtifactInfo, Experiment, Metric, RunInfo, RunRecord, RunStatus

__all__ = ["ArtifactInfo", "Database", "Experiment", "Metric", "RunInfo", "RunRecord", "RunStatus"]
