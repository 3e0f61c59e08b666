"""Repositories: the only code that reads and writes store rows."""

from loopml.store.repositories.blobs import BlobRepository
from loopml.store.repositories.experiments import ExperimentRepository
from loopml.store.repositories.runs import RunRepository

__all__ = ["BlobRepository", "ExperimentRepository", "RunRepository"]
