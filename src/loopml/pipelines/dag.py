"""Pipelines and their DAG: traced from a ``@pipeline`` function or given as nodes.

The DAG is checked before anything runs: every input names a node, there is no cycle,
and where both sides have type hints, what a step returns can be what the next step
declares it takes.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from loopml.errors import ValidationError
from loopml.pipelines._types import check_types
from loopml.pipelines.step import Output, Step, load_module_from_path

__all__ = ["Graph", "Node", "Pipeline", "current_tracer", "load_pipeline", "pipeline"]

_TRACER: contextvars.ContextVar[_Tracer | None] = contextvars.ContextVar(
    "loopml_pipeline_tracer", default=None
)


@dataclass
class Node:
    """One step of a DAG: the step, its literal params and the nodes feeding its inputs.

    Args:
        name: Unique within the pipeline.
        step: What runs.
        params: Literal arguments (JSON-able: they are part of the cache key).
        inputs: Argument name -> the name of the node whose output it takes.
        after: Nodes that must finish first without passing an output.
    """

    name: str
    step: Step
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    after: tuple[str, ...] = ()

    @property
    def upstream(self) -> list[str]:
        return list(dict.fromkeys([*self.inputs.values(), *self.after]))


@dataclass
class Graph:
    """A checked DAG: nodes in a topological order, and what the pipeline returns."""

    name: str
    nodes: list[Node]
    result: Any = None  # the return value's structure, Output -> {"$step": node}

    @functools.cached_property
    def by_name(self) -> dict[str, Node]:
        return {node.name: node for node in self.nodes}

    def downstream(self, names: Sequence[str]) -> set[str]:
        """``names`` and every node that depends on them, directly or not."""
        found = set(names)
        for node in self.nodes:  # topological order: parents come first
            if any(parent in found for parent in node.upstream):
                found.add(node.name)
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "steps": [
                {
                    "name": node.name,
                    "function": node.step.qualified_name,
                    "inputs": node.inputs,
                    "after": list(node.after),
                    "params": node.params,
                    "cache": node.step.cache,
                    "retries": node.step.retries,
                    "timeout": node.step.timeout,
                }
                for node in self.nodes
            ],
            "result": self.result,
        }


class Pipeline:
    """A named DAG of steps: from a function (traced per run) or from nodes.

    Args:
        function: A function that calls steps; what it returns is the run's result.
        name: The pipeline's name (the function's name by default).
        nodes: The DAG given directly (YAML pipelines), instead of ``function``.
        params: Default params for a node-based pipeline (``${params.x}`` in YAML).
        target: How to load the pipeline again (``module:function``, ``file.py:function``
            or a YAML path), which ``resume`` and the scheduler use; found by itself for
            module-level functions.
    """

    def __init__(
        self,
        function: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        nodes: Sequence[Node] | None = None,
        params: Mapping[str, Any] | None = None,
        target: str | None = None,
    ) -> None:
        if (function is None) == (nodes is None):
            raise ValidationError("A Pipeline takes a function or nodes (exactly one of them).")
        self.function = function
        self.nodes = list(nodes or [])
        self.default_params = dict(params or {})
        self.builder: Callable[[dict[str, Any]], list[Node]] | None = None
        if function is not None:
            self.name = name or function.__name__
            functools.update_wrapper(self, function)
        else:
            self.name = name or "pipeline"
        self._target = target

    @property
    def target(self) -> str | None:
        if self._target is not None:
            return self._target
        if self.function is None:
            return None
        module = self.function.__module__
        qualname = self.function.__qualname__
        if "<locals>" in qualname or module == "__main__":
            return None
        path = getattr(sys.modules.get(module), "__file__", None)
        if module.startswith("_loopml_pipeline_") and path:
            return f"{path}:{qualname}"
        return f"{module}:{qualname}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.function is None:
            raise ValidationError(f"Pipeline {self.name!r} is made of nodes; run it instead.")
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r})"

    def bind_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """The params a run uses: ``params`` over the defaults, refused when unknown."""
        params = dict(params or {})
        if self.function is None:
            return {**self.default_params, **params}
        signature = inspect.signature(self.function)
        try:
            bound = signature.bind(**params)
        except TypeError as error:
            raise ValidationError(
                f"Params {sorted(params)} do not fit pipeline {self.name!r}{signature}: {error}."
            ) from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def graph(self, params: Mapping[str, Any] | None = None) -> Graph:
        """Traces (or assembles) and checks the DAG for these params."""
        bound = self.bind_params(params)
        result: Any = None
        if self.function is not None:
            tracer = _Tracer()
            token = _TRACER.set(tracer)
            try:
                returned = self.function(**bound)
            finally:
                _TRACER.reset(token)
            nodes = tracer.nodes
            result = _result_structure(returned)
        elif self.builder is not None:
            nodes = self.builder(bound)
        else:
            nodes = self.nodes
        return Graph(self.name, check_graph(self.name, nodes), result)


@overload
def pipeline(function: Callable[..., Any], /) -> Pipeline: ...


@overload
def pipeline(*, name: str | None = None) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(
    function: Callable[..., Any] | None = None, /, *, name: str | None = None
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Makes a function a :class:`Pipeline`: ``@pipeline`` or ``@pipeline(name="etl")``.

    Its parameters are the run's params; inside it, calling steps returns output handles
    that are passed to other steps, which defines the DAG.
    """

    def wrap(inner: Callable[..., Any]) -> Pipeline:
        return Pipeline(inner, name=name)

    return wrap(function) if function is not None else wrap


def current_tracer() -> _Tracer | None:
    return _TRACER.get()


