"""Reading a small YAML document that people write by hand (a gate policy, alert rules),
with an error that names the line and column to fix."""

from __future__ import annotations

from typing import Any

from loopml.errors import ValidationError

__all__ = ["read_yaml"]


def read_yaml(text: str, where: str, hint: str) -> Any:
    """The data in YAML ``text``.

    Args:
        text: The YAML.
        where: What the text is, for the error: a file path or "The gate policy".
        hint: What the document should look like, appended to the error.

    Raises:
        ValidationError: The text is not valid YAML; the message names the line and
            column (when YAML knows them), the problem and ``hint``.
    """
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValidationError(f"{where} is not valid YAML{at}: {problem}. {hint}") from None
