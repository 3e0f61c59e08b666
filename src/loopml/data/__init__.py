"""The data layer: ingestion, contracts, validation, versions, lineage, splits, profiles.

Reach it through a workspace: ``ws.data.ingest(...)``, ``ws.data.get("churn@3")``.
"""

from loopml.data.catalog import DataCatalog, DatasetVersion, DataValidationError
from loopml.data.contract import ColumnContract, Contract, infer_contract, load_contract
from loopml.data.diff import DatasetDiff
from loopml.data.validation import CheckResult, ValidationReport

__all__ = [
    "CheckResult",
    "ColumnContract",
    "Contract",
    "DataCatalog",
    "DataValidationError",
    "DatasetDiff",
    "DatasetVersion",
    "ValidationReport",
    "infer_contract",
    "load_contract",
]
