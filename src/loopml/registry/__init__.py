"""The model registry: versions, aliases with gated promotion, lineage, and exports.

Reach it as ``ws.registry``; see :class:`loopml.registry.registry.Registry`.
"""

from loopml.registry._reference import ModelReference, parse_reference
from loopml.registry.card import ModelCard, model_card
from loopml.registry.lineage import Lineage
from loopml.registry.registry import AliasEvent, ModelVersion, RegisteredModel, Registry

__all__ = [
    "AliasEvent",
    "Lineage",
    "ModelCard",
    "ModelReference",
    "ModelVersion",
    "RegisteredModel",
    "Registry",
    "model_card",
    "parse_reference",
]
