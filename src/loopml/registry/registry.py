"""The model registry, reached as ``ws.registry``: versions, aliases, gated promotion.

A version is a model bundle that a run stored; registering copies no bytes, it records
the version's own references to the bundle's content-addressed files. Models given as
objects or bundle folders get a run of their own at registration, so every version's
lineage starts at a run (params, metrics, data inputs, code, environment, evaluations,
gates).

Moving a protected alias (``production`` by default, ``LOOPML_PROTECTED_ALIASES``) needs
the version's newest gate against the alias's current holder to have passed, and
``LOOPML_REQUIRED_APPROVALS`` distinct approvers; ``force=True`` with a reason overrides
both, and the event says so.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import Connection

from loopml._identity import current_user
from loopml.errors import ConflictError, NotFoundError, ValidationError
from loopml.registry._reference import ModelReference, check_alias, check_name, parse_reference
from loopml.store.repositories.gates import latest_gate
from loopml.store.repositories.registry import (
    AliasEventRecord,
    ModelVersionRecord,
    RegistryRepository,
    approving_users,
)

if TYPE_CHECKING:
    from loopml.models import LoadedModel
    from loopml.models.reference import Reference
    from loopml.registry.export import ExportResult
    from loopml.registry.lineage import Lineage
    from loopml.tracking.run import Run
    from loopml.workspace import Workspace

__all__ = ["AliasEvent", "ModelVersion", "RegisteredModel", "Registry"]

MANIFEST = "loopml-model.yaml"


class ModelVersion:
    """One registered version; ``uri`` is its reference (``models:/churn/7``)."""

    def __init__(self, registry: Registry, record: ModelVersionRecord) -> None:
        self._registry = registry
        self._record = record

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def version(self) -> int:
        return self._record.version

    @property
    def run_id(self) -> str:
        return self._record.run_id

    @property
    def flavor(self) -> str:
        return self._record.flavor

    @property
    def source(self) -> str:
        return self._record.source

    @property
    def description(self) -> str | None:
        return self._record.description

    @property
    def created_by(self) -> str | None:
        return self._record.created_by

    @property
    def manifest_sha256(self) -> str:
        return self._record.manifest_sha256

    @property
    def deleted(self) -> bool:
        return self._record.deleted_at is not None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def created(self) -> datetime:
        return _time(self._record.created_at)

    @functools.cached_property
    def tags(self) -> dict[str, str]:
        return self._registry._repo.version_tags(self._record.version_id)

    @functools.cached_property
    def aliases(self) -> list[str]:
        found = self._registry._repo.aliases(self._record.model_id)
        return sorted(alias for alias, number in found.items() if number == self.version)

    @functools.cached_property
    def parent(self) -> ModelVersion | None:
        """The version this one was retrained from, when registration named one."""
        if self._record.parent_version_id is None:
            return None
        return ModelVersion(
            self._registry, self._registry._repo.version_by_id(self._record.parent_version_id)
        )

    @property
    def run(self) -> Run:
        return self._registry._ws.get_run(self.run_id)

    def files(self) -> list[tuple[str, str, int]]:
        """The bundle's files, then its exports' (``exports/onnx/...``): (path, sha256, size)."""
        return self._registry._repo.files(self._record.version_id)

    def __repr__(self) -> str:
        return f"ModelVersion({self.uri}, flavor={self.flavor!r}, run={self.run_id[:8]})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelVersion) and other._record == self._record

    def __hash__(self) -> int:
        return hash(self._record.version_id)


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str | None
    created: datetime
    created_by: str | None
    updated: datetime
    tags: dict[str, str]
    aliases: dict[str, int]  # alias -> version number
    latest_version: int | None
    versions: int


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias, as the history records it."""

    name: str
    alias: str
    action: str  # promote | rollback | remove
    from_version: int | None
    to_version: int | None
    user: str | None
    time: datetime
    reason: str | None
    forced: bool
    gate_id: str | None
    approvals: list[str]

    @classmethod
    def _of(cls, record: AliasEventRecord) -> AliasEvent:
        return cls(
            record.name,
            record.alias,
            record.action,
            record.from_version,
            record.to_version,
            record.user,
            _time(record.created_at),
            record.reason,
            record.forced,
            record.gate_id,
            record.approvals,
        )


