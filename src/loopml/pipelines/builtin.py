"""Built-in steps over the Workspace API, for YAML pipelines (and Python ones).

Each returns a small JSON value (a reference and a few numbers), so its output is kept
inline and the next step receives a reference it can resolve: ``ingest`` gives
``"churn@3"``, ``train`` gives ``{"model": "runs:/<id>/model", "run_id", "metrics"}``,
``register`` gives ``{"model": "models:/churn/4", ...}``. A step that takes a model or a
dataset accepts either the plain reference or such a dict.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loopml.errors import LoopmlError, ValidationError
from loopml.pipelines.step import Step

if TYPE_CHECKING:
    from loopml.workspace import Workspace

__all__ = ["BUILTINS", "GateFailedError", "builtin"]


class GateFailedError(LoopmlError, RuntimeError):
    """A gate step refused the candidate; the pipeline stops there with the reason."""

    headline = "gate failed"


def _ref(value: Any, key: str = "model") -> Any:
    """A reference out of a step output: the value, or its ``key`` entry."""
    if isinstance(value, Mapping):
        for name in (key, "ref", "uri"):
            if name in value:
                return value[name]
        raise ValidationError(f"Expected a reference or a dict with {key!r}; got {value!r}.")
    return value


def _model(spec: Any, params: Mapping[str, Any] | None) -> Any:
    if not isinstance(spec, str):
        return spec
    module, _, name = spec.rpartition(".")
    if not module:
        raise ValidationError(
            f"model {spec!r} must be a dotted class path such as "
            "'sklearn.linear_model.LogisticRegression'."
        )
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ValidationError(f"model: cannot import {spec!r} ({error}).") from None
    return cls(**dict(params or {}))


def ingest(
    ws: Workspace,
    source: str,
    name: str,
    contract: Any = None,
    on_invalid: str = "fail",
) -> str:
    """``ws.data.ingest``: returns the new dataset version's reference (``name@N``)."""
    version = ws.data.ingest(source, name=name, contract=contract, on_invalid=on_invalid)  # type: ignore[arg-type]
    return str(version.ref)


def train(
    ws: Workspace,
    model: Any,
    data: Any,
    target: str,
    model_params: dict[str, Any] | None = None,
    experiment: str | None = None,
    features: list[str] | None = None,
) -> dict[str, Any]:
    """``ws.train``: returns ``{"model": "runs:/<id>/model", "run_id", "metrics"}``."""
    result = ws.train(
        _model(model, model_params),
        data=_ref(data, "data"),
        target=target,
        experiment=experiment,
        features=features,
    )
    return {
        "model": f"runs:/{result.run.id}/model",
        "run_id": result.run.id,
        "metrics": {k: float(v) for k, v in result.metrics.items()},
    }


def evaluate(ws: Workspace, model: Any, data: Any, target: str) -> dict[str, Any]:
    """``ws.evaluate``: returns the model reference, the evaluation id and its metrics."""
    reference = _ref(model)
    found = ws.evaluate(reference, data=_ref(data, "data"), target=target)
    return {
        "model": reference,
        "evaluation_id": found.evaluation_id,
        "metrics": {k: float(v) for k, v in found.metrics.items()},
    }


def gate(
    ws: Workspace,
    candidate: Any,
    policy: Any,
    champion: Any = None,
    data: Any = None,
    target: str | None = None,
    fail: bool = True,
) -> dict[str, Any]:
    """``ws.gate``: returns the verdict; with ``fail`` (default) a failed gate stops
    the pipeline with the failed checks as the reason."""
    reference = _ref(candidate)
    result = ws.gate(
        reference,
        policy,
        champion=_ref(champion) if champion is not None else None,
        data=_ref(data, "data") if data is not None else None,
        target=target,
    )
    failed = [c.expression for c in result.failed_checks]
    if fail and not result.passed:
        raise GateFailedError(f"gate {result.gate_id} failed: {'; '.join(failed)}")
    return {
        "model": reference,
        "passed": result.passed,
        "gate_id": result.gate_id,
        "failed": failed,
    }


def register(
    ws: Workspace,
    model: Any,
    name: str,
    description: str | None = None,
    parent: Any = None,
) -> dict[str, Any]:
    """``ws.registry.register``: returns ``{"model": "models:/name/N", ...}``."""
    version = ws.registry.register(_ref(model), name=name, description=description, parent=parent)
    return {"model": version.uri, "name": version.name, "version": version.version}


def promote(ws: Workspace, model: Any, alias: str, reason: str | None = None) -> dict[str, Any]:
    """``ws.registry.promote`` of a registered version (``models:/name/N``) to ``alias``."""
    reference = str(_ref(model))
    version = ws.registry.get(reference)
    ws.registry.promote(version.name, version.version, alias, reason=reason)
    return {"model": version.uri, "alias": alias}


BUILTINS: dict[str, Step] = {
    "ingest": Step(ingest, name="ingest", cache=False),  # a path: its content may change
    "train": Step(train, name="train"),
    "evaluate": Step(evaluate, name="evaluate"),
    "gate": Step(gate, name="gate", cache=False),
    "register": Step(register, name="register", cache=False),
    "promote": Step(promote, name="promote", cache=False),
}
"""The steps YAML pipelines name in ``uses:``; steps with side effects do not cache."""


def builtin(name: str) -> Step:
    """The built-in step called ``name``."""
    found = BUILTINS.get(name)
    if found is None:
        raise ValidationError(
            f"uses: unknown built-in step {name!r}; the built-in steps are "
            f"{', '.join(sorted(BUILTINS))}."
        )
    return found
