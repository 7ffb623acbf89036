"""Parsing and checking a tenant's fields as they arrive from a seed file, the CLI or JSON.

:class:`ml.core.tenants.Tenant` checks its fields with these; a seed file's text goes through
the parsers first (YAML reads ``yes`` as a boolean, which ``float()`` would take for 1).
"""

from __future__ import annotations

import decimal
import math
import re
import reprlib

from ml.core.contract import EVENT_TYPES, POSITIVE_EVENT_TYPES
from ml.core.errors import TenantError


def parse_bool(value: object) -> bool:
    """``yes``/``no`` (and the usual spellings) as a bool; :class:`TenantError` otherwise."""
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in ("yes", "y", "true", "1"):
        return True
    if s in ("no", "n", "false", "0"):
        return False
    raise TenantError(f"expected yes or no, got {value!r}.")


def finite(value: object) -> bool:
    """A finite int or float (not a bool, not text; an int too large for a float is not)."""
    try:
        return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]
    except OverflowError:
        return False


def optional_number(value: object, name: str) -> float | None:
    """A seed file's number, None where it is absent or empty; :class:`TenantError` naming the
    field ``name`` for anything else (``true``, a word)."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise TenantError(f"{name} must be a number, got {value!r}.") from None


# a number as text, ASCII digits only ("٣0" or "1_4" is no count): 5000, +5000, 5e3, 5000.0, .5e4
_NUMBER_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
MAX_COUNT = 2**63 - 1  # what the control database's integer columns hold


def whole_number(value: object, name: str) -> int:
    """A seed file's whole number (``5000``, ``"5000"``, ``"5e3"``, ``5000.0``): :class:`TenantError` naming the
    field ``name`` and the value as given for a fraction, a word, a yes/no (YAML reads ``yes``, ``no``, ``on``,
    ``off`` as booleans) or a number beyond :data:`MAX_COUNT`. Text is read exactly (``decimal``: never rounded
    through a float, so ``"1e-400"`` is a fraction, not 0)."""
    if isinstance(value, bool):
        raise TenantError(
            f"{name} must be a whole number, got {reprlib.repr(value)} (YAML reads yes/no/on/off as true/false)."
        )
    number: object = value
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(text := value.strip()):
        exact = decimal.Decimal(text)
        if exact.adjusted() > 18:  # more than 19 digits before the point: beyond any count (and no huge int made)
            raise TenantError(f"{name} must be a whole number up to {MAX_COUNT:,}, got {reprlib.repr(value)}.")
        number = int(exact) if exact == exact.to_integral_value() else value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    if type(number) is not int:
        raise TenantError(f"{name} must be a whole number, got {reprlib.repr(value)}.")
    if abs(number) > MAX_COUNT:
        raise TenantError(f"{name} must be a whole number up to {MAX_COUNT:,}, got {reprlib.repr(value)}.")
    return number


def optional_whole_number(value: object, name: str) -> int | None:
    """:func:`whole_number`, None where it is absent or empty (``0`` is a number: the field's check judges it)."""
    return None if value is None or value == "" else whole_number(value, name)


def quota(tenant_id: str, name: str, value: object) -> None:
    """A quota (``quota_events_per_day``, ``quota_requests_per_minute``) is a whole number, 0 or more (0: every
    webhook event, or every API request, refused: a suspended tenant); :class:`TenantError` otherwise."""
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise TenantError(
            f"tenant {tenant_id}: {name} must be a whole number 0..{MAX_COUNT:,} (0 suspends the tenant: every "
            f"one refused), got {value!r}."
        )


def names(value: object, name: str) -> tuple[str, ...]:
    """A list field ``name`` (``model_kinds``, ``interaction_types``) from a seed file, the CLI or the
    control database: a list, or one comma-separated text (``"click,view"``); absent or empty:
    ``()``. Blanks are dropped; :class:`TenantError` naming the field for anything else."""
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise TenantError(f"{name} must be a list or comma-separated names, got {value!r}.")
    found = tuple(str(v).strip() for v in items if str(v).strip())
    if not found and len(items):  # "," or [" "]: a slip, not a choice of the default (that is [] or no field)
        raise TenantError(f"{name} names nothing ({value!r}); for the default leave it out (--unset {name} to reset).")
    return found


def interaction_types(tenant_id: str, types: tuple[str, ...] | None) -> tuple[str, ...]:
    """The event types ``tenant_id`` declared its positive interactions, checked and in the
    contract's order (:data:`ml.core.contract.EVENT_TYPES`: one rule has one spelling, so a
    change of order is none); ``()`` (or None) is ``()``, the platform's default.

    Raises:
        TenantError: a type that is no way of taking an item
            (:data:`ml.core.contract.POSITIVE_EVENT_TYPES`), naming it and the allowed ones.
    """
    if types is None:
        return ()
    if isinstance(types, str):  # a Python caller's "view": one name, not four letters
        raise TenantError(f"tenant {tenant_id}: interaction_types must be a tuple of names, got {types!r}.")
    wrong = [t for t in types if t not in POSITIVE_EVENT_TYPES]
    if wrong:
        raise TenantError(
            f"tenant {tenant_id}: interaction_types may name {', '.join(POSITIVE_EVENT_TYPES)} (a user taking an "
            f"item; skip and return say the user did not want it); got {', '.join(map(repr, wrong))}. A tenant's own "
            "event names map onto these with its source spec's event_types."
        )
    return tuple(t for t in EVENT_TYPES if t in types)


def refuse_moving(tenant_id: str, where: tuple[str, str], to: tuple[str, str]) -> None:
    """A tenant's ``(region, isolation)`` is where its data lives (its landing, lake, warehouse and models):
    :class:`TenantError` for an entry that would move it from ``where`` to another ``to`` (the data would stay)."""
    if tuple(where) != tuple(to):
        raise TenantError(
            f"tenant {tenant_id} lives in region {where[0]} ({where[1]}); its data stays there, so a change of entry "
            f"cannot move it to {to[0]} ({to[1]}). Keep its region and isolation; a company that must move is "
            "onboarded under a new id and its history imported there."
        )
