"""YAML pipelines: built-in steps (or ``module:function`` steps) wired by references.

Example::

    name: churn-training
    params:
      source: data/churn.csv
    steps:
      - name: ingest
        uses: ingest
        with: {source: "${params.source}", name: churn}
      - name: train
        uses: train
        with:
          model: sklearn.linear_model.LogisticRegression
          data: ${steps.ingest}
          target: churned
        retries: 1

A value that is exactly ``${steps.<name>}`` takes that step's output (an edge of the
DAG); ``${params.<name>}`` is replaced by the run's param. Errors name the field, as
``steps[1] (train).with.data``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from loopml.errors import ValidationError
from loopml.pipelines.builtin import builtin
from loopml.pipelines.dag import Node, Pipeline
from loopml.pipelines.step import Step

__all__ = ["load_yaml_pipeline", "parse_pipeline"]

_REFERENCE = re.compile(r"\$\{\s*(steps|params)\.([A-Za-z_][\w-]*)\s*\}")
_STEP_KEYS = {"name", "uses", "with", "after", "retries", "backoff", "timeout", "cache"}
_TOP_KEYS = {"name", "params", "steps", "description"}


def load_yaml_pipeline(path: Path) -> Pipeline:
    """Reads a YAML pipeline file."""
    if not path.is_file():
        raise ValidationError(f"No pipeline file {path}; give the path of a YAML pipeline.")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValidationError(f"{path} is not valid YAML: {error}") from None
    return parse_pipeline(document, source=str(path), target=str(path.resolve()))


def parse_pipeline(document: Any, source: str = "pipeline", target: str | None = None) -> Pipeline:
    """A pipeline from a parsed YAML document (a mapping)."""
    if not isinstance(document, Mapping):
        raise ValidationError(f"{source}: a pipeline is a mapping with `name` and `steps`.")
    unknown = set(document) - _TOP_KEYS
    if unknown:
        raise ValidationError(
            f"{source}: unknown field(s) {sorted(unknown)}; a pipeline has {sorted(_TOP_KEYS)}."
        )
    name = document.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"{source}: `name` is required and must be a non-empty string.")
    defaults = document.get("params") or {}
    if not isinstance(defaults, Mapping):
        raise ValidationError(f"{source}: `params` must be a mapping of name to default value.")
    steps = document.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ValidationError(f"{source}: `steps` is required and must be a non-empty list.")
    specs = [_step_spec(source, index, raw) for index, raw in enumerate(steps)]
    names = [spec["name"] for spec in specs]
    for index, spec in enumerate(specs):
        for reference in _references(spec["with"], "steps"):
            if reference not in names:
                raise ValidationError(
                    f"{source}: steps[{index}] ({spec['name']}).with refers to "
                    f"${{steps.{reference}}}, which is not a step; steps: {names}."
                )
        for reference in _references(spec["with"], "params"):
            if reference not in defaults:
                raise ValidationError(
                    f"{source}: steps[{index}] ({spec['name']}).with refers to "
                    f"${{params.{reference}}}, which `params` does not declare."
                )

    def build(params: dict[str, Any]) -> list[Node]:
        unknown_params = set(params) - set(defaults)
        if unknown_params:
            raise ValidationError(
                f"{source}: unknown param(s) {sorted(unknown_params)}; `params` declares "
                f"{sorted(defaults)}."
            )
        nodes = []
        for spec in specs:
            inputs: dict[str, str] = {}
            values: dict[str, Any] = {}
            for argument, value in spec["with"].items():
                edge = _edge(value)
                if edge is not None:
                    inputs[argument] = edge
                else:
                    values[argument] = _substitute(value, params, f"{spec['name']}.{argument}")
            nodes.append(Node(spec["name"], spec["step"], values, inputs, spec["after"]))
        return nodes

    pipeline = Pipeline(nodes=[], name=name, params=defaults, target=target)
    pipeline.builder = build
    return pipeline


def _step_spec(source: str, index: int, raw: Any) -> dict[str, Any]:
    where = f"{source}: steps[{index}]"
    if not isinstance(raw, Mapping):
        raise ValidationError(f"{where} must be a mapping with `name` and `uses`.")
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][\w-]*", name):
        raise ValidationError(
            f"{where}.name is required: letters, digits, '_' or '-', starting with a letter."
        )
    where = f"{where} ({name})"
    unknown = set(raw) - _STEP_KEYS
    if unknown:
        raise ValidationError(
            f"{where}: unknown field(s) {sorted(unknown)}; a step has {sorted(_STEP_KEYS)}."
        )
    uses = raw.get("uses")
    if not isinstance(uses, str) or not uses:
        raise ValidationError(
            f"{where}.uses is required: a built-in step (ingest, train, evaluate, gate, "
            "register, promote) or `module:function` of a @step."
        )
    step = _resolve(uses, where)
    arguments = raw.get("with") or {}
    if not isinstance(arguments, Mapping):
        raise ValidationError(f"{where}.with must be a mapping of argument to value.")
    accepted = step.signature.parameters
    for argument in arguments:
        if argument not in accepted or argument == "ws":
            raise ValidationError(
                f"{where}.with.{argument}: step {uses!r} has no such argument; it takes "
                f"{[p for p in accepted if p != 'ws']}."
            )
    after = raw.get("after") or []
    if isinstance(after, str):
        after = [after]
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        raise ValidationError(f"{where}.after must be a list of step names.")
    options: dict[str, Any] = {}
    for key, kind in (("retries", int), ("backoff", (int, float)), ("timeout", (int, float))):
        if key in raw:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, kind) or value < 0:
                raise ValidationError(
                    f"{where}.{key} must be a non-negative number, got {value!r}."
                )
            options[key] = value
    if "cache" in raw:
        if not isinstance(raw["cache"], bool):
            raise ValidationError(f"{where}.cache must be true or false, got {raw['cache']!r}.")
        options["cache"] = raw["cache"]
    if options:
        step = step.with_options(**options)
    return {"name": name, "step": step, "with": dict(arguments), "after": tuple(after)}


def _resolve(uses: str, where: str) -> Step:
    if ":" not in uses:
        try:
            return builtin(uses)
        except ValidationError as error:
            raise ValidationError(f"{where}.{error}") from None
    import importlib

    module, _, attribute = uses.partition(":")
    try:
        found: Any = importlib.import_module(module)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as error:
        raise ValidationError(f"{where}.uses: cannot load {uses!r} ({error}).") from None
    if isinstance(found, Step):
        return found
    if callable(found):
        return Step(found)
    raise ValidationError(f"{where}.uses: {uses!r} is not a function or @step.")


def _references(value: Any, kind: str) -> list[str]:
    if isinstance(value, str):
        return [m.group(2) for m in _REFERENCE.finditer(value) if m.group(1) == kind]
    if isinstance(value, Mapping):
        return [r for v in value.values() for r in _references(v, kind)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v, kind)]
    return []


def _edge(value: Any) -> str | None:
    if isinstance(value, str):
        match = _REFERENCE.fullmatch(value.strip())
        if match and match.group(1) == "steps":
            return match.group(2)
        if any(m.group(1) == "steps" for m in _REFERENCE.finditer(value)):
            raise ValidationError(
                f"{value!r}: a step output is a whole value (`${{steps.name}}`), not part "
                "of a string."
            )
    return None


def _substitute(value: Any, params: Mapping[str, Any], where: str) -> Any:
    if isinstance(value, str):
        match = _REFERENCE.fullmatch(value.strip())
        if match and match.group(1) == "params":
            return params[match.group(2)]
        return _REFERENCE.sub(lambda m: str(params[m.group(2)]), value)
    if isinstance(value, Mapping):
        return {k: _substitute(v, params, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, params, where) for v in value]
    return value
