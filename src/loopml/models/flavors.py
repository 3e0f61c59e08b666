"""Flavors: how each kind of model is saved to its file, loaded back and asked to predict.

``FLAVORS`` maps a name to a :class:`Flavor`; another module adds one (``onnx``, say) by
putting an instance there, and names its module in ``FLAVOR_MODULES`` so a bundle of that
flavor loads in a process that has not imported it yet. :func:`flavor_of` picks the first
flavor that claims a model, with ``python`` (any object with ``predict``) as the fallback.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from loopml.errors import ValidationError
from loopml.models._requirements import pickled_modules

__all__ = [
    "FALLBACK_FLAVOR",
    "FLAVORS",
    "FLAVOR_MODULES",
    "Flavor",
    "JoblibFlavor",
    "flavor_named",
    "flavor_of",
]


class Flavor(ABC):
    """The interface of a flavor. ``load`` must return an object with ``predict``
    (and ``predict_proba`` where the model has it)."""

    name: str
    model_file: str

    @abstractmethod
    def matches(self, model: Any) -> bool:
        """Whether this flavor is the natural one for ``model``."""

    @abstractmethod
    def save(self, model: Any, path: Path) -> None:
        """Writes ``model`` to ``path`` (``folder / self.model_file``)."""

    @abstractmethod
    def load(self, path: Path) -> Any:
        """Reads the model written by :meth:`save`."""

    def modules(self, model: Any) -> set[str]:
        """The top-level modules loading the model needs (mapped to requirements)."""
        return pickled_modules(model)

    def can_predict_proba(self, model: Any) -> bool:
        return callable(getattr(model, "predict_proba", None))


class JoblibFlavor(Flavor):
    """A model pickled with joblib; it claims the models whose class comes from one of
    ``packages`` (all objects with ``predict`` when ``packages`` is empty)."""

    model_file = "model.joblib"

    def __init__(self, name: str, packages: tuple[str, ...] = ()) -> None:
        self.name = name
        self.packages = packages

    def matches(self, model: Any) -> bool:
        if not self.packages:
            return callable(getattr(model, "predict", None))
        return type(model).__module__.partition(".")[0] in self.packages

    def save(self, model: Any, path: Path) -> None:
        import joblib

        joblib.dump(model, path)

    def load(self, path: Path) -> Any:
        import joblib

        return joblib.load(path)

    def __repr__(self) -> str:
        return f"JoblibFlavor({self.name!r})"


FALLBACK_FLAVOR = "python"

FLAVORS: dict[str, Flavor] = {
    "sklearn": JoblibFlavor("sklearn", ("sklearn",)),
    "lightgbm": JoblibFlavor("lightgbm", ("lightgbm",)),
    "xgboost": JoblibFlavor("xgboost", ("xgboost",)),
    FALLBACK_FLAVOR: JoblibFlavor(FALLBACK_FLAVOR),
}


# Flavors defined in modules of their own, imported on first use by name.
FLAVOR_MODULES: dict[str, str] = {"onnx": "loopml.models.onnx"}


def flavor_named(name: str) -> Flavor | None:
    """The flavor called ``name`` (importing its module if it has one), or None."""
    if name not in FLAVORS and name in FLAVOR_MODULES:
        importlib.import_module(FLAVOR_MODULES[name])  # registers itself in FLAVORS
    return FLAVORS.get(name)


def known_flavors() -> str:
    return ", ".join(dict.fromkeys([*FLAVORS, *FLAVOR_MODULES]))


def flavor_of(model: Any, name: str | None = None) -> Flavor:
    """The flavor called ``name``, or the first that claims ``model`` (``python`` last)."""
    if name is not None:
        named = flavor_named(name)
        if named is None:
            raise ValidationError(
                f"Unknown model flavor {name!r}; the known flavors are {known_flavors()}."
            )
        return named
    ordered = [f for key, f in FLAVORS.items() if key != FALLBACK_FLAVOR]
    for flavor in [*ordered, FLAVORS[FALLBACK_FLAVOR]]:
        if flavor.matches(model):
            return flavor
    raise ValidationError(
        f"Cannot save a {type(model).__name__} as a model: it has no predict method. Pass a "
        "fitted estimator or an object with predict(frame)."
    )
