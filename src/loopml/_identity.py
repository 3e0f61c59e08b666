"""Who is acting: the name recorded on runs, versions and (later) approvals."""

from __future__ import annotations

import getpass
import os

__all__ = ["current_user"]


def current_user() -> str | None:
    """``$LOOPML_USER``, else the operating-system user name, or None when unknown.

    ``LOOPML_USER`` lets a CI job or a service act under a name of its own; the
    platform server's tokens (governance) will name users for requests.
    """
    if name := os.environ.get("LOOPML_USER", "").strip():
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER")
