"""The options of ``tenantflow tenants add`` whose help is long: Typer reads an option's help from its annotation,
so each is an annotated type here and the command's signature reads as a list of its fields."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from ml.core.contract import INTERACTION_EVENT_TYPES, POSITIVE_EVENT_TYPES

SeenItems = Annotated[
    str | None,
    typer.Option(
        help="exclude (the default): never recommend what a user consumed (content); allow: repeats (retail, music)"
    ),
]
LabelWindow = Annotated[
    int | None, typer.Option(help="Days of interactions that judge recommendations; default: from its activity cadence")
]
ChurnWindow = Annotated[
    int | None,
    typer.Option(help="Days after which a user not seen (or who cancelled) has churned; default: from its cadence"),
]
FeatureWindow = Annotated[
    int | None,
    typer.Option(
        help="Days before a cutoff the long features count, 14..364 (the short ones: a quarter of it); default: "
        "from its cadence (28 for a daily platform)"
    ),
]
HoldoutProtocol = Annotated[
    str | None,
    typer.Option(
        help="Which holdout chooses its recommender: temporal (what users take next), random (a random quarter "
        "of each user's items, the recommenders benchmark's protocol), auto (the default: temporal where it judges "
        "enough users)"
    ),
]
GlobalRegion = Annotated[
    str | None,
    typer.Option(
        help="Opt in to another region's global model (its parameters reach this tenant's models; "
        "this tenant's data stays in its region); default: its own region's"
    ),
]
MinRating = Annotated[
    float | None,
    typer.Option(
        help="The lowest rating that is a positive interaction; a lower one is consumed (never recommended back "
        "under --seen-items exclude) but not learnt from or judged on; default: every rating"
    ),
]
InteractionTypes = Annotated[
    str | None,
    typer.Option(
        help=f"Comma-separated event types that are its positive interactions, of {','.join(POSITIVE_EVENT_TYPES)} "
        f"(e.g. view for a news site); default: {','.join(INTERACTION_EVENT_TYPES)}"
    ),
]
# the fields `tenants add --replace --unset FIELD` sets back to their defaults
UNSETTABLE = (
    "model_kinds",
    "label_window_days",
    "churn_window_days",
    "feature_window_days",
    "global_region",
    "min_rating",
    "interaction_types",
)
Unset = Annotated[
    list[str] | None,
    typer.Option(help=f"With --replace: set a field back to its default (repeatable): {', '.join(UNSETTABLE)}"),
]


def option_date(value: str) -> date:
    """A date option (``--onboarded-at 2026-11-20``); else Typer's error for a bad parameter."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"expected a date like 2026-11-20, got {value!r}") from None