class Registry:
    """Registered models of a workspace: ``ws.registry``."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self._repo = RegistryRepository(workspace.db)

    # -- registering ------------------------------------------------------------
    def register(
        self,
        source: Any,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, Any] | None = None,
        parent: Any = None,
        experiment: str | None = None,
        path: str = "model",
        signature: Any = None,
        input_example: Any = None,
        reference_data: Any = None,
    ) -> ModelVersion:
        """Registers a model as the next version of ``name``.

        Args:
            source: A Run, a training or tuning result, a run id, ``runs:/<id>/<path>``,
                a bundle folder or archive on disk, or a fitted model object (objects and
                bundles are stored by a new run in ``experiment``, default the model name).
            parent: The version this one was retrained from (``models:/churn/6``, a
                ModelVersion or a version number of the same model).
            signature, input_example: For model objects: the bundle's input signature.
            reference_data: The rows the model was trained on (a DataFrame or dataset
                reference), for a model without a reference profile: monitoring compares
                its traffic with them. Models trained by ``ws.train``/``ws.tune`` have one.

        Registering the same run's model again returns the version it already has.
        """
        check_name(name)
        reference = None
        if reference_data is not None and callable(getattr(source, "predict", None)):
            from loopml.models.reference import build_reference

            columns = self._signature_columns(signature, input_example)
            reference = build_reference(
                source, self._frame(reference_data), columns=columns, source="reference_data"
            )
        run, model_path, origin = self._source_run(
            source, name, experiment, path, signature, input_example, reference
        )
        manifest_sha, flavor = self._bundle_of(run, model_path)
        parent_version = self.get(parent, default_name=name) if parent is not None else None
        record, _ = self._repo.register(
            name,
            run.id,
            model_path,
            {
                "manifest_sha256": manifest_sha,
                "flavor": flavor,
                "source": origin,
                "description": description,
                "parent_version_id": parent_version._record.version_id if parent_version else None,
            },
            {str(k): str(v) for k, v in (tags or {}).items()},
            current_user(),
        )
        if record.deleted_at is not None:
            raise ConflictError(
                f"{run.id}'s model was registered as version {record.version} of {name!r} and "
                "that version was deleted; log the model in a new run to register it again."
            )
        version = ModelVersion(self, record)
        if reference_data is not None and reference is None:
            self.set_reference(version, reference_data)
        return version

    def _signature_columns(self, signature: Any, input_example: Any) -> list[str] | None:
        inputs = getattr(signature, "inputs", None)
        if inputs:
            return [column.name for column in inputs]
        if input_example is not None:
            return [str(name) for name in self._frame(input_example).columns]
        return None

    def _frame(self, data: Any) -> Any:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return data
        if isinstance(data, list):
            return pd.DataFrame(data)
        return self._ws.data.get(data)

    # -- reference profiles -------------------------------------------------------
    def reference(self, ref: Any) -> Reference | None:
        """The version's reference profile: set by :meth:`set_reference`, else the one in
        its bundle (``ws.train`` and ``ws.tune`` write one); None when it has neither."""
        from loopml.models.reference import REFERENCE_NAME, Reference

        files = {path: sha for path, sha, _ in self.get(ref).files()}
        sha = files.get(f"{MONITORING}/{REFERENCE_NAME}") or files.get(REFERENCE_NAME)
        if sha is None:
            return None
        return Reference.from_dict(json.loads(self._ws.artifacts.read_bytes(sha)))

    def set_reference(self, ref: Any, data: Any) -> Reference:
        """Makes ``data`` (the rows the model was trained on: a DataFrame or a dataset
        reference) the version's reference profile, replacing any earlier one; the
        model's predictions on it become the prediction reference."""
        from loopml.models.reference import REFERENCE_NAME, build_reference

        version = self.get(ref)
        loaded = self.load(version)
        frame = self._frame(data)
        inputs = loaded.signature.inputs
        columns = [c.name for c in inputs] if inputs else None
        described = "DataFrame" if hasattr(data, "columns") else str(data)[:200]
        reference = build_reference(loaded, frame, columns=columns, source=described)
        with tempfile.TemporaryDirectory() as scratch:
            reference.write(Path(scratch) / REFERENCE_NAME)
            self._store_files(version, Path(scratch), f"{MONITORING}/")
        return reference

    def _source_run(
        self,
        source: Any,
        name: str,
        experiment: str | None,
        path: str,
        signature: Any,
        input_example: Any,
        reference: Reference | None = None,
    ) -> tuple[Run, str, str]:
        from loopml.tracking.run import Run

        inner = getattr(source, "run", None)
        if isinstance(inner, Run) and not isinstance(source, ModelVersion):
            source = inner
        if isinstance(source, Run):
            return source, path, f"runs:/{source.id}/{path}"
        if isinstance(source, ModelVersion) or (
            isinstance(source, str) and source.startswith("models:/")
        ):
            raise ValidationError(
                f"{source!s} is registered already; promote it with an alias instead, or "
                "register its run (`runs:/<run id>/model`) under another name."
            )
        if isinstance(source, str) and source.startswith("runs:/"):
            run_id, _, run_path = source.removeprefix("runs:/").partition("/")
            run = self._ws.get_run(run_id)
            return run, run_path or path, f"runs:/{run.id}/{run_path or path}"
        if isinstance(source, (str, os.PathLike)) and Path(source).exists():
            return self._run_for_bundle(Path(source), name, experiment)
        if isinstance(source, str):
            run = self._ws.get_run(source)
            return run, path, f"runs:/{run.id}/{path}"
        if callable(getattr(source, "predict", None)):
            with self._ws.start_run(
                experiment or name, run_name=f"register-{name}", parent=None
            ) as run:
                run.set_tag("loopml.registered_from", "object")
                run.log_model(
                    source, signature=signature, input_example=input_example, reference=reference
                )
            return run, "model", f"object {type(source).__module__}.{type(source).__qualname__}"
        raise ValidationError(
            f"Cannot register a {type(source).__name__}: pass a Run, a training result, a run "
            "id, 'runs:/<run id>/model', a bundle folder or archive, or a fitted model."
        )

    def _run_for_bundle(
        self, folder: Path, name: str, experiment: str | None
    ) -> tuple[Run, str, str]:
        from loopml.models import verify_bundle

        verify_bundle(folder)
        with self._ws.start_run(experiment or name, run_name=f"register-{name}") as run:
            run.set_tag("loopml.registered_from", "bundle")
            if folder.is_dir():
                run.log_artifacts(folder, "model")
            else:
                from loopml.models import unpacked_bundle

                with unpacked_bundle(folder) as unpacked:
                    run.log_artifacts(unpacked, "model")
        return run, "model", f"bundle {folder.resolve()}"

    def _bundle_of(self, run: Run, model_path: str) -> tuple[str, str]:
        manifest = f"{model_path}/{MANIFEST}"
        found = [a for a in run.artifacts(manifest) if a.path == manifest]
        if not found:
            raise NotFoundError(
                f"Run {run.id} has no model bundle at {model_path!r} (no {manifest}); log one "
                "with run.log_model(model) or ws.train(...), or pass path= to name its folder."
            )
        text = self._ws.artifacts.read_bytes(found[0].sha256)
        # libyaml when present: the pure-Python parser would be most of a registration.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        flavor = (yaml.load(text, Loader=loader) or {}).get("flavor") or "python"
        return found[0].sha256, str(flavor)

    # -- reading ----------------------------------------------------------------
    def get(
        self, ref: Any, version: int | None = None, *, default_name: str | None = None
    ) -> ModelVersion:
        """A version from a reference: ``models:/churn/7``, ``models:/churn@production``,
        ``models:/churn/latest``, ``("churn", 7)`` as ``get("churn", 7)``, a ModelVersion,
        or a bare version number of ``default_name``."""
        if isinstance(ref, ModelVersion):
            return ref
        if isinstance(ref, int) and default_name is not None:
            return self._version(default_name, ref)
        if isinstance(ref, str) and ref.startswith("models:/"):
            return self.resolve(parse_reference(ref))
        if isinstance(ref, str) and version is not None:
            return self._version(ref, int(version))
        if isinstance(ref, str) and "@" in ref:
            name, _, alias = ref.partition("@")
            return self.resolve(ModelReference(name, alias=alias))
        raise ValidationError(
            f"{ref!r} is not a model reference; use models:/<name>/<version>, "
            "models:/<name>@<alias> or get(name, version)."
        )

    def resolve(self, ref: ModelReference) -> ModelVersion:
        if ref.alias is not None:
            record = self._repo.aliased(ref.name, ref.alias)
            if record is None:
                model = self._repo.model(ref.name)  # NotFoundError for an unknown model
                aliases = self._repo.aliases(model.model_id)
                have = ", ".join(f"{a} -> {v}" for a, v in aliases.items()) or "none"
                raise NotFoundError(
                    f"Model {ref.name!r} has no alias {ref.alias!r} (its aliases: {have}). "
                    f"Set it with `loopml models promote {ref.name} <version> --alias {ref.alias}`."
                )
            return ModelVersion(self, record)
        if ref.version is None:
            latest = self._repo.latest(ref.name)
            if latest is None:
                self._repo.model(ref.name)
                raise NotFoundError(f"Model {ref.name!r} has no versions yet.")
            return ModelVersion(self, latest)
        return self._version(ref.name, ref.version)

    def _version(self, name: str, number: int) -> ModelVersion:
        record = self._repo.version(name, number)
        if record is None or record.deleted_at is not None:
            versions = [v.version for v in self._repo.versions(self._repo.model(name).name)]
            state = "was deleted" if record is not None else "does not exist"
            have = ", ".join(map(str, versions[-10:])) or "none"
            raise NotFoundError(
                f"Version {number} of model {name!r} {state} (live versions: {have}); "
                f"`loopml models show {name}` lists them."
            )
        return ModelVersion(self, record)

    def models(self) -> list[RegisteredModel]:
        return [self.model(record.name) for record in self._repo.models()]

    def model(self, name: str) -> RegisteredModel:
        record = self._repo.model(name)
        versions = self._repo.versions(name)
        return RegisteredModel(
            record.name,
            record.description,
            _time(record.created_at),
            record.created_by,
            _time(record.updated_at),
            self._repo.model_tags(record.model_id),
            self._repo.aliases(record.model_id),
            versions[-1].version if versions else None,
            len(versions),
        )

    def versions(self, name: str, include_deleted: bool = False) -> list[ModelVersion]:
        self._repo.model(name)
        return [ModelVersion(self, r) for r in self._repo.versions(name, include_deleted)]

    # -- descriptions and tags ----------------------------------------------------
    def set_description(
        self, name: str, description: str | None, version: int | None = None
    ) -> None:
        if version is None:
            self._repo.set_model_description(name, description)
        else:
            self._repo.set_version_description(
                self._version(name, version)._record.version_id, description
            )

    def set_tags(self, name: str, tags: Mapping[str, Any], version: int | None = None) -> None:
        values = {str(k): str(v) for k, v in tags.items()}
        if version is None:
            self._repo.set_model_tags(name, values)
        else:
            self._repo.set_version_tags(self._version(name, version)._record.version_id, values)

    def delete_version(self, name: str, version: int) -> None:
        """Deletes a version; refused while an alias points at it. ``gc`` frees its files."""
        self._repo.delete_version(name, version)

    # -- aliases ----------------------------------------------------------------
    def promote(
        self,
        name: str,
        version: int | str | ModelVersion,
        alias: str,
        *,
        reason: str | None = None,
        force: bool = False,
    ) -> AliasEvent | None:
        """Points ``alias`` at ``version`` and records who, when, from which version and why.

        A protected alias needs the version's newest gate against the current holder to
        have passed, and the configured number of approvals; ``force=True`` (with a
        reason) skips both and is recorded. Returns None when the alias already points
        there.
        """
        check_alias(alias)
        if force and not (reason and reason.strip()):
            raise ValidationError(
                "A forced promotion needs a reason (--reason): it overrides the gate and "
                "the approvals, and the history keeps why."
            )
        number = self._number(name, version)
        protected = alias in self._ws.settings.protected_aliases
        check = None if force or not protected else self._protection(name, alias)
        record = self._repo.move_alias(
            name,
            alias,
            number,
            action="promote",
            user=current_user(),
            reason=reason,
            forced=force and protected,
            check=check,
        )
        return AliasEvent._of(record) if record is not None else None

    def rollback(
        self, name: str, alias: str = "production", *, reason: str | None = None
    ) -> AliasEvent:
        """Moves ``alias`` back to the version that held it before the current holder."""
        check_alias(alias)

        def previous(events: list[AliasEventRecord]) -> int:
            holders: list[int] = []
            for event in events:
                if event.action == "rollback" and holders:
                    holders.pop()
                elif event.action == "remove":
                    holders.clear()
                elif event.to_version is not None and event.action == "promote":
                    holders.append(event.to_version)
            if not holders:
                raise NotFoundError(f"Model {name!r} has no alias {alias!r} to roll back.")
            if len(holders) < 2:
                raise ConflictError(
                    f"{name}@{alias} has had no other holder than version {holders[-1]}: "
                    "there is nothing to roll back to. Promote another version instead."
                )
            return holders[-2]

        record = self._repo.move_alias(
            name,
            alias,
            previous,
            action="rollback",
            user=current_user(),
            reason=reason,
            forced=False,
            check=None,
        )
        assert record is not None  # a rollback target always differs from the holder
        return AliasEvent._of(record)

    def remove_alias(self, name: str, alias: str, *, reason: str | None = None) -> AliasEvent:
        record = self._repo.move_alias(
            name,
            alias,
            None,
            action="remove",
            user=current_user(),
            reason=reason,
            forced=False,
            check=None,
        )
        assert record is not None
        return AliasEvent._of(record)

    def record_event(
        self,
        name: str,
        alias: str,
        action: str,
        from_version: int | None,
        to_version: int | None,
        reason: str | None = None,
    ) -> AliasEvent:
        """Adds an event to the alias's history without moving it: a deployment's canary
        step or rollback, an A/B decision. Rollback ignores such events."""
        if action in ("promote", "rollback", "remove"):
            raise ValidationError(f"{action!r} events are written by {action}(); pick another.")
        record = self._repo.add_event(
            name, alias, action, from_version, to_version, current_user(), reason
        )
        return AliasEvent._of(record)

    def protection_problem(self, name: str, version: int, alias: str) -> str | None:
        """Why ``version`` could not take the protected ``alias`` now (None: it could),
        checked as promote would check it; for a deployment to refuse up front."""
        if alias not in self._ws.settings.protected_aliases:
            return None
        candidate = self._version(name, version)._record
        holder = self._repo.aliased(name, alias)
        check = self._protection(name, alias)
        try:
            with self._ws.db.read() as session:
                check(session.connection(), candidate, holder)
        except ConflictError as error:
            return str(error)
        return None

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every alias move of a model (or of one alias), oldest first."""
        return [AliasEvent._of(r) for r in self._repo.events(name, alias)]

    def approve(
        self,
        name: str,
        version: int | str | ModelVersion,
        alias: str = "production",
        comment: str | None = None,
    ) -> bool:
        """Records the current user's approval of a version for ``alias``; False when
        that user had approved it already."""
        check_alias(alias)
        target = self._version(name, self._number(name, version))
        return self._repo.approve(
            target._record.version_id, alias, current_user() or "unknown", comment
        )

    def approvals(self, name: str, version: int, alias: str = "production") -> list[str]:
        target = self._version(name, version)
        return [a.user for a in self._repo.approvals(target._record.version_id, alias)]

    def _number(self, name: str, version: int | str | ModelVersion) -> int:
        if isinstance(version, ModelVersion):
            if version.name != name:
                raise ValidationError(
                    f"{version.uri} is a version of {version.name!r}, not {name!r}."
                )
            return int(version.version)
        if isinstance(version, str) and version.startswith("models:/"):
            return self._number(name, self.get(version))
        try:
            return int(version)
        except (TypeError, ValueError):
            raise ValidationError(f"{version!r} is not a version number of {name!r}.") from None

    def _protection(self, name: str, alias: str) -> Any:
        required = self._ws.settings.required_approvals

        def check(
            connection: Connection,
            candidate: ModelVersionRecord,
            current: ModelVersionRecord | None,
        ) -> tuple[str | None, list[str]]:
            champion_run = current.run_id if current is not None else None
            gate = latest_gate(connection, candidate.run_id, champion_run)
            holder = f"version {current.version}" if current else "no version"
            command = f"`loopml gate models:/{name}/{candidate.version} <policy.yaml>" + (
                f" --champion models:/{name}@{alias}`" if current else "`"
            )
            if gate is None:
                raise ConflictError(
                    f"{alias!r} is a protected alias: version {candidate.version} of {name!r} "
                    f"needs a passing gate against the current holder ({holder}) and has none. Run "
                    f"{command}, or promote with --force --reason."
                )
            if not gate.passed:
                failed = [
                    c["expression"]
                    for c in json.loads(gate.result).get("checks", [])
                    if c.get("verdict") != "pass"
                ]
                raise ConflictError(
                    f"{alias!r} is a protected alias and version {candidate.version} of {name!r} "
                    f"failed its gate {gate.gate_id[:8]} against {holder} (failed: "
                    f"{'; '.join(failed) or 'see the gate'}). Improve the model, or promote with "
                    "--force --reason."
                )
            approvers = approving_users(connection, candidate.version_id, alias)
            if len(approvers) < required:
                have = ", ".join(approvers) or "nobody"
                raise ConflictError(
                    f"{alias!r} needs {required} approvals by distinct users; version "
                    f"{candidate.version} of {name!r} has {len(approvers)} ({have}). Each approver "
                    f"runs `loopml models approve {name} {candidate.version} --alias {alias}`."
                )
            return gate.gate_id, approvers

        return check

    # -- bundles and exports -----------------------------------------------------
    def local_bundle(self, ref: Any, flavor: str | None = None) -> Path:
        """A local folder holding the version's bundle (``flavor="onnx"``: its ONNX
        export), downloaded once and cached by manifest; every file verified."""
        from loopml.registry.export import EXPORTS

        version = self.get(ref)
        prefix = f"{EXPORTS}/{flavor}/" if flavor else ""
        files = [
            (path.removeprefix(prefix), sha, size)
            for path, sha, size in version.files()
            if (path.startswith(prefix) if prefix else not path.startswith(_SIDE_FILES))
        ]
        manifest = next((sha for path, sha, _ in files if path == MANIFEST), None)
        if manifest is None:
            raise NotFoundError(
                f"{version.uri} has no {flavor} export; make one with `loopml models export "
                f"{version.name} {version.version} --format {flavor}`."
            )
        folder = self._ws.settings.home / "cache" / "models" / manifest
        if folder.is_dir():
            return folder
        partial = folder.with_name(f".{manifest}-{uuid.uuid4().hex}")
        try:
            for path, sha256, _size in files:
                self._ws.artifacts.download(sha256, partial / path)
            try:
                partial.rename(folder)
            except OSError:  # another process cached it first
                if not folder.is_dir():
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return folder

    def load(self, ref: Any, flavor: str | None = None) -> LoadedModel:
        """The version's model behind one interface (``predict``, ``predict_proba``,
        ``signature``), checked against its manifest; ``flavor="onnx"`` loads its ONNX
        export instead."""
        from loopml.models import load

        return load(self.local_bundle(ref, flavor))

    def export(
        self, ref: Any, format: str, out: str | os.PathLike[str] | None = None, data: Any = None
    ) -> ExportResult:
        """Exports a version: ``onnx`` (parity-checked on held-out rows, ``data`` or the
        run's own data, and stored with the version), ``mlflow`` (an MLflow model
        directory at ``out``), ``bundle`` (a folder, or a ``.tar.gz`` archive) or
        ``docker`` (a build context whose image runs ``loopml serve`` on the bundle)."""
        from loopml.registry.export import export_version

        return export_version(self._ws, self.get(ref), format, Path(out) if out else None, data)

    def import_mlflow(
        self, folder: str | os.PathLike[str], name: str, **options: Any
    ) -> ModelVersion:
        """Registers an MLflow scikit-learn model directory as the next version of ``name``."""
        from loopml.registry.export import import_mlflow

        return import_mlflow(self._ws, Path(folder), name, **options)

    def _store_files(self, version: ModelVersion, folder: Path, prefix: str) -> None:
        stored = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            blob = self._ws.artifacts.put_file(path)
            stored.append((prefix + path.relative_to(folder).as_posix(), blob.sha256, blob.size))
        self._ws._blobs.touch([(sha, size) for _, sha, size in stored])
        self._repo.add_files(version._record.version_id, stored)

    def card(self, ref: Any, folder: str | os.PathLike[str] = ".") -> tuple[Path, Path]:
        """Writes the version's model card as Markdown and HTML into ``folder``
        (``<name>-v<version>.md`` / ``.html``); the owner's fields are the model's
        ``card.*`` tags (``card.intended_use``, ``card.limitations``, ...)."""
        from loopml.registry.card import model_card

        return model_card(self._ws, self.get(ref)).write(folder)

    def lineage(self, ref: Any) -> Lineage:
        """Where a version came from: run, data versions, code, environment, evaluations,
        gates, the version it was retrained from, and its alias events."""
        from loopml.registry.lineage import build_lineage

        return build_lineage(self._ws, self.get(ref))


# Version files kept beside the bundle (not part of it): exports, and monitoring's
# reference profile when it was set after registration.
MONITORING = "monitoring"
_SIDE_FILES = ("exports/", f"{MONITORING}/")


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
