"""The ``models:/`` reference grammar: ``models:/name/3``, ``models:/name@alias``,
``models:/name/latest``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopml.errors import ValidationError

__all__ = ["ModelReference", "check_alias", "check_name", "parse_reference"]

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}"
_ALIAS = r"[A-Za-z][A-Za-z0-9_\-]{0,127}"
_REFERENCE = re.compile(
    rf"models:/(?P<name>{_NAME})(?:/(?P<version>[0-9]+|latest)|@(?P<alias>{_ALIAS}))"
)
_FORMS = "models:/<name>/<version>, models:/<name>@<alias> or models:/<name>/latest"


@dataclass(frozen=True)
class ModelReference:
    name: str
    version: int | None = None  # None with alias None: the latest version
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"models:/{self.name}@{self.alias}"
        return f"models:/{self.name}/{self.version if self.version is not None else 'latest'}"


def parse_reference(text: str) -> ModelReference:
    """Parses a ``models:/`` URI; anything else is a ValidationError naming the forms."""
    match = _REFERENCE.fullmatch(text.strip())
    if match is None:
        raise ValidationError(f"{text!r} is not a model reference; use {_FORMS}.")
    version = match["version"]
    if version is not None and version != "latest":
        if int(version) < 1:
            raise ValidationError(f"{text!r}: model versions count from 1.")
        return ModelReference(match["name"], version=int(version))
    return ModelReference(match["name"], alias=match["alias"])


def check_name(name: str) -> str:
    if not re.fullmatch(_NAME, name):
        raise ValidationError(
            f"{name!r} is not a valid model name: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit, at most 256 characters."
        )
    return name


def check_alias(alias: str) -> str:
    if not re.fullmatch(_ALIAS, alias) or alias == "latest":
        raise ValidationError(
            f"{alias!r} is not a valid alias: use letters, digits, '_' and '-', starting with "
            "a letter, at most 128 characters ('latest' is reserved for the newest version)."
        )
    return alias