class _Tracer:
    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._names: set[str] = set()

    def add(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Output:
        after = kwargs.pop("_after", ())
        try:
            bound = step.call_signature.bind_partial(*args, **kwargs)
        except TypeError as error:
            raise ValidationError(
                f"Step {step.name!r} called with wrong arguments: {error}."
            ) from None
        name = step.name
        counter = 2
        while name in self._names:
            name = f"{step.name}_{counter}"
            counter += 1
        self._names.add(name)
        inputs: dict[str, str] = {}
        params: dict[str, Any] = {}
        for argument, value in bound.arguments.items():
            if isinstance(value, Output):
                inputs[argument] = value.node
            elif _holds_output(value):
                raise ValidationError(
                    f"Argument {argument!r} of step {name!r} nests a step output in a "
                    "container; pass each output as its own argument."
                )
            else:
                params[argument] = value
        if isinstance(after, Output):
            after = (after,)
        self.nodes.append(
            Node(name, step, params, inputs, tuple(a.node for a in after if isinstance(a, Output)))
        )
        return Output(name)


def _holds_output(value: Any) -> bool:
    if isinstance(value, Output):
        return True
    if isinstance(value, Mapping):
        return any(_holds_output(v) for v in value.values())
    if isinstance(value, list | tuple | set):
        return any(_holds_output(v) for v in value)
    return False


def _result_structure(value: Any) -> Any:
    if isinstance(value, Output):
        return {"$step": value.node}
    if isinstance(value, Mapping):
        return {str(k): _result_structure(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_result_structure(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValidationError(
        "A pipeline function returns step outputs (or dicts/lists of them), not "
        f"{type(value).__name__}."
    )


def check_graph(name: str, nodes: Sequence[Node]) -> list[Node]:
    """Nodes in a topological order; refuses unknown inputs, cycles and type mismatches."""
    by_name: dict[str, Node] = {}
    for node in nodes:
        if node.name in by_name:
            raise ValidationError(f"Pipeline {name!r} has two steps named {node.name!r}.")
        by_name[node.name] = node
    for node in nodes:
        for parent in node.upstream:
            if parent not in by_name:
                raise ValidationError(
                    f"Step {node.name!r} of pipeline {name!r} takes the output of "
                    f"{parent!r}, which is not a step of it; known steps: {sorted(by_name)}."
                )
    order = _topological(name, nodes, by_name)
    for node in order:
        for argument, parent in node.inputs.items():
            check_types(by_name[parent], node, argument)
    return order


def _topological(name: str, nodes: Sequence[Node], by_name: dict[str, Node]) -> list[Node]:
    waiting = {node.name: len(node.upstream) for node in nodes}
    children: dict[str, list[str]] = {node.name: [] for node in nodes}
    for node in nodes:
        for parent in node.upstream:
            children[parent].append(node.name)
    ready = [node.name for node in nodes if waiting[node.name] == 0]
    order: list[Node] = []
    while ready:
        current = ready.pop(0)
        order.append(by_name[current])
        for child in children[current]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(order) < len(nodes):
        cycle = _find_cycle({n for n, count in waiting.items() if count > 0}, by_name)
        raise ValidationError(
            f"Pipeline {name!r} has a cycle: {' -> '.join(cycle)}. A step cannot depend, "
            "directly or not, on its own output; remove one of these edges."
        )
    return order


def _find_cycle(remaining: set[str], by_name: dict[str, Node]) -> list[str]:
    start = min(remaining)
    path: list[str] = []
    current = start
    while current not in path:
        path.append(current)
        current = next(p for p in by_name[current].upstream if p in remaining)
    cycle = [*path[path.index(current) :], current]
    return cycle[::-1]


def load_pipeline(target: Pipeline | str | Path) -> Pipeline:
    """The pipeline named by ``target``: a Pipeline, ``module:function``,
    ``path/to/file.py:function``, a YAML file, or the continuous-training pipeline of a
    project (``ct`` for ``./loopml.yaml``, ``ct:path/to/loopml.yaml``)."""
    if isinstance(target, Pipeline):
        return target
    text = str(target)
    from loopml.pipelines.ct import ContinuousTraining, ct_project

    project = ct_project(text)
    if project is not None:
        return ContinuousTraining(project)
    if text.endswith((".yaml", ".yml")):
        from loopml.pipelines.yaml_spec import load_yaml_pipeline

        return load_yaml_pipeline(Path(text))
    module_part, sep, attribute = text.rpartition(":")
    if not sep or not module_part or not attribute:
        raise ValidationError(
            f"Cannot find pipeline {text!r}: give `module:function`, `file.py:function` or "
            "a YAML file (.yaml)."
        )
    if module_part.endswith(".py"):
        module = load_module_from_path(Path(module_part))
    else:
        import importlib

        try:
            module = importlib.import_module(module_part)
        except ImportError as error:
            raise ValidationError(
                f"Cannot import module {module_part!r} of pipeline {text!r}: {error}. Check "
                "the name, or give a file path (`file.py:function`)."
            ) from None
    found: Any = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise ValidationError(f"{module_part!r} has no {attribute!r} (pipeline {text!r}).")
    if isinstance(found, Pipeline):
        if found._target is None and module_part.endswith(".py"):
            found._target = f"{Path(module_part).resolve()}:{attribute}"
        return found
    if callable(found):
        if module_part.endswith(".py"):
            return Pipeline(found, target=f"{Path(module_part).resolve()}:{attribute}")
        return Pipeline(found, target=text)
    raise ValidationError(f"{text!r} is a {type(found).__name__}, not a pipeline.")


def canonical_json(value: Any) -> str:
    """Stable JSON for hashing (sorted keys, no spaces); non-JSON values by repr."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)
