"""Errors that people see: each message says what was wrong, for which tenant, and what to do."""

from __future__ import annotations


class TenantError(ValueError):
    """A tenant request that cannot be honoured (bad id, unknown tenant, invalid setting)."""


class SetupError(RuntimeError):
    """The platform's own setup is wrong (a setting naming a folder that is not there): the message names it."""


class RegistryError(RuntimeError):
    """A model-registry request that cannot be honoured (no champion, nothing to roll back to)."""
