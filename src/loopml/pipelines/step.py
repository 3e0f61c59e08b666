"""Steps: plain functions with retries, backoff, a timeout and a cache policy.

Called outside a pipeline, a step is its function. Called while a ``@pipeline`` function
is being traced, it records a node of the DAG and returns an :class:`Output` handle that
later steps take as an argument: that is how the edges are found.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.util
import inspect
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from loopml.errors import ValidationError

__all__ = ["Output", "Step", "code_hash", "step"]


@dataclass(frozen=True)
class Output:
    """A lazy handle on the output of a node, as tracing returns it."""

    node: str

    def __repr__(self) -> str:
        return f"Output({self.node!r})"

    def __bool__(self) -> bool:
        raise ValidationError(
            f"The output of step {self.node!r} has no value while the pipeline is traced, "
            "so it cannot decide an `if`; branch inside a step instead."
        )


class Step:
    """A function made a pipeline step by :func:`step`.

    Args:
        function: The function; its source (normalised) is part of the cache key.
        name: The step's name in the DAG (the function's name by default).
        retries: How many more times to try after the first failure.
        backoff: Seconds before the first retry; doubled for each further one.
        timeout: Seconds an attempt may take before it fails with a TimeoutError.
        cache: Whether an earlier successful execution with the same key is reused.
        version: An extra string in the cache key, to invalidate it by hand (the code
            hash covers only this function's own source, not the helpers it calls).
    """

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        retries: int = 0,
        backoff: float = 1.0,
        timeout: float | None = None,
        cache: bool = True,
        version: str | None = None,
    ) -> None:
        if retries < 0:
            raise ValidationError(f"retries of step {name or function.__name__} must be >= 0.")
        if timeout is not None and timeout <= 0:
            raise ValidationError(f"timeout of step {name or function.__name__} must be > 0.")
        self.function = function
        self.name = name or function.__name__
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.cache = cache
        self.version = version
        functools.update_wrapper(self, function)

    @functools.cached_property
    def code_hash(self) -> str:
        return code_hash(self.function, self.version)

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.function)

    @functools.cached_property
    def call_signature(self) -> inspect.Signature:
        """The signature pipelines call: without ``ws``, which the runner passes."""
        signature = self.signature
        return signature.replace(
            parameters=[p for name, p in signature.parameters.items() if name != "ws"]
        )

    @property
    def wants_workspace(self) -> bool:
        """Whether the function takes the workspace (a parameter called ``ws``)."""
        return "ws" in self.signature.parameters

    @property
    def qualified_name(self) -> str:
        return f"{self.function.__module__}:{self.function.__qualname__}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from loopml.pipelines.dag import current_tracer

        tracer = current_tracer()
        if tracer is None:
            return self.function(*args, **kwargs)
        return tracer.add(self, args, kwargs)

    def __repr__(self) -> str:
        return f"Step({self.name!r})"

    def __reduce__(self) -> Any:
        # By reference when the module can be imported again (or loaded from its file)
        # in a worker process; by value (cloudpickle) for functions defined inside others.
        module = self.function.__module__
        qualname = self.function.__qualname__
        if "<locals>" not in qualname and module != "__main__":
            path = getattr(sys.modules.get(module), "__file__", None)
            return (_restore_step, (module, qualname, path, self._options()))
        return (_rebuild_step, (self.function, self._options()))

    def with_options(self, **changes: Any) -> Step:
        """A copy with some options changed (``retries``, ``timeout``, ``cache``, ...)."""
        return Step(self.function, **{**self._options(), **changes})

    def _options(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "retries": self.retries,
            "backoff": self.backoff,
            "timeout": self.timeout,
            "cache": self.cache,
            "version": self.version,
        }


def _rebuild_step(function: Callable[..., Any], options: dict[str, Any]) -> Step:
    return Step(function, **options)


def _restore_step(module: str, qualname: str, path: str | None, options: dict[str, Any]) -> Step:
    if module not in sys.modules:
        try:
            importlib.import_module(module)
        except ImportError:
            if path is None:
                raise
            load_module_from_path(Path(path), module)
    found: Any = sys.modules[module]
    for part in qualname.split("."):
        found = getattr(found, part)
    return Step(found.function if isinstance(found, Step) else found, **options)


def load_module_from_path(path: Path, module_name: str | None = None) -> Any:
    """Imports a Python file as a module (registered in ``sys.modules``)."""
    resolved = path.resolve()
    if not resolved.is_file():
        raise ValidationError(f"No pipeline file {path}: give an existing .py file.")
    name = (
        module_name or "_loopml_pipeline_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    )
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ValidationError(f"Cannot import {path} as Python; give a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@overload
def step(function: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: float = 1.0,
    timeout: float | None = None,
    cache: bool = True,
    version: str | None = None,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: float = 1.0,
    timeout: float | None = None,
    cache: bool = True,
    version: str | None = None,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Makes a function a pipeline step: ``@step`` or ``@step(retries=3, timeout=60)``.

    A parameter called ``ws`` receives the workspace when the step runs. Type hints on
    the parameters and the return value are checked when a pipeline is traced: a step
    whose output type cannot be the next step's declared input type is refused.
    """

    def wrap(inner: Callable[..., Any]) -> Step:
        return Step(
            inner,
            name=name,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            cache=cache,
            version=version,
        )

    return wrap(function) if function is not None else wrap


def code_hash(function: Callable[..., Any], version: str | None = None) -> str:
    """sha256 of the function's normalised source: its syntax tree without decorators,
    docstring, comments or formatting, so reformatting does not invalidate a cache."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
        tree = ast.parse(source)
        node = tree.body[0]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.decorator_list = []
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
        text = ast.dump(node, annotate_fields=False, include_attributes=False)
    except (OSError, TypeError, SyntaxError, IndexError):
        code = function.__code__
        text = repr((code.co_code, code.co_consts, code.co_names))
    return hashlib.sha256(f"{text}\x00{version or ''}".encode()).hexdigest()
