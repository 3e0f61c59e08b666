"""``ws.data``: ingest, contracts, versions, reads, diffs, splits and lineage of datasets."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from loopml._identity import current_user
from loopml.data import ingest as _ingest
from loopml.data.contract import Contract, infer_contract, load_contract
from loopml.data.sources import Source, open_parquet, open_source
from loopml.data.validation import ValidationReport, Validator
from loopml.errors import NotFoundError, ValidationError
from loopml.store.repositories.datasets import DatasetRepository, VersionRecord

if TYPE_CHECKING:
    from loopml.data.diff import DatasetDiff
    from loopml.data.profile import DatasetProfile
    from loopml.workspace import Workspace

__all__ = ["DataCatalog", "DataValidationError", "DatasetVersion"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}$")
_HASH_PREFIX = re.compile(r"^[0-9a-f]{8,64}$")


class DataValidationError(ValidationError):
    """A batch failed its contract under ``on_invalid="fail"``; ``.report`` says how."""

    def __init__(self, message: str, report: ValidationReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class DatasetVersion:
    """An immutable, validated version of a dataset (refer to it as ``name@version``)."""

    name: str
    version: int
    content_hash: str
    rows: int
    columns: int
    schema: list[dict[str, str]]
    source: str
    contract_version: int | None
    on_invalid: str
    report: ValidationReport | None
    created_at: datetime
    created_by: str | None
    run_id: str | None
    quarantine: DatasetVersion | None = None
    created: bool = field(default=False, compare=False)  # False: an identical version existed
    version_id: int = field(default=0, repr=False)
    blob_sha256: str = field(default="", repr=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def __str__(self) -> str:
        return f"{self.ref} ({self.rows:,} rows x {self.columns} columns, {self.content_hash[:12]})"


class DataCatalog:
    """The data layer of a workspace, reached as ``ws.data``."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self._repo = DatasetRepository(workspace.db)

    # -- ingestion -------------------------------------------------------------
    def ingest(
        self,
        source: Any,
        name: str,
        contract: Contract | str | Path | Mapping[str, Any] | bool | None = None,
        on_invalid: Literal["fail", "quarantine", "warn"] = "fail",
        *,
        sql_url: str | None = None,
        run: Any = None,
        on_progress: Callable[[Source], None] | None = None,
    ) -> DatasetVersion:
        """Reads, validates and stores a source as a new version of dataset ``name``.

        Args:
            source: A CSV, Parquet or JSON Lines file, a glob of them, a folder of
                Parquet files, a pandas DataFrame, a pyarrow Table, or a SQL query (with
                ``sql_url``).
            name: The dataset's name.
            contract: A Contract, a YAML/JSON file or its text, or a dict. ``None``
                uses the newest contract stored for ``name`` (if any); ``False`` none.
            on_invalid: ``fail`` stores nothing when any check fails, ``quarantine``
                stores valid rows and sets the others aside in ``<name>.quarantine``
                with a reason per row, ``warn`` stores every row and the problems.
            run: The run (or run id) that produced the data, if any.
            on_progress: Called after each batch with the source (its ``progress``
                and ``total`` drive a progress bar).

        Identical content gives back the existing version: no new number, no new file.
        """
        _check_name(name)
        _ingest.check_policy(on_invalid)
        resolved = self._contract_for(name, contract)
        string_columns = frozenset(c.name for c in resolved.columns) if resolved else frozenset()
        opened = open_source(source, string_columns=string_columns, sql_url=sql_url)
        validator = Validator(resolved) if resolved is not None else None
        if validator is not None and on_invalid == "fail":
            # One repeat refuses every row anyway: check unique keys once, in finish().
            validator.defer_unique_checks()
        folder = _ingest.temporary_folder(self._ws.settings.home)
        try:
            main, quarantined, rows_in = _ingest.write_versions(
                opened.batches(),
                folder,
                validator.check if validator is not None else None,
                on_invalid,
                (lambda: on_progress(opened)) if on_progress else None,
            )
            report = validator.finish() if validator is not None else None
            _refuse_bad_batches(opened.description, rows_in, report, on_invalid)
            assert main is not None
            current = _run_id(run)
            contract_id = None
            if resolved is not None:  # stored only with data that it let through
                saved = self._repo.save_contract(name, resolved.sha256, resolved.to_json())
                contract_id = saved.contract_id
            stored, created = self._store(
                name, main, opened.description, contract_id, on_invalid, report, None, current
            )
            if quarantined is not None and quarantined.rows:
                reason = f"rows of {name}@{stored.version} that failed validation"
                self._store(f"{name}.quarantine", quarantined, reason, None, "quarantine",
                            None, stored.version_id, current)  # fmt: skip
            return replace(self._public(stored), created=created)
        finally:
            _ingest.remove_folder(folder)

    def _store(
        self,
        name: str,
        written: _ingest.Written,
        source: str,
        contract_id: int | None,
        on_invalid: str,
        report: ValidationReport | None,
        parent: int | None,
        run_id: str | None,
    ) -> tuple[VersionRecord, bool]:
        blob = self._ws.artifacts.put_file(written.path, move=True)
        self._ws._blobs.touch([(blob.sha256, blob.size)])
        return self._repo.add_version(
            name,
            {
                "content_sha256": written.content_sha256,
                "blob_sha256": blob.sha256,
                "rows": written.rows,
                "columns": len(written.schema),
                "schema": json.dumps(_schema(written.schema)),
                "source": source[:4000],
                "contract_id": contract_id,
                "on_invalid": on_invalid,
                "report": json.dumps(report.to_dict()) if report is not None else None,
                "parent_version_id": parent,
                "created_by": current_user(),
                "run_id": run_id,
            },
        )

    def validate(
        self, source: Any, contract: Contract | str | Path | Mapping[str, Any], **options: Any
    ) -> ValidationReport:
        """Checks a source against a contract without storing anything."""
        resolved = _load(contract)
        validator = Validator(resolved)
        opened = open_source(
            source,
            string_columns=frozenset(c.name for c in resolved.columns),
            sql_url=options.get("sql_url"),
        )
        for batch in opened.batches():
            validator.check(batch)
        return validator.finish()

    # -- contracts ---------------------------------------------------------------
    def infer_contract(self, data: Any, sample_rows: int = 100_000, **options: Any) -> Contract:
        """A contract describing ``data`` (a DataFrame, Table or any ingestible source),
        from its first ``sample_rows`` rows, for a person to review and edit."""
        import pandas as pd

        if isinstance(data, (pd.DataFrame, pa.Table)):
            return infer_contract(data)
        opened = open_source(data, sql_url=options.get("sql_url"))
        batches = []
        rows = 0
        for batch in opened.batches():
            batches.append(batch)
            rows += batch.num_rows
            if rows >= sample_rows:
                break
        if not batches:
            raise ValidationError(f"{opened.description} holds no rows to infer a contract from.")
        return infer_contract(pa.Table.from_batches(batches).slice(0, sample_rows))

    def save_contract(self, name: str, contract: Contract | str | Path | Mapping[str, Any]) -> int:
        """Stores a contract for dataset ``name``; returns its version number (the same
        number when nothing changed)."""
        _check_name(name)
        resolved = _load(contract)
        return self._repo.save_contract(name, resolved.sha256, resolved.to_json()).version

    def contract(self, name: str, version: int | None = None) -> Contract:
        """The newest (or a given) contract version stored for ``name``."""
        record = self._repo.contract(name, version)
        if record is None:
            which = f" version {version}" if version else ""
            raise NotFoundError(
                f"No contract{which} for {name!r}. Write one with `loopml data contract infer` "
                "or pass contract= to ingest."
            )
        return load_contract(json.loads(record.body))

    def _contract_for(self, name: str, contract: Any) -> Contract | None:
        if contract is False:
            return None
        if contract is None or contract is True:
            record = self._repo.contract(name)
            if record is None:
                if contract is True:
                    raise NotFoundError(f"No contract stored for {name!r}.")
                return None
            return load_contract(json.loads(record.body))
        return _load(contract)

    # -- versions ------------------------------------------------------------------
    def version(self, ref: str | DatasetVersion, version: int | None = None) -> DatasetVersion:
        """The metadata of a version: ``"churn"`` (newest), ``"churn@3"``,
        ``"churn@<hash prefix>"`` or ``("churn", version=3)``."""
        return self._public(self._record(ref, version))

    def versions(self, name: str) -> list[DatasetVersion]:
        records = self._repo.versions(name)
        if not records:
            self._repo.version(name)  # raises NotFoundError with the known names
        return [self._public(record) for record in records]

    def datasets(self) -> list[tuple[str, int, int | None]]:
        """Every dataset: (name, number of versions, newest version)."""
        return self._repo.names()

    def get(
        self,
        ref: str | DatasetVersion,
        version: int | None = None,
        *,
        columns: Sequence[str] | None = None,
        format: Literal["pandas", "arrow", "duckdb"] = "pandas",
    ) -> Any:
        """The rows of a version as a pandas DataFrame, a pyarrow Table or a DuckDB
        relation (which reads the Parquet file lazily)."""
        record = self._record(ref, version)
        path = self._local_file(record.blob_sha256)
        if format == "duckdb":
            import duckdb

            selected = ", ".join(_quote(c) for c in columns) if columns else "*"
            return duckdb.sql(f"SELECT {selected} FROM read_parquet({_literal(str(path))})")
        table = pq.read_table(path, columns=list(columns) if columns else None)
        if format == "arrow":
            return table
        if format != "pandas":
            raise ValidationError(f"format must be pandas, arrow or duckdb, got {format!r}.")
        return table.to_pandas()

    def batches(
        self,
        ref: str | DatasetVersion,
        batch_rows: int = 131_072,
        columns: Sequence[str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """The rows of a version (only ``columns``, when given) as a stream of Arrow
        record batches, read page by page: memory holds about a batch, whatever the
        version's size."""
        record = self._record(ref, None)
        path = self._local_file(record.blob_sha256)

        def stream() -> Iterator[pa.RecordBatch]:
            with open_parquet(path) as file:
                yield from file.iter_batches(
                    batch_rows, columns=None if columns is None else list(columns)
                )

        return stream()

    def _local_file(self, sha256: str) -> Path:
        """A verified local copy of a stored file (the object itself on a local store)."""
        store = self._ws.artifacts
        if store._local:
            store.verify(sha256)
            return Path(store.object_path(sha256))
        cached = self._ws.settings.home / "cache" / sha256
        if not cached.exists():
            store.download(sha256, cached)
        return cached

    def _record(self, ref: str | DatasetVersion, version: int | None = None) -> VersionRecord:
        if isinstance(ref, DatasetVersion):
            return self._repo.version_by_id(ref.version_id)
        name, _, selector = str(ref).partition("@")
        if version is not None:
            return self._repo.version(name, number=version)
        if not selector:
            return self._repo.version(name)
        if selector.isdigit() and len(selector) < 8:
            return self._repo.version(name, number=int(selector))
        if _HASH_PREFIX.match(selector):
            return self._repo.version(name, prefix=selector)
        raise ValidationError(
            f"Cannot read dataset reference {ref!r}: write name, name@<version number> or "
            "name@<at least 8 characters of the content hash>."
        )

    def _public(self, record: VersionRecord) -> DatasetVersion:
        contract_version = (
            self._repo.contract_by_id(record.contract_id).version if record.contract_id else None
        )
        quarantine = self._repo.quarantine_of(record.version_id)
        return DatasetVersion(
            name=record.name,
            version=record.version,
            content_hash=record.content_sha256,
            rows=record.rows,
            columns=record.columns,
            schema=json.loads(record.schema),
            source=record.source,
            contract_version=contract_version,
            on_invalid=record.on_invalid,
            report=ValidationReport.from_dict(json.loads(record.report)) if record.report else None,
            created_at=datetime.fromtimestamp(record.created_at / 1000, UTC),
            created_by=record.created_by,
            run_id=record.run_id,
            quarantine=self._public(quarantine) if quarantine is not None else None,
            version_id=record.version_id,
            blob_sha256=record.blob_sha256,
        )

    def diff(
        self,
        name: str,
        old: int | str | DatasetVersion,
        new: int | str | DatasetVersion,
        key: Sequence[str] | None = None,
    ) -> DatasetDiff:
        """Schema changes, row counts, rows added/removed/changed by key, and a per-column
        summary of the two versions (``ws.data.diff("churn", 3, 4)``)."""
        from loopml.data.diff import diff_files

        records = [
            self._record(v if isinstance(v, DatasetVersion) else _within(name, v))
            for v in (old, new)
        ]
        if key is None:
            contract = records[1].contract_id or records[0].contract_id
            if contract is not None:
                key = load_contract(json.loads(self._repo.contract_by_id(contract).body)).key
        refs = [f"{r.name}@{r.version}" for r in records]
        paths = [self._local_file(r.blob_sha256) for r in records]
        return diff_files(refs[0], paths[0], refs[1], paths[1], list(key) if key else None)

    # -- lineage -------------------------------------------------------------------
    def log_input(
        self, run_id: str, ref: str | DatasetVersion, role: str = "train"
    ) -> DatasetVersion:
        record = self._record(ref, None)
        if not role or len(role) > 64:
            raise ValidationError(f"role must be a short name such as 'train', got {role!r}.")
        self._ws._runs.get(run_id)
        self._repo.add_input(run_id, record.version_id, role)
        return self._public(record)

    def inputs(self, run_id: str) -> list[tuple[DatasetVersion, str]]:
        """The dataset versions a run read, with their roles."""
        return [(self._public(record), role) for record, role in self._repo.inputs_of(run_id)]

    def runs_using(self, ref: str | DatasetVersion) -> list[tuple[str, str]]:
        """(run id, role) of every live run that read the version."""
        return self._repo.runs_using(self._record(ref, None).version_id)

    # -- splits ------------------------------------------------------------------
    def split(
        self,
        ref: str | DatasetVersion,
        by: Literal["random", "stratified", "time", "group"] = "random",
        fractions: Mapping[str, float] | None = None,
        *,
        seed: int = 0,
        column: str | None = None,
        format: Literal["pandas", "arrow"] = "pandas",
    ) -> dict[str, Any]:
        """Splits a version into parts (``{"train": 0.8, "test": 0.2}`` by default).

        ``stratified`` keeps the shares of each value of ``column`` in every part,
        ``time`` puts the earliest rows (by ``column``) first, ``group`` keeps all
        rows of one ``column`` value in one part. The definition and the row
        assignment are stored: the same call returns the same rows.
        """
        import numpy as np

        from loopml.data.split import SplitDefinition, assign, parts_of

        definition = SplitDefinition(by, dict(fractions or {"train": 0.8, "test": 0.2}),
                                     seed, column)  # fmt: skip
        record = self._record(ref, None)
        table = pq.read_table(self._local_file(record.blob_sha256))
        stored = self._repo.split(record.version_id, definition.sha256)
        if stored is not None:
            assignment = np.frombuffer(self._ws.artifacts.read_bytes(stored), dtype=np.int8)
        else:
            assignment = assign(definition, table)
            blob = self._ws.artifacts.put_bytes(assignment.tobytes())
            self._ws._blobs.touch([(blob.sha256, blob.size)])
            kept = self._repo.save_split(
                record.version_id, definition.to_json(), definition.sha256, blob.sha256
            )
            if kept != blob.sha256:  # another process stored this split first
                assignment = np.frombuffer(self._ws.artifacts.read_bytes(kept), dtype=np.int8)
        parts = parts_of(definition, assignment, table)
        if format == "arrow":
            return parts
        return {name: part.to_pandas() for name, part in parts.items()}

    # -- profiles ------------------------------------------------------------------
    def profile(self, ref: str | DatasetVersion, **options: Any) -> DatasetProfile:
        """Per-column statistics, histograms and correlations of a version, computed
        batch by batch."""
        from loopml.data.profile import profile

        return profile(self.batches(ref), **options)


def _load(contract: Any) -> Contract:
    if isinstance(contract, Contract):
        return contract
    if isinstance(contract, Path):
        return load_contract(contract)
    if isinstance(contract, (str, Mapping)):
        return load_contract(contract)
    raise ValidationError(
        f"contract must be a Contract, a path, YAML/JSON text or a dict, got "
        f"{type(contract).__name__}."
    )


def _refuse_bad_batches(
    description: str, rows_in: int, report: ValidationReport | None, on_invalid: str
) -> None:
    if rows_in == 0:
        raise ValidationError(
            f"{description} has no rows (a header alone, or nothing at all); nothing was stored."
        )
    if report is None or report.passed:
        return
    if report.structural:
        raise DataValidationError(
            f"{description} does not fit the contract: {'; '.join(report.structural)}. "
            "Nothing was stored; fix the data or update the contract.",
            report,
        )
    # Row counts and freshness fail the data as a whole: setting rows aside cannot fix them.
    if on_invalid == "fail" or (on_invalid == "quarantine" and not report.dataset_passed):
        raise DataValidationError(
            f"{description} failed validation, so nothing was stored:\n{report}\n"
            "Fix the data, relax the contract, or ingest with on_invalid='quarantine' to "
            "keep the valid rows.",
            report,
        )
    if on_invalid == "quarantine" and report.rows_valid == 0:
        raise DataValidationError(
            f"Every one of the {rows_in:,} rows of {description} failed validation; nothing "
            f"was stored.\n{report}",
            report,
        )


def _within(name: str, ref: int | str) -> str:
    """``3`` or ``"3"`` or a hash prefix of dataset ``name``, or a full reference as given."""
    return str(ref) if "@" in str(ref) else f"{name}@{ref}"


def _schema(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"Dataset names start with a letter or digit and hold letters, digits, '_', '-' "
            f"and '.'; got {name!r}."
        )


def _run_id(run: Any) -> str | None:
    return None if run is None else str(getattr(run, "id", run))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
