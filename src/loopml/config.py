"""Workspace settings: arguments, then LOOPML_* variables, then loopml.toml, then defaults."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.errors import ConfigError

__all__ = ["Settings"]

_TOML_NAME = "loopml.toml"


@dataclass(frozen=True)
class Settings:
    """Where a workspace keeps its metadata and its artifacts.

    Attributes:
        home: The workspace folder (``./.loopml`` by default, ``LOOPML_HOME``).
        db_url: SQLAlchemy URL of the metadata store (``LOOPML_DB_URL``); SQLite in
            ``home`` by default.
        artifacts_url: Folder or fsspec URL of the artifact store
            (``LOOPML_ARTIFACTS_URL``); ``home/artifacts`` by default.
        artifacts_options: Keyword options for the fsspec filesystem (for example
            ``{"endpoint_url": ...}`` for an S3-compatible server).
        metric_flush_seconds: How long the background writer may hold logged metrics
            before writing them; the most a SIGKILLed process can lose.
        protected_aliases: Model aliases whose moves need a passing gate against the
            current holder (``LOOPML_PROTECTED_ALIASES``, comma-separated; ``production``
            by default, empty for none).
        required_approvals: How many distinct users must approve a version before it
            takes a protected alias (``LOOPML_REQUIRED_APPROVALS``; 0 by default).
    """

    home: Path
    db_url: str
    artifacts_url: str
    artifacts_options: dict[str, Any] = field(default_factory=dict)
    metric_flush_seconds: float = 1.0
    protected_aliases: tuple[str, ...] = ("production",)
    required_approvals: int = 0

    @classmethod
    def resolve(
        cls,
        home: str | os.PathLike[str] | None = None,
        db_url: str | None = None,
        artifacts_url: str | None = None,
        artifacts_options: dict[str, Any] | None = None,
    ) -> Settings:
        """Builds settings from arguments, the environment and ``home/loopml.toml``."""
        env = os.environ
        home_path = Path(home or env.get("LOOPML_HOME") or ".loopml").expanduser().absolute()
        file_values = _read_toml(home_path / _TOML_NAME)
        db = db_url or env.get("LOOPML_DB_URL") or file_values.get("db_url")
        artifacts = (
            artifacts_url or env.get("LOOPML_ARTIFACTS_URL") or file_values.get("artifacts_url")
        )
        flush = env.get("LOOPML_METRIC_FLUSH_SECONDS") or file_values.get("metric_flush_seconds")
        try:
            flush_seconds = float(flush) if flush is not None else 1.0
        except ValueError:
            raise ConfigError(
                f"LOOPML_METRIC_FLUSH_SECONDS must be a number of seconds, got {flush!r}."
            ) from None
        protected = env.get("LOOPML_PROTECTED_ALIASES", file_values.get("protected_aliases"))
        if protected is None:
            protected = ["production"]
        elif isinstance(protected, str):
            protected = [a.strip() for a in protected.split(",") if a.strip()]
        approvals = env.get("LOOPML_REQUIRED_APPROVALS", file_values.get("required_approvals", 0))
        try:
            required_approvals = int(approvals)
            if required_approvals < 0:
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(
                f"LOOPML_REQUIRED_APPROVALS must be a whole number of approvals (0 or more), "
                f"got {approvals!r}."
            ) from None
        return cls(
            home=home_path,
            db_url=str(db) if db else f"sqlite:///{home_path / 'loopml.db'}",
            artifacts_url=str(artifacts) if artifacts else str(home_path / "artifacts"),
            artifacts_options=dict(artifacts_options or file_values.get("artifacts_options", {})),
            metric_flush_seconds=flush_seconds,
            protected_aliases=tuple(str(a) for a in protected),
            required_approvals=required_approvals,
        )


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML ({error}); fix or remove it.") from None
    section = data.get("workspace", data)
    return dict(section) if isinstance(section, dict) else {}
