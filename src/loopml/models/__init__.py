"""Model bundles, the on-disk model format, and loading them: ``loopml.models.load(ref)``.

This layer sits below tracking and the registry (they write and resolve bundles), so it
imports neither at module level.

Example:
    >>> from loopml import models
    >>> models.write_bundle(fitted, "churn-model", input_example=frame.head())
    >>> models.load("churn-model").predict(frame)
"""

from loopml.models._requirements import ModelVersionWarning
from loopml.models.bundle import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    Manifest,
    pack_bundle,
    unpacked_bundle,
    verify_bundle,
    write_bundle,
)
from loopml.models.flavors import (
    FLAVOR_MODULES,
    FLAVORS,
    Flavor,
    JoblibFlavor,
    flavor_named,
    flavor_of,
)
from loopml.models.loading import LoadedModel, load, load_bundle
from loopml.models.signature import ColumnSpec, OutputSpec, Signature

__all__ = [
    "FLAVORS",
    "FLAVOR_MODULES",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "ColumnSpec",
    "Flavor",
    "JoblibFlavor",
    "LoadedModel",
    "Manifest",
    "ModelVersionWarning",
    "OutputSpec",
    "Signature",
    "flavor_named",
    "flavor_of",
    "load",
    "load_bundle",
    "pack_bundle",
    "unpacked_bundle",
    "verify_bundle",
    "write_bundle",
]
