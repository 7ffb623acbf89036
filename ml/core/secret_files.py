"""Secrets an installation generates for itself and keeps in its home, readable by its owner only.

A secret file is created once (``O_EXCL``, mode 0600, its folder 0700) and read by every
component after; setting the value in the environment instead (production's secret store) skips
the file. Airflow's JWT and API secrets and the serving API's ops token live here.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def generated(path: Path, nbytes: int = 32, token: Callable[[int], str] = secrets.token_urlsafe) -> str:
    """The secret kept in ``path``, generated (``token(nbytes)``, URL-safe text by default) on first use.

    Raises:
        OSError: the file cannot be created or read (a read-only home).
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another component created it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(token(nbytes))
    return path.read_text().strip()
