"""Identifiers that become paths, SQL literals, dbt vars and MLflow model names: validated, never escaped."""

from __future__ import annotations

import re

from ml.core.errors import TenantError

SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*$")
SLUG_MAX_LEN = 40
SNAPSHOT_ID_RE = re.compile(r"^[0-9a-f]{8,64}$")


def validate_slug(value: object, what: str = "tenant id") -> str:
    """Return ``value`` if it is a lower-case slug, else raise :class:`TenantError`.

    Slugs name directories, DuckDB files, dbt variables and MLflow models, so anything else
    (upper case, dots, slashes, quotes, spaces) is refused rather than escaped.
    """
    if not isinstance(value, str) or not value:
        raise TenantError(f"{what} must be a non-empty string, got {value!r}.")
    if len(value) > SLUG_MAX_LEN or not SLUG_RE.fullmatch(value):
        raise TenantError(
            f"invalid {what} {value!r}: use a lower-case slug of letters, digits, '-' or '_', "
            f"starting with a letter, at most {SLUG_MAX_LEN} characters (e.g. 'acme' or 'news-co')."
        )
    return value


def validate_snapshot_id(value: object) -> str:
    """A content id (lower-case hex, as :mod:`ml.data.snapshots` and :mod:`ml.data.publish` make them)."""
    if not isinstance(value, str) or not SNAPSHOT_ID_RE.fullmatch(value):
        raise ValueError(f"invalid snapshot id {value!r}: expected 8-64 lower-case hex digits.")
    return value
