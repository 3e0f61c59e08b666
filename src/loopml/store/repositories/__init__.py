"""Repositories: the only code that reads and writes store rows."""

from loopml.store.repositories.blobs import BlobRepository
from loopml.store.repositories.datasets import DatasetRepository
from loopml.store.repositories.evaluations import EvaluationRepository
from loopml.store.repositories.experiments import ExperimentRepository
from loopml.store.repositories.gates import GateRepository
from loopml.store.repositories.runs import RunRepository

__all__ = [
    "BlobRepository",
    "DatasetRepository",
    "EvaluationRepository",
    "ExperimentRepository",
    "GateRepository",
    "RunRepository",
]
