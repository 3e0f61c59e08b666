"""Who is acting: the name recorded on runs, versions and (later) approvals."""

from __future__ import annotations

import getpass
import os

__all__ = ["current_user"]


def current_user() -> str | None:
    """The operating-system user name, or ``$USER``, or None when neither is known."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER")
