"""What a model needs installed, found in-process, and whether this environment has it.

Internal: :func:`loopml.models.write_bundle` records requirements and
:func:`loopml.models.load` checks them. Finding them takes milliseconds: one pickling
pass into a null sink notes the module of every object the model holds (large arrays
travel out of band, so they are not copied), and the modules map to distributions
through ``importlib.metadata`` (the map is built once per process). No subprocess.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import pickle
import platform
import types
import warnings
from collections.abc import Mapping
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from loopml.errors import IncompatibleModelError, ValidationError

__all__ = ["ModelVersionWarning", "check_environment", "pickled_modules", "pins_for"]


class ModelVersionWarning(UserWarning):
    """A model was saved with another minor version of Python or of a package it needs."""


class _ModuleRecorder(pickle.Pickler):
    """Notes the top-level module of every object pickled, and the module of every
    class and function pickled by reference (``FunctionTransformer(func=...)``)."""

    def __init__(self, modules: set[str]) -> None:
        super().__init__(_NullSink(), protocol=5, buffer_callback=_out_of_band)
        self.modules = modules

    def persistent_id(self, obj: Any) -> None:
        self.modules.add(type(obj).__module__.partition(".")[0])
        if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
            self.modules.add((obj.__module__ or "").partition(".")[0])


class _NullSink(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(memoryview(data))


def _out_of_band(buffer: pickle.PickleBuffer) -> bool:
    return False  # keep array buffers out of the stream: nothing is copied


def pickled_modules(model: Any) -> set[str]:
    """The top-level modules of everything ``model`` pickles."""
    modules: set[str] = set()
    try:
        _ModuleRecorder(modules).dump(model)
    except Exception as error:
        raise ValidationError(
            f"Cannot save the {type(model).__name__}: it does not pickle ({error}). Models "
            "must be picklable; move lambdas and local classes to module level."
        ) from error
    return modules


@functools.cache
def _distributions_of_modules() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


@functools.cache
def _pin(distribution: str) -> tuple[str, str] | None:
    """(name as published, installed version), or None if not installed."""
    try:
        found = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    return found.metadata["Name"], found.version


@functools.cache
def _unconditional_requirements(distribution: str) -> tuple[str, ...]:
    """The distributions ``distribution`` always needs (no extra, no platform marker)."""
    names = []
    for text in importlib.metadata.requires(distribution) or []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue  # a malformed line in another package's metadata is not ours to fix
        if requirement.marker is None:
            names.append(requirement.name)
    return tuple(names)


def pins_for(modules: set[str]) -> list[str]:
    """``dist==version`` for the distributions providing ``modules`` and what they always
    need (one level: importing scikit-learn needs scipy), sorted by name."""
    mapping = _distributions_of_modules()
    direct = {dist for module in modules for dist in mapping.get(module, [])}
    wanted = direct | {dep for dist in direct for dep in _unconditional_requirements(dist)}
    pins = {pin for dist in wanted if (pin := _pin(dist)) is not None}
    return [f"{name}=={version}" for name, version in sorted(pins, key=lambda p: p[0].lower())]


def check_environment(python: str, requirements: list[str], bundle: str) -> None:
    """Refuses a bundle whose Python or pins differ here in major version (or are not
    installed); warns with ModelVersionWarning when only a minor version differs."""
    refused: list[str] = []
    fixes: list[str] = []
    warned: list[str] = []
    here = platform.python_version()
    difference = _difference(python, here)
    if difference == "major":
        refused.append(f"Python {python} (this is Python {here})")
    elif difference == "minor":
        warned.append(f"Python {python} (this is Python {here})")
    for pin in requirements:
        name, _, wanted = pin.partition("==")
        installed = _installed_version(name)
        difference = "missing" if installed is None else _difference(wanted, installed)
        if difference in ("missing", "major"):
            refused.append(f"{pin} (installed: {installed or 'none'})")
            fixes.append(f"'{pin}'")
        elif difference == "minor":
            warned.append(f"{pin} (installed: {installed})")
    if refused:
        fix = f"pip install {' '.join(fixes)}" if fixes else ""
        raise IncompatibleModelError(
            f"The model in {bundle} needs {'; '.join(refused)}. Install what it needs"
            + (f" ({fix})" if fix else "")
            + (" and use that Python" if len(fixes) < len(refused) else "")
            + ", or re-export the model from this environment."
        )
    if warned:
        warnings.warn(
            f"The model in {bundle} was saved with {'; '.join(warned)}. It loads, but its "
            "predictions may differ; pin the saved versions or re-export the model.",
            ModelVersionWarning,
            stacklevel=4,
        )


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _difference(saved: str, installed: str) -> str | None:
    """``"major"``, ``"minor"`` or None (same major and minor version)."""
    try:
        before, after = Version(saved).release, Version(installed).release
    except InvalidVersion:
        return None if saved == installed else "minor"
    if before[:1] != after[:1]:
        return "major"
    return None if before[:2] == after[:2] else "minor"
